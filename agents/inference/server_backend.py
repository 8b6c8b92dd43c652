"""`ServerBackend`: a token-level `Backend` that generates through OpenAI-compatible servers.

Each prompt (token ids) goes as ``prompt_token_ids`` in one chat-completions request to the
embedded server (`swerepair.agents.inference.server`), so a `ModelPolicy` over this backend produces
token-exact episodes exactly as over the in-process `hf` backend: the server continues the very
sequence the episode has accumulated and returns the ids and sampling logprobs it generated, and
the policy version of the weights it used. Requests are sent concurrently (a server batches
them), each to the least-loaded live server: the one with the fewest of this backend's requests
in flight when the request starts, ties going to the earlier url. Every `Generation` names the
server that made it (``server``).

A vLLM server (``api="completions"``) is asked through ``POST /v1/completions`` with the token
ids as the prompt and ``return_token_ids``, which is vLLM's token-exact path. vLLM does not tag
its answers with a policy version; `version_source` (the trainer's pusher) supplies the version
the server served when the request was sent, so a turn generated across a weight update is
tagged with the older version, the one that counts for its staleness.

A request that fails in transport (the server refused the connection, dropped it, answered an
HTTP error or a truncated body: it was stopped, restarted or crashed) is not retried, since a
restarted server no longer holds the trainer's weights: `generate` raises `GenerationError`,
whose ``results`` hold the generations that succeeded and the errors of those that did not, so
that a rollout fails only the episodes whose turn was lost (see `swerepair.envs.rollout`).

A server that gave no answer (connection refused or reset, a timeout, a broken response) or
answered 503 (it is stopping) is *dead*: it gets no further request, and `dead` names it, until
`revive` puts it back (the trainer does that only after the server has answered ``/health`` and
received the current weights again). While no server is live, every request fails at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from swerepair.agents.inference.backend import Generation, GenerationError
from swerepair.agents.inference.http import HTTPRequestError, request_json, server_root

__all__ = ["ServerBackend"]

log = logging.getLogger(__name__)


class ServerBackend:
    """Generate with ``POST {url}/v1/chat/completions`` (``prompt_token_ids``) on `urls`.

    Args:
        urls: server roots (``http://127.0.0.1:8000``; a trailing ``/v1`` is accepted).
        temperature, top_p, max_new_tokens: sampling settings sent with every request.
        concurrency: requests in flight at once.
        timeout_s: time limit of one request.
        api: ``"chat"`` (``swerepair serve``: chat completions with ``prompt_token_ids``) or
            ``"completions"`` (vLLM: completions with a token-id prompt).
        version_source: ``url -> version``, used where an answer carries no ``policy_version``.
    """

    def __init__(
        self,
        urls: Sequence[str],
        *,
        temperature: float = 1.0,
        top_p: float = 1.0,
        max_new_tokens: int = 512,
        concurrency: int = 16,
        timeout_s: float = 600.0,
        api: str = "chat",
        version_source: Callable[[str], int] | None = None,
    ) -> None:
        if api not in ("chat", "completions"):
            raise ValueError(f"api must be chat or completions, got {api!r}")
        if not urls:
            raise ValueError("ServerBackend needs at least one server url")
        self.urls = [server_root(u) for u in urls]
        self.temperature, self.top_p, self.max_new_tokens = temperature, top_p, max_new_tokens
        self.timeout_s, self.api, self.version_source = timeout_s, api, version_source
        self._lock = threading.Lock()
        #: this backend's requests in flight, per server url
        self.in_flight: dict[str, int] = dict.fromkeys(self.urls, 0)
        #: servers that stopped answering (see the module docstring), with what happened
        self.dead: dict[str, str] = {}
        #: requests sent to each server
        self.requests: dict[str, int] = dict.fromkeys(self.urls, 0)
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="server-backend")
        #: tokens generated and seconds spent, as `HFBackend.stats`
        self.stats = {"generated_tokens": 0, "seconds": 0.0}
        self.policy_version = 0  # the newest version a server reported

    @property
    def live(self) -> list[str]:
        """The servers that get requests, in url order."""
        with self._lock:
            return [u for u in self.urls if u not in self.dead]

    def mark_dead(self, url: str, why: str) -> None:
        """Send `url` no further request (until `revive`)."""
        with self._lock:
            if url in self.in_flight and url not in self.dead:
                self.dead[url] = why
                log.error("%s removed from dispatch: %s", url, why)

    def revive(self, urls: Sequence[str] | None = None) -> None:
        """Dispatch to `urls` (all servers by default) again."""
        with self._lock:
            for url in self.urls if urls is None else [server_root(u) for u in urls]:
                self.dead.pop(url, None)

    def _acquire(self) -> str:
        """The least-loaded live server (fewest requests in flight; ties: the earlier url), counted."""
        with self._lock:
            live = [u for u in self.urls if u not in self.dead]
            if not live:
                raise GenerationError(f"no live inference server (all removed: {self.dead})")
            url = min(live, key=lambda u: self.in_flight[u])  # min keeps the first of equals
            self.in_flight[url] += 1
            self.requests[url] += 1
            return url

    def _release(self, url: str) -> None:
        with self._lock:
            self.in_flight[url] -= 1

    def _post(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            answer = request_json(url, body, timeout=self.timeout_s)
        except HTTPRequestError as exc:  # an error status, no answer (refused, reset), or not JSON
            if exc.status is None or exc.status == 503:  # gone, or stopping: removed from dispatch
                self.mark_dead(server_root(url.rsplit("/v1/", 1)[0]), str(exc))
            raise GenerationError(str(exc)) from exc
        if not isinstance(answer, dict):
            raise GenerationError(f"POST {url}: the answer is not a JSON object: {answer!r:.500}")
        return answer

    def _dispatch(self, prompt: Sequence[int]) -> Generation:
        url = self._acquire()
        try:
            return self._one(url, prompt)
        finally:
            self._release(url)

    def _one(self, url: str, prompt: Sequence[int]) -> Generation:
        version_at_start = self.version_source(url) if self.version_source is not None else 0
        sampling = {"temperature": self.temperature, "top_p": self.top_p, "max_tokens": self.max_new_tokens}
        if self.api == "completions":
            body = {"prompt": list(prompt), "logprobs": 0, "return_token_ids": True, "skip_special_tokens": False}
            # neutral values, so that no default of the server's model changes the distribution
            body.update(top_k=0, min_p=0.0, repetition_penalty=1.0, presence_penalty=0.0, frequency_penalty=0.0)
            data = self._post(f"{url}/v1/completions", {**body, **sampling})
            choice = data["choices"][0]
            logprobs = tuple(float(x) for x in (choice.get("logprobs") or {}).get("token_logprobs") or [])
            text = choice.get("text") or ""
        else:
            body = {
                "messages": [{"role": "user", "content": ""}],
                "prompt_token_ids": list(prompt),
                "logprobs": True,
                "top_logprobs": 0,
                "return_token_ids": True,
                "tool_choice": "none",
            }
            data = self._post(f"{url}/v1/chat/completions", {**body, **sampling})
            choice = data["choices"][0]
            logprobs = tuple(float(e["logprob"]) for e in (choice.get("logprobs") or {}).get("content") or [])
            text = choice["message"].get("content") or ""
        if choice.get("token_ids") is None:
            raise RuntimeError(f"{url}: the answer has no token_ids (does the server support return_token_ids?)")
        ids = tuple(int(i) for i in choice["token_ids"])
        if len(logprobs) != len(ids):
            raise RuntimeError(f"{url}: {len(ids)} token ids but {len(logprobs)} logprobs")
        finish = "length" if choice.get("finish_reason") == "length" else "stop"
        version = data.get("policy_version")
        return Generation(ids, logprobs, text, finish, int(version_at_start if version is None else version), url)

    def generate(self, prompts: Sequence[Sequence[int]]) -> list[Generation]:
        """Continue each prompt on a server; one `Generation` per prompt, in order.

        Raises `GenerationError` if a request failed in transport, with ``results`` holding a
        `Generation` or the `GenerationError` for each prompt (every request is waited for)."""
        started = time.monotonic()
        # the server is chosen when a request starts, so queued requests avoid a server that died
        futures = [self._pool.submit(self._dispatch, p) for p in prompts]
        results: list[Generation | GenerationError] = []
        for future in futures:
            try:
                results.append(future.result())
            except GenerationError as exc:
                results.append(exc)
        out = [r for r in results if isinstance(r, Generation)]
        self.stats["generated_tokens"] += sum(len(g.token_ids) for g in out)
        self.stats["seconds"] += time.monotonic() - started
        if out:
            self.policy_version = max(self.policy_version, *(g.policy_version for g in out))
        failed = [r for r in results if isinstance(r, GenerationError)]
        if failed:
            raise GenerationError(
                f"{len(failed)} of {len(results)} generations failed; first: {failed[0]}", results=list(results)
            )
        return out

    def close(self) -> None:
        """Stop the request threads."""
        self._pool.shutdown(wait=True)
