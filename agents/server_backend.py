"""`ServerBackend`: a token-level `Backend` that generates through OpenAI-compatible servers.

Each prompt (token ids) goes as ``prompt_token_ids`` in one chat-completions request to the
embedded server (`swerepair.agents.server`), so a `ModelPolicy` over this backend produces
token-exact episodes exactly as over the in-process `hf` backend: the server continues the very
sequence the episode has accumulated and returns the ids and sampling logprobs it generated, and
the policy version of the weights it used. Requests are spread over the servers round-robin and
sent concurrently (the server batches them).
"""

from __future__ import annotations

import itertools
import json
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from swerepair.agents.policy import Generation

__all__ = ["ServerBackend"]


class ServerBackend:
    """Generate with ``POST {url}/v1/chat/completions`` (``prompt_token_ids``) on `urls`.

    Args:
        urls: server roots (``http://127.0.0.1:8000``; a trailing ``/v1`` is accepted).
        temperature, top_p, max_new_tokens: sampling settings sent with every request.
        concurrency: requests in flight at once.
        timeout_s: time limit of one request.
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
    ) -> None:
        if not urls:
            raise ValueError("ServerBackend needs at least one server url")
        self.urls = [u.rstrip("/").removesuffix("/v1") for u in urls]
        self.temperature, self.top_p, self.max_new_tokens = temperature, top_p, max_new_tokens
        self.timeout_s = timeout_s
        self._next = itertools.cycle(range(len(self.urls)))
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="server-backend")
        #: tokens generated and seconds spent, as `HFBackend.stats`
        self.stats = {"generated_tokens": 0, "seconds": 0.0}
        self.policy_version = 0  # the newest version a server reported

    def _one(self, url: str, prompt: Sequence[int]) -> Generation:
        body = {
            "messages": [{"role": "user", "content": ""}],
            "prompt_token_ids": list(prompt),
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_new_tokens,
            "logprobs": True,
            "top_logprobs": 0,
            "return_token_ids": True,
            "tool_choice": "none",
        }
        request = urllib.request.Request(
            f"{url}/v1/chat/completions",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            data: dict[str, Any] = json.loads(response.read())
        choice = data["choices"][0]
        ids = tuple(int(i) for i in choice["token_ids"])
        logprobs = tuple(float(e["logprob"]) for e in (choice.get("logprobs") or {}).get("content") or [])
        if len(logprobs) != len(ids):
            raise RuntimeError(f"{url}: {len(ids)} token ids but {len(logprobs)} logprobs")
        finish = "length" if choice.get("finish_reason") == "length" else "stop"
        text = choice["message"].get("content") or ""
        return Generation(ids, logprobs, text, finish, int(data.get("policy_version", 0)))

    def generate(self, prompts: Sequence[Sequence[int]]) -> list[Generation]:
        """Continue each prompt on a server; one `Generation` per prompt, in order."""
        import time

        started = time.monotonic()
        futures = [self._pool.submit(self._one, self.urls[next(self._next)], p) for p in prompts]
        out = [f.result() for f in futures]
        self.stats["generated_tokens"] += sum(len(g.token_ids) for g in out)
        self.stats["seconds"] += time.monotonic() - started
        if out:
            self.policy_version = max(self.policy_version, *(g.policy_version for g in out))
        return out

    def close(self) -> None:
        """Stop the request threads."""
        self._pool.shutdown(wait=True)
