"""An embedded OpenAI-compatible inference server over the ``hf`` backend (`HFBackend`).

It lets anything that speaks chat completions (`OpenAIPolicy`, the ``openai`` client, curl)
drive a model held in this process, on CPU or one GPU, with only the standard library for
HTTP (`http.server.ThreadingHTTPServer` and `json`): no vLLM, no web framework. Answers carry
the token ids and sampling logprobs a trainer needs, in vLLM's fields, so `OpenAIPolicy` gets
trainable turns from it exactly as from ``vllm serve``.

Endpoints
---------

| method | path | body | answer |
|---|---|---|---|
| GET | ``/health`` | | ``{"status": "ok", "policy_version": n}`` |
| GET | ``/v1/models`` | | OpenAI model list: ``{"object": "list", "data": [{"id": model_name, ...}]}`` |
| POST | ``/v1/chat/completions`` | a chat-completions request (below) | a ``chat.completion`` object (below) |
| GET | ``/policy_version`` | | ``{"policy_version": n}`` |
| POST | ``/policy_version`` | ``{"version": n}`` | ``{"policy_version": n}`` (the version now set) |
| POST | ``/reset_cache`` | ``{}`` | ``{"ok": true}``: drops any prefix cache the backend keeps |
| any | a path added with `InferenceServer.add_route` | JSON object | what its handler returns |

`HFBackend` keeps the KV states of what it has run in a prefix cache (``cache_bytes``, 2 GiB by
default; 0 turns it off): a conversation's next request is encoded from the end of its earlier
turns, and requests sharing a prompt have it encoded once (`stats` counts the tokens run and
reused). New weights drop it (a ``/weights`` update or a new ``/policy_version``);
``/reset_cache`` drops it on demand.

Errors are ``{"error": {"message": ..., "type": ..., "code": status}}``: 400 for a malformed
request (body not a JSON object, missing or malformed fields, unsupported options), 404 for an
unknown path or a `model` other than the served one (as vLLM and OpenAI answer), 405 for a
known path with the wrong method, 500 when generation or a handler fails, 503 while the server
stops. A handler registered with `add_route` that raises `ValueError` gives 400, `HTTPError`
its own status, anything else 500.

Chat-completions request
------------------------

| field | meaning |
|---|---|
| `model` | must be the served `model_name`, or absent (else 404) |
| `messages` | the conversation (required unless `prompt_token_ids` is given) |
| `tools` | OpenAI function schemas, shown to the model by the chat template |
| `prompt_token_ids` | non-standard: token ids to continue instead of rendering `messages` |
| `temperature` | sampling temperature, default 1.0; 0 is greedy |
| `top_p` | nucleus mass in (0, 1], default 1.0 |
| `max_tokens` | most tokens to generate, default `default_max_tokens` |
| `logprobs` | true: each generated token's sampling logprob in ``choices[0].logprobs`` |
| `top_logprobs` | only 0 (or absent); more answers 400 |
| `return_token_ids` | accepted; the ids are returned anyway |
| `return_tokens_as_token_ids` | true: logprob entries name their token ``"token_id:<id>"`` |
| `seed` | seeds the sampler for this request (reproducible completions) |
| `n` | only 1 (or absent); more answers 400 |
| `tool_choice` | ``"none"``: the completion is not parsed for tool calls |
| `stream` | only false (or absent); streaming answers 400 |

Other fields are ignored. Details:

- `messages` are OpenAI messages (`role`; `content` as text, a list of text parts or null;
  `tool_calls`; `tool_call_id`), rendered with ``ChatRenderer(tokenizer, tools)`` and the
  generation prompt, exactly as `ModelPolicy` renders them.
- `prompt_token_ids` makes the request a token-exact continuation (an episode's accumulated
  ids); `messages` and `tools` are then ignored. Ids outside the vocabulary answer 400.
- `max_tokens` (`max_completion_tokens` is read when it is absent) must fit in the model's
  context after the prompt (else 400); the default is shortened to fit.
- A seeded request runs in a batch of its own, so the same seed, prompt and parameters give
  the same completion whatever else the server is doing.

Chat-completions answer
-----------------------

| field | meaning |
|---|---|
| `id`, `object` | ``"chatcmpl-<hex>"``, ``"chat.completion"`` |
| `created`, `model` | Unix time, the served `model_name` |
| `policy_version` | the backend's `policy_version` when the request's batch ran |
| `prompt_token_ids` | the ids the model was conditioned on (always) |
| ``choices[0].message`` | ``{"role": "assistant", "content": ..., "tool_calls": [...]}`` |
| ``choices[0].finish_reason`` | ``"tool_calls"``, ``"stop"`` (a stop token) or ``"length"`` |
| ``choices[0].token_ids`` | the generated ids, the stop token included (as vLLM returns them) |
| ``choices[0].logprobs`` | ``{"content": [entry, ...]}`` when `logprobs` was asked for, else null |
| `usage` | `prompt_tokens`, `completion_tokens`, `total_tokens` |

- `message`: when `HermesParser` finds well-formed ``<tool_call>`` blocks, they become OpenAI
  `tool_calls` (``id``, ``type: "function"``, ``function: {name, arguments}``, `arguments` a
  JSON string), `content` is the text around them (null when empty) and `finish_reason` is
  ``"tool_calls"``. Otherwise `tool_calls` is ``[]`` (as vLLM answers) and `content` is the
  whole completion text; a malformed block stays in it. The stop token is never in `content`.
- logprob entries: ``{"token", "logprob", "bytes": null, "top_logprobs": []}``, one per id of
  `token_ids`, in order; `token` is the id's decoded text, or ``"token_id:<id>"`` with
  `return_tokens_as_token_ids`.

Batching
--------

Each request's handler thread renders and checks the request, then queues it and waits. One
generation worker thread takes the first queued request, collects more for at most
`batch_window_s` (up to `max_batch_size` in all), groups them by sampling parameters
(`temperature`, `top_p`, `max_tokens`; a seeded request is a group of its own) and calls the
backend's ``generate`` once per group, with the backend's `temperature`, `top_p` and
`max_new_tokens` set for that call. Generation happens on that thread only (the model is not
thread-safe) and under `InferenceServer.generation_lock`, which code that changes the weights
should hold; the other endpoints keep answering meanwhile. `InferenceServer.stats` counts
requests and batches.

Request-side tokenizer work (rendering, encoding, decoding) uses a private copy of the tokenizer
behind a lock: fast tokenizers are not safe to share between threads (``Already borrowed``).
"""

