"""`OpenAIPolicy`: a `Policy` over any OpenAI-compatible chat-completions server.

It drives SweRepair-v0 with a model served by vLLM (``vllm serve``), an embedded server or a
hosted API, over plain HTTP: only the standard library (`urllib.request`, `json`), so the env
package stays light. One ``POST {base_url}/chat/completions`` per conversation, at most
`concurrency` in flight at once; the turns come back in the order of the conversations.

Request body
------------

| field | value |
|---|---|
| `model` | the constructor's `model` |
| `messages` | the conversation, converted for strict servers (below) |
| `tools` | the constructor's `tools` (OpenAI function schemas), only when given |
| `temperature`, `top_p`, `max_tokens` | the constructor's values (``None`` leaves a field out) |
| `logprobs`, `top_logprobs` | ``true`` and ``0``: the sampling logprob of each generated token |
| `return_token_ids` | ``true`` (vLLM >= 0.10): `prompt_token_ids` on the response, `token_ids` on each choice |
| `return_tokens_as_token_ids` | ``true`` (vLLM): logprob tokens read ``"token_id:<id>"`` (a second id source) |
| anything in `extra_body` | merged last, so it overrides the fields above |

`messages` (see `to_openai_messages`): a `tool` message whose `tool_call_id` answers no call of
the preceding assistant message (the env's ``invalid_*`` answers to malformed calls) becomes a
`user` message ``"Tool error: ..."``, placed after that turn's other tool messages; the
non-standard `name` key is dropped from tool messages.

`return_token_ids` and `return_tokens_as_token_ids` are vLLM extensions. A server that
rejects unknown fields answers 400 (or 422, FastAPI's validation status) naming one of them:
the request is then sent once more without them, and later requests leave them out
(`send_vllm_fields` becomes False; logged once). Set ``policy.send_vllm_fields = False`` up
front for such a server to save the round trip.

vLLM only accepts `tools` when it was started with ``--enable-auto-tool-choice
--tool-call-parser ...``; otherwise it answers 400 ``"auto" tool choice requires ...``. Either
start it so, or pass ``extra_body={"tool_choice": "none"}`` (the chat template still shows the
tools to the model, and its ``<tool_call>`` text comes back as content, which the env's
scaffold parser reads), or leave `tools` out (the scaffold's system prompt lists the tools).

Response
--------

From ``choices[0]``:

- `action`: ``{"role": "assistant", "content": ..., "tool_calls": [...]}`` when the server
  parsed tool calls, else the raw `content` string (the env's scaffold parser then finds the
  ``<tool_call>`` blocks in it).
- `completion_ids`: the choice's `token_ids`, else the ids of ``"token_id:<id>"`` logprob
  tokens, else ``None``. `prompt_ids`: the response's `prompt_token_ids`, else ``None``.
- `logprobs`: ``logprobs.content[*].logprob``, else ``None``. When both ids and logprobs are
  present they have the same length; if the server's lengths disagree, the ids are taken from
  the logprob tokens when those carry ids, else dropped, with a warning.
- `finish_reason`: ``"length"`` stays ``"length"``; anything else (``"stop"``,
  ``"tool_calls"``, ...) is ``"stop"``.
- `policy_version`: the response's `policy_version` (the embedded server's version of the
  weights that generated it), else 0.
- `info`: `id`, `model`, `usage`, the server's `finish_reason`, `attempts` (HTTP requests
  made), `available` (``{"prompt_ids": bool, "completion_ids": bool, "logprobs": bool}``),
  `ids_source` (``"token_ids"``, ``"logprobs"`` or ``None``) and, when the server separates
  them, `reasoning_content`.

Token-exact episodes
--------------------

Given a ``renderer`` (a `ChatRenderer` over the served model's tokenizer), the policy grows each
episode's token sequence itself, as `ModelPolicy` does (`start`/`act_on`, which
`swerepair.envs.rollout.run_episodes` drives): each request also carries
``prompt_token_ids``, the episode's whole sequence so far, and ``tool_choice: "none"`` (the
model's ``<tool_call>`` text comes back as text, which the env parses), so the model is
conditioned on exactly the tokens the trainer will score. swerepair's embedded server
(``swerepair serve``) continues such a prompt token for token and echoes it; each turn's
`completion_ids` and `logprobs` then join the episode (`EpisodeBuilder`), which comes out with
``tokens``, ``loss_mask`` and ``logprobs`` and ``info["token_exact"] = True``.

An episode stops being token-exact, with one warning per policy that says why, when a turn comes
back without ids or logprobs (a server that does not return them, such as a hosted API) or
generated from other ids than those sent (a server that ignores ``prompt_token_ids``, such as
vLLM's chat endpoint): the episode goes on from its messages and ends with empty ``tokens`` and
``info["token_exact"] = False``; trainers cannot use it. Without a ``renderer`` episodes are
never token-exact (the turns may still carry the server's ids, `AssistantTurn.trainable`).

Errors and retries
------------------

Connection errors (refused, reset, timeout) and HTTP 429, 500, 502, 503 and 504 are retried up
to `max_retries` times (so ``max_retries + 1`` requests at most), waiting ``backoff_s * 2**k``
(k = 0, 1, ...) with jitter (times a uniform factor in [0.5, 1]), capped at
`OpenAIPolicy.max_backoff_s` (30 s), and at least the answer's ``Retry-After`` seconds (also
capped). Other error statuses (400, 401, 404, 422, ...) raise `OpenAIError` at once; so does a 2xx answer that is not a
chat-completions JSON object (it is never retried). After the last retry `OpenAIUnavailable` (an
`OpenAIError` and a `swerepair.agents.inference.backend.GenerationError`) is raised with the last error (HTTP
status and body, or the connection error as ``__cause__``): rollouts then fail the episodes
waiting for those turns (``exit_reason="policy_error"``) instead of stopping.

The API key is the `api_key` argument, else ``$OPENAI_API_KEY`` if set, sent as
``Authorization: Bearer ...``. Proxies come from the usual ``*_proxy`` environment variables.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from swerepair.agents.inference.backend import GenerationError
from swerepair.agents.inference.http import HTTPRequestError, request_json
from swerepair.agents.inference.openai_api import VLLM_FIELDS, token_id
from swerepair.agents.policies.base import AssistantTurn
from swerepair.agents.policies.episode import EpisodeBuilder
from swerepair.agents.scaffold.parsing import HermesParser
from swerepair.core import Episode

__all__ = ["RETRY_STATUSES", "VLLM_FIELDS", "OpenAIError", "OpenAIPolicy", "OpenAIUnavailable", "to_openai_messages"]

log = logging.getLogger(__name__)

Message = dict[str, Any]

#: HTTP statuses that are retried with backoff.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class OpenAIError(RuntimeError):
    """A chat-completions request failed.

    Attributes:
        status: the HTTP status of the (last) answer, ``None`` for connection errors.
        body: the body of that answer (text), ``None`` for connection errors.
        attempts: how many HTTP requests were made.
    """

    def __init__(self, message: str, *, status: int | None = None, body: str | None = None, attempts: int = 1):
        super().__init__(message)
        self.status = status
        self.body = body
        self.attempts = attempts


class OpenAIUnavailable(OpenAIError, GenerationError):
    """The server could not be reached, or kept answering 429/5xx, through every retry."""


def to_openai_messages(messages: Sequence[Message]) -> list[Message]:
    """The env's conversation, as strict chat-completions servers accept it.

    A `tool` message must answer a call of the assistant message before it. The env's answers
    to malformed calls (``tool_call_id`` ``invalid_*``, matching no call) become one `user`
    message ``"Tool error: ..."`` per turn, placed after the turn's real tool messages (the
    tool messages must follow their assistant message directly). The non-standard `name` key is
    dropped from tool messages. The input is not modified.

    >>> conv = [
    ...     {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": "function",
    ...      "function": {"name": "shell", "arguments": "{}"}}]},
    ...     {"role": "tool", "tool_call_id": "invalid_1_0", "name": "invalid_tool_call",
    ...      "content": "Error: could not parse your tool call: bad JSON"},
    ...     {"role": "tool", "tool_call_id": "c1", "name": "shell", "content": "ok"},
    ... ]
    >>> [(m["role"], m.get("tool_call_id"), m["content"]) for m in to_openai_messages(conv)[1:]]
    [('tool', 'c1', 'ok'), ('user', None, 'Tool error: could not parse your tool call: bad JSON')]
    """
    out: list[Message] = []
    open_ids: set[Any] = set()  # ids of the preceding assistant message's calls not answered yet
    errors: list[str] = []

    def flush() -> None:
        if errors:
            out.append({"role": "user", "content": "\n\n".join(errors)})
            errors.clear()

    for message in messages:
        role = message.get("role")
        if role == "tool":
            call_id = message.get("tool_call_id")
            if call_id in open_ids:
                open_ids.discard(call_id)
                out.append({k: v for k, v in message.items() if k != "name"})
            else:
                text = str(message.get("content") or "")
                errors.append("Tool error: " + text.removeprefix("Error: "))
            continue
        flush()
        if role == "assistant":
            calls = message.get("tool_calls") or []
            open_ids = {c.get("id") for c in calls if isinstance(c, dict)} - {None}
        else:
            open_ids = set()
        out.append(dict(message))
    flush()
    return out


class OpenAIPolicy:
    """A `Policy` that asks an OpenAI-compatible chat-completions server for each turn.

    See the module docstring for the request and response fields, retries and errors.

    Args:
        base_url: the API root, e.g. ``"http://127.0.0.1:8000/v1"`` (``/chat/completions`` is
            appended).
        model: the model name the server serves (``--served-model-name`` for vLLM).
        api_key: sent as ``Authorization: Bearer <key>``; default ``$OPENAI_API_KEY`` if set,
            else no header.
        tools: OpenAI function schemas sent with each request (e.g. ``scaffold.tool_schemas()``
            or ``info["tools"]`` from ``env.reset``); ``None`` sends none.
        temperature: sampling temperature (``None``: left to the server).
        top_p: nucleus sampling mass (``None``: left to the server).
        max_tokens: most tokens generated per turn (``None``: left to the server).
        concurrency: most requests in flight at once (a thread pool of this size, shared by
            concurrent `act` calls).
        max_retries: retries of a request after a connection error or a 429/5xx answer.
        backoff_s: the first retry's wait; it doubles with each retry (with jitter, capped at
            `max_backoff_s`).
        timeout_s: socket timeout of one request (connecting, and each wait for data).
        extra_body: fields merged into every request body last (e.g. ``{"seed": 0}``,
            ``{"tool_choice": "none"}``, ``{"chat_template_kwargs": {...}}``).
        renderer: a `ChatRenderer` over the served model's tokenizer: episodes run by
            `run_episodes` are then token-exact where the server continues ``prompt_token_ids``
            (see "Token-exact episodes" in the module docstring).

    Use it as a context manager, or call `close`, to stop its threads.
    """

    #: The longest wait between two attempts, in seconds.
    max_backoff_s: float = 30.0

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        tools: list[dict[str, Any]] | None = None,
        temperature: float | None = 1.0,
        top_p: float | None = 1.0,
        max_tokens: int | None = 1024,
        concurrency: int = 8,
        max_retries: int = 5,
        backoff_s: float = 0.5,
        timeout_s: float = 300.0,
        extra_body: dict[str, Any] | None = None,
        renderer: Any = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if backoff_s < 0:
            raise ValueError("backoff_s must be >= 0")
        if timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")
        self.base_url = base_url.rstrip("/")
        self.url = self.base_url + "/chat/completions"
        self.model = model
        self._api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.tools = tools
        self.temperature = temperature
        self.top_p = top_p
        self.max_tokens = max_tokens
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.extra_body = dict(extra_body or {})
        #: Whether requests carry `VLLM_FIELDS`; turned off when the server rejects them.
        self.send_vllm_fields = True
        self._opener = urllib.request.build_opener()
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self.renderer = renderer
        self._warned_untrainable = False
        if renderer is None:
            # run_episodes builds token-exact episodes only with a policy that has start/act_on
            self.start = None  # type: ignore[assignment]
            self.act_on = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"OpenAIPolicy(base_url={self.base_url!r}, model={self.model!r})"

    # -- Policy ----------------------------------------------------------------------------
    def act(self, conversations: Sequence[Sequence[Message]]) -> list[AssistantTurn]:
        """One chat-completions request per conversation (concurrently); the turns in order.

        Raises `OpenAIError` if any request fails for good (the requests not started yet are
        cancelled).
        """
        conversations = list(conversations)
        if not conversations:
            return []
        pool = self._executor()
        futures = [pool.submit(self.complete, conv) for conv in conversations]
        try:
            turns = [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise
        if not all(t.trainable for t in turns):
            self.warn_untrainable("the server returned no token ids or no logprobs for its turns")
        return turns

    # -- token-exact episodes (with a renderer) ----------------------------------------------
    def start(self, messages: Sequence[Message]) -> _ServerEpisode:  # type: ignore[no-redef]
        """A token-exact episode starting from the env's first observation."""
        return _ServerEpisode(self, messages)

    def act_on(self, episodes: Sequence[_ServerEpisode]) -> list[AssistantTurn]:  # type: ignore[no-redef]
        """One turn per episode: from its token sequence while it is token-exact, else from its messages."""
        episodes = list(episodes)
        if not episodes:
            return []
        pool = self._executor()
        futures = [pool.submit(self._act_on_one, ep) for ep in episodes]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise

    def _act_on_one(self, episode: _ServerEpisode) -> AssistantTurn:
        if not episode.exact:
            return self.complete(episode.conversation)
        prompt = episode.prompt_ids
        turn = self.complete(episode.conversation, prompt_ids=prompt)
        if not turn.trainable:
            episode.drop_exactness(self, "the server returned no token ids or no logprobs for its turns")
        elif list(turn.prompt_ids or ()) != prompt:
            episode.drop_exactness(
                self, "the server generated from other token ids than the episode's (it ignores prompt_token_ids)"
            )
        return turn

    def warn_untrainable(self, why: str) -> None:
        """Warn, once per policy, that episodes are not token-exact (trainers cannot use them)."""
        with self._lock:
            first, self._warned_untrainable = not self._warned_untrainable, True
        if first:
            log.warning(
                "%s: %s, so episodes are not token-exact and cannot be trained on (their tokens are left "
                "empty, info['token_exact'] is False); swerepair serve and vLLM return ids and logprobs",
                self.url,
                why,
            )

    def complete(self, conversation: Sequence[Message], *, prompt_ids: Sequence[int] | None = None) -> AssistantTurn:
        """The next assistant turn of one conversation (one request, in the calling thread);
        with `prompt_ids`, the request asks the server to continue exactly those token ids."""
        messages = to_openai_messages(conversation)
        attempts = 0
        dropped_fields = False
        while True:
            with_vllm = self.send_vllm_fields
            body = self._body(messages, with_vllm)
            if prompt_ids is not None:
                body = {"tool_choice": "none", **body, "prompt_token_ids": list(prompt_ids)}
            try:
                data, tries = self._post(body)
            except OpenAIError as exc:
                attempts += exc.attempts
                exc.attempts = attempts
                if with_vllm and not dropped_fields and _rejects_vllm_fields(exc):
                    dropped_fields = True
                    self._drop_vllm_fields(exc)
                    continue
                raise
            attempts += tries
            return self._turn(data, attempts)

    def close(self) -> None:
        """Stop the worker threads (waiting for requests in flight)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def __enter__(self) -> OpenAIPolicy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- request ---------------------------------------------------------------------------
    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="openai-policy")
            return self._pool

    def _body(self, messages: list[Message], with_vllm: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": messages}
        if self.tools:
            body["tools"] = self.tools
        for key in ("temperature", "top_p", "max_tokens"):
            value = getattr(self, key)
            if value is not None:
                body[key] = value
        body["logprobs"] = True
        body["top_logprobs"] = 0
        if with_vllm:
            body.update(dict.fromkeys(VLLM_FIELDS, True))
        body.update(self.extra_body)
        if not with_vllm:
            for key in VLLM_FIELDS:
                body.pop(key, None)
        return body

    def _drop_vllm_fields(self, exc: OpenAIError) -> None:
        with self._lock:
            first = self.send_vllm_fields
            self.send_vllm_fields = False
        if first:
            log.warning(
                "%s rejected the vLLM fields %s (HTTP %s); sending requests without them from now on "
                "(no token ids unless the server returns them anyway)",
                self.url,
                ", ".join(VLLM_FIELDS),
                exc.status,
            )

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def _delay(self, retry: int, retry_after: float | None) -> float:
        """Seconds to wait before retry number `retry` (1-based)."""
        delay = min(self.max_backoff_s, self.backoff_s * 2 ** (retry - 1)) * random.uniform(0.5, 1.0)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_backoff_s))
        return delay

    def _post(self, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """POST `body`, retrying 429/5xx and connection failures with backoff; return the decoded
        answer and the number of requests made."""
        headers = self._headers()
        last: HTTPRequestError | None = None
        for attempt in range(1, self.max_retries + 2):
            if attempt > 1:
                time.sleep(self._delay(attempt - 1, last.retry_after if last is not None else None))
            try:
                data = request_json(self.url, body, timeout=self.timeout_s, headers=headers, opener=self._opener)
            except HTTPRequestError as exc:
                if exc.status is not None and exc.status not in RETRY_STATUSES:  # an answer, final
                    raise OpenAIError(str(exc), status=exc.status, body=exc.body, attempts=attempt) from None
                last = exc
                if attempt <= self.max_retries:
                    log.warning("POST %s (attempt %d of %d): %s", self.url, attempt, self.max_retries + 1, _why(exc))
                continue
            if not isinstance(data, dict):
                text = json.dumps(data)
                raise OpenAIError(
                    f"POST {self.url}: the body is not a JSON object: {text[:500]!r}",
                    status=200,
                    body=text,
                    attempts=attempt,
                )
            return data, attempt
        assert last is not None
        attempts = self.max_retries + 1
        error = OpenAIUnavailable(
            f"POST {self.url} failed after {attempts} attempt(s): {_why(last)}",
            status=last.status,
            body=last.body,
            attempts=attempts,
        )
        raise error from last.__cause__

    # -- response --------------------------------------------------------------------------
    def _turn(self, data: dict[str, Any], attempts: int) -> AssistantTurn:
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise OpenAIError(
                f"POST {self.url}: the answer has no choices: {json.dumps(data)[:2000]}",
                status=200,
                body=json.dumps(data),
                attempts=attempts,
            )
        choice = choices[0]
        message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
        content = _text(message.get("content"))
        tool_calls = message.get("tool_calls") or []
        action: str | Message
        if isinstance(tool_calls, list) and tool_calls:
            action = {"role": "assistant", "content": content, "tool_calls": list(tool_calls)}
        else:
            action = content

        logprobs, logprob_ids = _logprobs(choice.get("logprobs"))
        completion_ids = _int_tuple(choice.get("token_ids"))
        ids_source = "token_ids" if completion_ids is not None else None
        if completion_ids is None and logprob_ids is not None:
            completion_ids, ids_source = logprob_ids, "logprobs"
        if completion_ids is not None and logprobs is not None and len(completion_ids) != len(logprobs):
            if logprob_ids is not None and ids_source == "token_ids":
                log.warning(
                    "response %s: %d token_ids but %d logprobs; taking the ids from the logprob tokens",
                    data.get("id"),
                    len(completion_ids),
                    len(logprobs),
                )
                completion_ids, ids_source = logprob_ids, "logprobs"
            else:
                log.warning(
                    "response %s: %d token ids but %d logprobs; dropping the ids",
                    data.get("id"),
                    len(completion_ids),
                    len(logprobs),
                )
                completion_ids, ids_source = None, None
        prompt_ids = _int_tuple(data.get("prompt_token_ids"))
        if prompt_ids is None:
            prompt_ids = _int_tuple(choice.get("prompt_token_ids"))

        raw_finish = choice.get("finish_reason")
        info: dict[str, Any] = {
            "id": data.get("id"),
            "model": data.get("model"),
            "usage": data.get("usage"),
            "finish_reason": raw_finish,
            "attempts": attempts,
            "available": {
                "prompt_ids": prompt_ids is not None,
                "completion_ids": completion_ids is not None,
                "logprobs": logprobs is not None,
            },
            "ids_source": ids_source,
        }
        reasoning = message.get("reasoning_content", message.get("reasoning"))
        if reasoning:
            info["reasoning_content"] = reasoning
        return AssistantTurn(
            action=action,
            prompt_ids=prompt_ids,
            completion_ids=completion_ids,
            logprobs=logprobs,
            finish_reason="length" if raw_finish == "length" else "stop",
            policy_version=_version(data.get("policy_version")),
            info=info,
        )


class _ServerEpisode(EpisodeBuilder):
    """An `EpisodeBuilder` that keeps the env's conversation too, and goes on without tokens
    (``exact`` False) once a turn cannot join the sequence token for token."""

    def __init__(self, policy: OpenAIPolicy, messages: Sequence[Message]) -> None:
        super().__init__(policy.renderer, messages)
        self.conversation: list[Message] = [dict(m) for m in messages]
        self.exact = True

    def drop_exactness(self, policy: OpenAIPolicy, why: str) -> None:
        self.exact = False
        policy.warn_untrainable(why)

    def add_turn(self, turn: AssistantTurn, text: str) -> None:
        action = turn.action
        if isinstance(action, dict):
            message = dict(action)
        else:  # as the env records a text turn: its well-formed calls, with the env's ids
            number = 1 + sum(1 for m in self.conversation if m.get("role") == "assistant")
            parsed = HermesParser().parse(text, call_id_prefix=f"call_{number}")
            message = {"role": "assistant", "content": parsed.content}
            if parsed.tool_calls:
                message["tool_calls"] = [call.to_openai() for call in parsed.tool_calls]
        self.conversation.append(message)
        if self.exact:
            super().add_turn(turn, text)

    def add_observation(self, new_messages: Sequence[Message]) -> None:
        self.conversation += [dict(m) for m in new_messages]
        if self.exact:
            super().add_observation(new_messages)

    def finish(self, messages: Sequence[Message], reward: float, info: dict[str, Any], instance_id: str) -> Episode:
        if self.exact:
            return super().finish(messages, reward, info, instance_id)
        info = {**info, "token_exact": False}
        return Episode(instance_id, [dict(m) for m in messages], [], [], [], float(reward), info)


# -- helpers -------------------------------------------------------------------------------
def _version(value: Any) -> int:
    """The server's ``policy_version`` (swerepair's embedded server sends it; others do not: 0)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _why(exc: HTTPRequestError) -> str:
    """A failed attempt, said briefly: the status and the server's words, or the connection error."""
    if exc.status is None:
        cause = exc.__cause__
        reason = getattr(cause, "reason", cause)
        return f"connection error: {type(reason).__name__}: {reason}"
    return f"HTTP {exc.status}: {(exc.body or '')[:2000]}"


def _rejects_vllm_fields(exc: OpenAIError) -> bool:
    return exc.status in (400, 422) and any(field in (exc.body or "") for field in VLLM_FIELDS)


def _text(content: Any) -> str:
    """Message content as text (``None`` -> ``""``; a list of parts -> their text joined)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content)


def _int_tuple(value: Any) -> tuple[int, ...] | None:
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return None
    return tuple(value)


def _logprobs(block: Any) -> tuple[tuple[float, ...] | None, tuple[int, ...] | None]:
    """The sampling logprobs of a choice's ``logprobs`` and, if every token is ``token_id:N``, the ids."""
    entries = block.get("content") if isinstance(block, dict) else None
    if not isinstance(entries, list):
        return None, None
    values: list[float] = []
    ids: list[int] | None = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("logprob"), (int, float)):
            return None, None
        values.append(float(entry["logprob"]))
        token = entry.get("token")
        if ids is not None:
            value = token_id(token)
            if value is None:
                ids = None
            else:
                ids.append(value)
    return tuple(values), tuple(ids) if ids is not None else None