from __future__ import annotations

import copy
import json
import logging
import queue
import random
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from swerepair.agents.inference.backend import Generation
from swerepair.agents.inference.chat import ChatRenderer
from swerepair.agents.inference.hf_backend import DEFAULT_CACHE_BYTES, HFBackend
from swerepair.agents.inference.openai_api import token_name
from swerepair.agents.scaffold.parsing import HermesParser

__all__ = ["HTTPError", "InferenceServer", "serve"]

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], dict[str, Any]]

#: Largest request body accepted, in bytes.
MAX_BODY_BYTES = 64 * 1024 * 1024


class HTTPError(Exception):
    """Raised by a route handler to answer with `status` and ``{"error": {"message": message}}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _ServerStopped(RuntimeError):
    pass


_ERROR_TYPES = {400: "invalid_request_error", 404: "not_found_error", 405: "method_not_allowed", 503: "unavailable"}


def _error_body(status: int, message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": _ERROR_TYPES.get(status, "internal_error"), "code": status}}


@dataclass
class _Work:
    """One queued completion: the prompt, its sampling parameters and where its result goes."""

    prompt: list[int]
    temperature: float
    top_p: float
    max_tokens: int
    seed: int | None
    future: Future = field(default_factory=Future)

    def group_key(self, index: int) -> tuple[Any, ...]:
        if self.seed is not None:  # alone, so that its samples do not depend on its batch mates
            return ("seeded", index)
        return (self.temperature, self.top_p, self.max_tokens)


class InferenceServer:
    """An OpenAI-compatible chat-completions server over an `HFBackend` (see the module docstring).

    Args:
        model: a causal LM, on the device generation should run on.
        tokenizer: its tokenizer, with a chat template.
        host: the address to listen on (``"0.0.0.0"`` for every IPv4 interface, ``"::"`` IPv6).
        port: the port; 0 picks a free one (read it from `url` or `port` after `start`).
        model_name: the name served in ``/v1/models`` and required of requests' `model`.
        max_batch_size: most requests generated together.
        batch_window_s: how long the worker waits, after the first request of a batch, for more.
        default_max_tokens: `max_tokens` of requests that give none.
        seed: seed of the sampler (``None``: nondeterministic).

    Use it as a context manager, or call `start` and `stop`.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        model_name: str = "swerepair-policy",
        max_batch_size: int = 8,
        batch_window_s: float = 0.01,
        default_max_tokens: int = 512,
        seed: int | None = None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        if batch_window_s < 0:
            raise ValueError("batch_window_s must be >= 0")
        if default_max_tokens < 1:
            raise ValueError("default_max_tokens must be at least 1")
        self.model = model
        self.tokenizer = tokenizer
        self.host = host
        self.model_name = model_name
        self.max_batch_size = max_batch_size
        self.batch_window_s = batch_window_s
        self.default_max_tokens = default_max_tokens
        self._requested_port = port
        self._backend: Any = HFBackend(
            model, tokenizer, max_new_tokens=default_max_tokens, seed=seed, cache_bytes=cache_bytes
        )
        self._rng = random.Random(seed)  # reseeds the sampler after a seeded request
        try:  # request threads get their own copy (see the module docstring)
            self._tokenizer = copy.deepcopy(tokenizer)
        except Exception:
            self._tokenizer = tokenizer
        self._tok_lock = threading.Lock()
        self._parser = HermesParser()
        config = getattr(model, "config", None)
        self.max_model_len: int | None = getattr(config, "max_position_embeddings", None)
        self.vocab_size: int = _vocab_size(model, tokenizer)
        #: Held by the worker while it generates; hold it to change the weights between batches.
        self.generation_lock = threading.Lock()
        self._routes: dict[tuple[str, str], Handler] = {}
        self._stats = {"requests": 0, "batches": 0, "max_batch": 0}
        self._stats_lock = threading.Lock()
        self._queue: queue.Queue[_Work | None] = queue.Queue()
        self._accepting = False
        self._submit_lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._http_thread: threading.Thread | None = None
        self._worker: threading.Thread | None = None
        self.add_route("GET", "/health", self._health)
        self.add_route("GET", "/v1/models", self._models)
        self.add_route("POST", "/v1/chat/completions", self._chat_completions)
        self.add_route("GET", "/policy_version", lambda body: {"policy_version": self.policy_version})
        self.add_route("POST", "/policy_version", self._set_policy_version)
        self.add_route("POST", "/reset_cache", self._reset_cache)

    def __repr__(self) -> str:
        where = self.url if self._httpd is not None else "not started"
        return f"InferenceServer({self.model_name!r}, {where})"

    # -- properties --------------------------------------------------------------------------
    @property
    def backend(self) -> Any:
        """The object the worker generates with: an `HFBackend`, or anything with ``generate``
        (prompts -> `Generation` list) and writable `temperature`, `top_p`, `max_new_tokens`
        and `policy_version` attributes."""
        return self._backend

    @backend.setter
    def backend(self, backend: Any) -> None:
        with self.generation_lock:
            self._backend = backend

    @property
    def policy_version(self) -> int:
        """The backend's `policy_version`: stamped on each generation (set it after new weights)."""
        return int(getattr(self._backend, "policy_version", 0))

    @policy_version.setter
    def policy_version(self, version: int) -> None:
        self._backend.policy_version = int(version)

    @property
    def port(self) -> int:
        """The port listened on (after `start`)."""
        if self._httpd is None:
            raise RuntimeError("the server is not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """The API root for clients, e.g. ``"http://127.0.0.1:8000/v1"`` (after `start`)."""
        host = self.host
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/v1"

    @property
    def stats(self) -> dict[str, int]:
        """Counters (a copy): `requests` completions generated, `batches` backend ``generate``
        calls, `max_batch` the most prompts one call had; with the in-process backend also
        `encoded_tokens` (prompt tokens run through the model) and `reused_tokens` (prompt
        tokens whose KV states came from the prefix cache: a conversation's earlier turns, a
        prompt other requests share)."""
        with self._stats_lock:
            out = dict(self._stats)
        cache = getattr(self._backend, "cache", None)
        if cache is not None:
            out["encoded_tokens"] = int(self._backend.stats.get("encoded_tokens", 0))
            out["reused_tokens"] = int(cache.stats.reused_tokens)
        return out

    # -- routes ------------------------------------------------------------------------------
    def add_route(self, method: str, path: str, handler: Handler) -> None:
        """Answer ``method path`` with ``handler(body)``: `body` is the request's JSON object
        (``{}`` for GET or an empty body) and the handler returns a JSON-able dict. A
        `ValueError` it raises answers 400, an `HTTPError` its status, anything else 500.
        Adding a route that exists replaces it. Handlers run on the request's own thread."""
        if not path.startswith("/"):
            raise ValueError(f"a route path starts with '/': {path!r}")
        self._routes[(method.upper(), _normalise_path(path))] = handler

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> InferenceServer:
        """Bind the port and serve on background threads; return self."""
        if self._httpd is not None:
            raise RuntimeError("the server is already started")
        httpd_class = _HTTPServer6 if ":" in self.host else _HTTPServer
        httpd = httpd_class((self.host, self._requested_port), _RequestHandler)
        httpd.app = self
        self._queue = queue.Queue()
        with self._submit_lock:
            self._accepting = True
        self._worker = threading.Thread(target=self._work, name="inference-worker", daemon=True)
        self._worker.start()
        self._httpd = httpd
        self._http_thread = threading.Thread(target=httpd.serve_forever, name="inference-http", daemon=True)
        self._http_thread.start()
        log.info("serving %s at %s", self.model_name, self.url)
        return self

    def stop(self) -> None:
        """Stop serving: requests already queued are still generated and answered, later ones
        get 503; returns once the worker is done. The server can be started again."""
        httpd, self._httpd = self._httpd, None
        with self._submit_lock:
            self._accepting = False
            self._queue.put(None)  # wakes the worker, which fails whatever is still queued
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if self._http_thread is not None:
            self._http_thread.join()
            self._http_thread = None
        if self._worker is not None:
            self._worker.join()
            self._worker = None

    def __enter__(self) -> InferenceServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- built-in endpoints -------------------------------------------------------------------
    def _health(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"status": "ok", "policy_version": self.policy_version}

    def _models(self, body: dict[str, Any]) -> dict[str, Any]:
        entry: dict[str, Any] = {"id": self.model_name, "object": "model", "created": 0, "owned_by": "swerepair"}
        if self.max_model_len is not None:
            entry["max_model_len"] = self.max_model_len
        return {"object": "list", "data": [entry]}

    def _set_policy_version(self, body: dict[str, Any]) -> dict[str, Any]:
        version = body.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise ValueError("'version' must be an integer")
        self.policy_version = version
        return {"policy_version": self.policy_version}

    def _reset_cache(self, body: dict[str, Any]) -> dict[str, Any]:
        reset = getattr(self._backend, "reset_cache", None)
        if callable(reset):
            with self.generation_lock:
                reset()
        return {"ok": True}

    def _chat_completions(self, body: dict[str, Any]) -> dict[str, Any]:
        model = body.get("model")
        if model is not None and model != self.model_name:
            raise HTTPError(404, f"The model `{model}` does not exist; this server serves `{self.model_name}`.")
        if body.get("stream"):
            raise ValueError("streaming is not supported ('stream' must be false)")
        n = body.get("n")
        if n is not None and n != 1:
            raise ValueError(f"only n=1 is supported, got n={n!r}")
        top_logprobs = body.get("top_logprobs")
        if top_logprobs is not None and top_logprobs != 0:
            raise ValueError(f"only top_logprobs=0 is supported, got {top_logprobs!r}")
        temperature = _number(body, "temperature", 1.0)
        if temperature < 0:
            raise ValueError("'temperature' must be >= 0")
        top_p = _number(body, "top_p", 1.0)
        if not 0 < top_p <= 1:
            raise ValueError("'top_p' must be in (0, 1]")
        seed = body.get("seed")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise ValueError("'seed' must be an integer")
        want_logprobs = _flag(body, "logprobs")
        as_ids = _flag(body, "return_tokens_as_token_ids")

        prompt = self._prompt(body)
        max_tokens = self._max_tokens(body, len(prompt))
        work = _Work(prompt, float(temperature), float(top_p), max_tokens, seed)
        with self._submit_lock:
            if not self._accepting:
                raise HTTPError(503, "the server is stopping")
            self._queue.put(work)
        try:
            gen: Generation = work.future.result()
        except _ServerStopped as exc:
            raise HTTPError(503, str(exc)) from None
        except Exception as exc:  # a generation failure is the server's, never the request's
            log.exception("generation failed")
            raise HTTPError(500, f"generation failed: {type(exc).__name__}: {exc}") from None
        return self._answer(
            prompt, gen, want_logprobs=want_logprobs, as_ids=as_ids, parse=body.get("tool_choice") != "none"
        )

    # -- request helpers ---------------------------------------------------------------------
    def _prompt(self, body: dict[str, Any]) -> list[int]:
        """The prompt's ids: `prompt_token_ids` as given, else `messages` (and `tools`) rendered."""
        ids = body.get("prompt_token_ids")
        if ids is not None:
            if not isinstance(ids, list) or not ids or not all(_is_int(i) for i in ids):
                raise ValueError("'prompt_token_ids' must be a non-empty list of integers")
            bad = [i for i in ids if not 0 <= i < self.vocab_size]
            if bad:
                raise ValueError(f"'prompt_token_ids' has ids outside the vocabulary [0, {self.vocab_size}): {bad[:5]}")
            return list(ids)
        messages = body.get("messages")
        if messages is None:
            raise ValueError("'messages' is required (or 'prompt_token_ids')")
        if not isinstance(messages, list) or not messages:
            raise ValueError("'messages' must be a non-empty list of messages")
        tools = body.get("tools") or []
        if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
            raise ValueError("'tools' must be a list of function schemas")
        plain = [_message(m, k) for k, m in enumerate(messages)]
        with self._tok_lock:
            renderer = ChatRenderer(self._tokenizer, tools)
            return renderer.encode(renderer.render(plain, add_generation_prompt=True))

    def _max_tokens(self, body: dict[str, Any], prompt_len: int) -> int:
        value = body.get("max_tokens")
        if value is None:
            value = body.get("max_completion_tokens")
        room = None if self.max_model_len is None else self.max_model_len - prompt_len
        if room is not None and room < 1:
            raise ValueError(f"the prompt has {prompt_len} tokens; the model's context is {self.max_model_len}")
        if value is None:
            return self.default_max_tokens if room is None else min(self.default_max_tokens, room)
        if not _is_int(value) or value < 1:
            raise ValueError("'max_tokens' must be a positive integer")
        if room is not None and value > room:
            raise ValueError(
                f"max_tokens={value} with a prompt of {prompt_len} tokens exceeds the model's context "
                f"({self.max_model_len}); ask for at most {room}"
            )
        return int(value)

    def _answer(
        self, prompt: list[int], gen: Generation, *, want_logprobs: bool, as_ids: bool, parse: bool
    ) -> dict[str, Any]:
        ids = [int(i) for i in gen.token_ids]
        body_ids = ids[:-1] if gen.finish_reason == "stop" and ids else ids
        request_id = uuid.uuid4().hex
        with self._tok_lock:
            text = self._tokenizer.decode(body_ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
            tokens = None
            if want_logprobs and not as_ids:
                tokens = [
                    self._tokenizer.decode([i], skip_special_tokens=False, clean_up_tokenization_spaces=False)
                    for i in ids
                ]
        message: dict[str, Any] = {"role": "assistant", "content": text, "tool_calls": []}
        finish = gen.finish_reason
        if parse:
            parsed = self._parser.parse(text, call_id_prefix=f"call_{request_id[:16]}")
            if parsed.tool_calls:
                message["content"] = parsed.content or None
                message["tool_calls"] = [call.to_openai() for call in parsed.tool_calls]
                finish = "tool_calls"
        logprobs = None
        if want_logprobs:
            names = [token_name(i) for i in ids] if tokens is None else tokens
            logprobs = {
                "content": [
                    {"token": name, "logprob": float(lp), "bytes": None, "top_logprobs": []}
                    for name, lp in zip(names, gen.logprobs, strict=True)
                ]
            }
        return {
            "id": f"chatcmpl-{request_id}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model_name,
            "policy_version": int(gen.policy_version),
            "prompt_token_ids": list(prompt),
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": finish,
                    "token_ids": ids,
                    "logprobs": logprobs,
                }
            ],
            "usage": {
                "prompt_tokens": len(prompt),
                "completion_tokens": len(ids),
                "total_tokens": len(prompt) + len(ids),
            },
        }

    # -- the generation worker ---------------------------------------------------------------
    def _work(self) -> None:
        q = self._queue
        while True:
            first = q.get()
            if first is None:
                break
            batch = [first]
            stop = False
            deadline = time.monotonic() + self.batch_window_s
            while len(batch) < self.max_batch_size:
                remaining = deadline - time.monotonic()
                try:
                    item = q.get(timeout=remaining) if remaining > 0 else q.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._run(batch)
            if stop:
                break
        while True:  # stopped: fail what is left
            try:
                item = q.get_nowait()
            except queue.Empty:
                return
            if item is not None and item.future.set_running_or_notify_cancel():
                item.future.set_exception(_ServerStopped("the server stopped before generating this request"))

    def _run(self, batch: Sequence[_Work]) -> None:
        groups: dict[tuple[Any, ...], list[_Work]] = {}
        for index, item in enumerate(batch):
            if item.future.set_running_or_notify_cancel():
                groups.setdefault(item.group_key(index), []).append(item)
        for items in groups.values():
            head = items[0]
            try:
                with self.generation_lock:
                    backend = self._backend
                    backend.temperature = head.temperature
                    backend.top_p = head.top_p
                    backend.max_new_tokens = head.max_tokens
                    generator = getattr(backend, "generator", None)
                    if head.seed is not None and generator is not None:
                        generator.manual_seed(head.seed)
                    try:
                        gens = backend.generate([item.prompt for item in items])
                    finally:
                        if head.seed is not None and generator is not None:
                            generator.manual_seed(self._rng.getrandbits(63))
                if len(gens) != len(items):
                    raise RuntimeError(f"the backend returned {len(gens)} generations for {len(items)} prompts")
            except Exception as exc:
                for item in items:
                    item.future.set_exception(exc)
                continue
            with self._stats_lock:
                self._stats["requests"] += len(items)
                self._stats["batches"] += 1
                self._stats["max_batch"] = max(self._stats["max_batch"], len(items))
            for item, gen in zip(items, gens, strict=True):
                item.future.set_result(gen)


# -- HTTP plumbing ---------------------------------------------------------------------------
class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    app: InferenceServer


class _HTTPServer6(_HTTPServer):
    address_family = socket.AF_INET6


class _RequestHandler(BaseHTTPRequestHandler):
    server: _HTTPServer
    server_version = "swerepair-inference"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            raise HTTPError(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
        raw = self.rfile.read(length) if length > 0 else b""
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise HTTPError(400, f"the body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise HTTPError(400, f"the body must be a JSON object, got {type(body).__name__}")
        return body

    def _dispatch(self, method: str) -> None:
        app = self.server.app
        path = _normalise_path(self.path)
        handler = app._routes.get((method, path))
        try:
            if handler is None:
                allowed = sorted(m for m, p in app._routes if p == path)
                if allowed:
                    self._send(
                        405, _error_body(405, f"{method} is not allowed on {path}"), {"Allow": ", ".join(allowed)}
                    )
                else:
                    self._send(404, _error_body(404, f"no route for {method} {path}"))
                return
            try:
                body = self._body() if method != "GET" else {}
                result = handler(body)
            except HTTPError as exc:
                self._send(exc.status, _error_body(exc.status, exc.message))
            except ValueError as exc:
                self._send(400, _error_body(400, str(exc)))
            except Exception as exc:
                log.exception("%s %s failed", method, path)
                self._send(500, _error_body(500, f"{type(exc).__name__}: {exc}"))
            else:
                self._send(200, result)
        except (BrokenPipeError, ConnectionResetError):  # the client went away
            pass


# -- helpers ---------------------------------------------------------------------------------
def _normalise_path(path: str) -> str:
    path = path.split("?", 1)[0].split("#", 1)[0]
    return path.rstrip("/") or "/"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(body: dict[str, Any], key: str, default: float) -> float:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError(f"'{key}' must be a number")
    return float(value)


def _flag(body: dict[str, Any], key: str) -> bool:
    value = body.get(key)
    if value is not None and not isinstance(value, bool):
        raise ValueError(f"'{key}' must be true or false")
    return bool(value)


def _message(m: Any, k: int) -> dict[str, Any]:
    """One request message as `ChatRenderer` takes it (content parts joined into text)."""
    if not isinstance(m, dict) or not isinstance(m.get("role"), str):
        raise ValueError(f"messages[{k}] must be an object with a string 'role'")
    content = m.get("content")
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type", "text") != "text":
                raise ValueError(f"messages[{k}]: only text content parts are supported")
            parts.append(str(part.get("text", "")))
        content = "".join(parts)
    elif content is not None and not isinstance(content, str):
        raise ValueError(f"messages[{k}].content must be a string, a list of text parts or null")
    calls = m.get("tool_calls")
    if calls is not None and (not isinstance(calls, list) or not all(isinstance(c, dict) for c in calls)):
        raise ValueError(f"messages[{k}].tool_calls must be a list of objects")
    return {**m, "content": content}


def _vocab_size(model: Any, tokenizer: Any) -> int:
    try:
        return int(model.get_input_embeddings().num_embeddings)
    except Exception:
        size = getattr(getattr(model, "config", None), "vocab_size", None)
        return int(size) if isinstance(size, int) else len(tokenizer)


def serve(
    model_name_or_path: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    model_name: str | None = None,
    device: str = "cpu",
    dtype: Any = None,
    max_batch_size: int = 8,
    batch_window_s: float = 0.01,
    default_max_tokens: int = 512,
    seed: int | None = None,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
) -> None:
    """Load `model_name_or_path` (`swerepair.agents.inference.models.load_model`: a built-in name, a
    directory or a cached hub id) and serve it until interrupted (Ctrl-C).

    `model_name` is the name clients send as `model` (default ``"swerepair-policy"``); the
    other arguments are `load_model`'s and `InferenceServer`'s.
    """
    from swerepair.agents.inference.models import load_model
    from swerepair.agents.inference.weight_endpoints import attach_weight_endpoints

    model, tokenizer = load_model(model_name_or_path, device=device, dtype=dtype)
    server = InferenceServer(
        model,
        tokenizer,
        host=host,
        port=port,
        model_name=model_name or "swerepair-policy",
        max_batch_size=max_batch_size,
        batch_window_s=batch_window_s,
        default_max_tokens=default_max_tokens,
        seed=seed,
        cache_bytes=cache_bytes,
    )
    attach_weight_endpoints(server)  # live weight updates from a trainer (/weights/*)
    stopped = threading.Event()
    with server:
        print(f"serving {model_name_or_path} as {server.model_name!r} at {server.url}", file=sys.stderr, flush=True)
        try:
            while not stopped.wait(1.0):
                pass
        except KeyboardInterrupt:
            print("stopping", file=sys.stderr, flush=True)
