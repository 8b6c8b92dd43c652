"""`OpenAIPolicy` against a real HTTP server on 127.0.0.1 that answers like vLLM's.

The server (`FakeVLLM`) implements ``POST /v1/chat/completions``: it records every request
body and header set and the most requests it had in flight at once, and can be told to sleep,
to fail the first N requests with 503, to reject vLLM's extra fields with 400, or to return
misaligned token ids.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import urllib.error
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from swerepair.agents.policies.base import Policy
from swerepair.agents.policies.openai import VLLM_FIELDS, OpenAIError, OpenAIPolicy, to_openai_messages
from swerepair.agents.scaffold import nano_agent
from swerepair.core import Task
from swerepair.envs.env import SweRepairEnv

pytestmark = pytest.mark.filterwarnings("ignore::swerepair.envs.sandbox.LocalSandboxWarning")

N_TOKENS = 5
PROMPT_IDS = [151644, 872, 198, 6023, 151645]


@dataclass
class FakeVLLM:
    """What the server does and what it saw."""

    base_url: str = ""
    delay_s: float = 0.0
    fail_first: int = 0
    reject_vllm_fields: bool = False
    misalign: bool = False
    finish_reason: str = "stop"
    #: body -> the assistant message's ``content`` and ``tool_calls``
    reply: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def completion(self, body: dict[str, Any]) -> dict[str, Any]:
        """A chat-completions answer shaped like vLLM 0.10's."""
        last = body["messages"][-1]
        message = {"role": "assistant", "content": f"echo: {last.get('content')}", "tool_calls": []}
        if self.reply is not None:
            message.update(self.reply(body))
        ids = list(range(1000, 1000 + N_TOKENS))
        choice: dict[str, Any] = {
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": "tool_calls" if message["tool_calls"] else self.finish_reason,
            "stop_reason": None,
        }
        if body.get("logprobs"):
            as_ids = body.get("return_tokens_as_token_ids")
            choice["logprobs"] = {
                "content": [
                    {
                        "token": f"token_id:{i}" if as_ids else f"tok{i}",
                        "logprob": -0.25 * (k + 1),
                        "bytes": None,
                        "top_logprobs": [],
                    }
                    for k, i in enumerate(ids)
                ]
            }
        answer: dict[str, Any] = {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [choice],
            "usage": {"prompt_tokens": len(PROMPT_IDS), "completion_tokens": N_TOKENS, "total_tokens": 10},
        }
        if body.get("return_token_ids"):
            choice["token_ids"] = ids[:-1] if self.misalign else ids
            answer["prompt_token_ids"] = PROMPT_IDS
        return answer


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        state = self.server.state
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        with state.lock:
            state.requests.append(body)
            state.headers.append(dict(self.headers))
            n = len(state.requests)
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            time.sleep(state.delay_s)
        finally:
            with state.lock:  # before answering: the client's next request cannot overlap this one
                state.in_flight -= 1
        if self.path != "/v1/chat/completions":
            return self._send(404, {"error": {"message": f"no route {self.path}"}})
        if n <= state.fail_first:
            return self._send(503, {"error": {"message": "server overloaded", "code": 503}})
        if state.reject_vllm_fields and any(f in body for f in VLLM_FIELDS):
            unknown = next(f for f in VLLM_FIELDS if f in body)
            msg = f"Unrecognized request argument supplied: {unknown}"
            return self._send(400, {"error": {"message": msg, "type": "invalid_request_error"}})
        if body["model"] != "test-model":
            msg = f"The model `{body['model']}` does not exist."
            return self._send(400, {"error": {"message": msg, "type": "NotFoundError"}})
        return self._send(200, state.completion(body))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: FakeVLLM

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out and hung up: expected in the timeout test


@pytest.fixture
def server() -> Iterator[FakeVLLM]:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.state = FakeVLLM(base_url=f"http://127.0.0.1:{httpd.server_address[1]}/v1")
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd.state
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture(autouse=True)
def _no_proxy_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def make_policy(server: FakeVLLM, **kw: Any) -> OpenAIPolicy:
    kw.setdefault("backoff_s", 0.01)
    kw.setdefault("timeout_s", 10)
    return OpenAIPolicy(base_url=server.base_url, model=kw.pop("model", "test-model"), **kw)


CONV = [{"role": "system", "content": "You fix bugs."}, {"role": "user", "content": "add() subtracts"}]


@pytest.fixture
def toy_env(toy_task: Task) -> Iterator[SweRepairEnv]:
    env = SweRepairEnv(tasks=[toy_task])
    yield env
    env.close()


# -- the request -----------------------------------------------------------------------------
def test_the_request_carries_the_options(server: FakeVLLM, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    tools = nano_agent().tool_schemas()
    with make_policy(server, tools=tools, temperature=0.7, top_p=0.9, max_tokens=64, extra_body={"seed": 3}) as p:
        assert p.act([]) == []
        assert server.requests == []
        p.act([CONV])
    (body,) = server.requests
    assert body["model"] == "test-model"
    assert body["messages"] == CONV
    assert body["tools"] == tools
    assert (body["temperature"], body["top_p"], body["max_tokens"]) == (0.7, 0.9, 64)
    assert body["logprobs"] is True and body["top_logprobs"] == 0
    assert body["return_token_ids"] is True and body["return_tokens_as_token_ids"] is True
    assert body["seed"] == 3
    assert server.headers[0]["Authorization"] == "Bearer sk-from-env"


def test_no_tools_and_an_explicit_key(server: FakeVLLM, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    with make_policy(server, api_key="sk-given", max_tokens=None) as p:
        p.act([CONV])
    assert "tools" not in server.requests[0] and "max_tokens" not in server.requests[0]
    assert server.headers[0]["Authorization"] == "Bearer sk-given"


# -- the response ----------------------------------------------------------------------------
def test_ids_and_logprobs_come_back_aligned(server: FakeVLLM) -> None:
    with make_policy(server) as p:
        assert isinstance(p, Policy)
        (turn,) = p.act([CONV])
    assert turn.action == "echo: add() subtracts"
    assert turn.prompt_ids == tuple(PROMPT_IDS)
    assert turn.completion_ids == tuple(range(1000, 1000 + N_TOKENS))
    assert turn.logprobs == pytest.approx([-0.25 * (k + 1) for k in range(N_TOKENS)])
    assert turn.trainable and turn.finish_reason == "stop"
    assert turn.info["id"] == "chatcmpl-1" and turn.info["usage"]["completion_tokens"] == N_TOKENS
    assert turn.info["available"] == {"prompt_ids": True, "completion_ids": True, "logprobs": True}
    assert turn.info["ids_source"] == "token_ids" and turn.info["attempts"] == 1


def test_ids_from_logprob_tokens_and_length_finish(server: FakeVLLM) -> None:
    server.finish_reason = "length"
    with make_policy(server, extra_body={"return_token_ids": False}) as p:
        (turn,) = p.act([CONV])
    assert turn.completion_ids == tuple(range(1000, 1000 + N_TOKENS)) and turn.info["ids_source"] == "logprobs"
    assert turn.prompt_ids is None and not turn.trainable
    assert turn.finish_reason == "length"


@pytest.mark.parametrize("tokens_as_ids", [True, False])
def test_misaligned_ids_are_fixed_or_dropped(
    server: FakeVLLM, tokens_as_ids: bool, caplog: pytest.LogCaptureFixture
) -> None:
    server.misalign = True  # token_ids one short of the logprobs
    with make_policy(server, extra_body={"return_tokens_as_token_ids": tokens_as_ids}) as p:
        (turn,) = p.act([CONV])
    assert turn.logprobs is not None and len(turn.logprobs) == N_TOKENS
    if tokens_as_ids:
        assert turn.completion_ids == tuple(range(1000, 1000 + N_TOKENS)) and turn.info["ids_source"] == "logprobs"
    else:
        assert turn.completion_ids is None and turn.info["available"]["completion_ids"] is False
    assert "4 token" in caplog.text and "5 logprobs" in caplog.text


def test_tool_calls_become_a_dict_action_the_env_accepts(server: FakeVLLM, toy_env: SweRepairEnv) -> None:
    call = {
        "id": "call_srv_0",
        "type": "function",
        "function": {"name": "shell", "arguments": '{"cmd": "cat calc.py"}'},
    }
    server.reply = lambda body: {"content": None, "tool_calls": [call]}
    obs, info = toy_env.reset()
    with make_policy(server, tools=info["tools"]) as p:
        (turn,) = p.act([obs])
        assert turn.action == {"role": "assistant", "content": "", "tool_calls": [call]}
        assert turn.finish_reason == "stop" and turn.info["finish_reason"] == "tool_calls"
        obs, _, terminated, truncated, _ = toy_env.step(turn.action)
        assert not (terminated or truncated)
        assert obs[-1]["role"] == "tool" and obs[-1]["tool_call_id"] == "call_srv_0" and obs[-1]["name"] == "shell"
        assert "return a - b" in obs[-1]["content"]
        p.act([obs])  # the tool answer goes back as a standard tool message
    sent = server.requests[-1]["messages"]
    assert sent[-2]["role"] == "assistant" and sent[-2]["tool_calls"][0]["id"] == "call_srv_0"
    assert sent[-1] == {"role": "tool", "tool_call_id": "call_srv_0", "content": obs[-1]["content"]}


def test_raw_tool_call_text_is_a_str_action(server: FakeVLLM, toy_env: SweRepairEnv) -> None:
    text = 'Looking.\n<tool_call>\n{"name": "shell", "arguments": {"cmd": "ls"}}\n</tool_call>'
    server.reply = lambda body: {"content": text}
    obs, _ = toy_env.reset()
    with make_policy(server) as p:
        (turn,) = p.act([obs])
    assert turn.action == text
    obs, *_ = toy_env.step(turn.action)
    assert obs[-2]["tool_calls"][0]["function"]["name"] == "shell"
    assert obs[-1]["role"] == "tool" and "calc.py" in obs[-1]["content"]


def test_orphan_tool_messages_become_user_messages(server: FakeVLLM, toy_env: SweRepairEnv) -> None:
    obs, _ = toy_env.reset()
    bad = "<tool_call>{not json}</tool_call>"
    good = '<tool_call>{"name": "shell", "arguments": {"cmd": "ls"}}</tool_call>'
    obs, *_ = toy_env.step(f"First {bad} then {good}")
    assert [m.get("tool_call_id") for m in obs[-2:]] == ["invalid_1_0", "call_1_1"]
    with make_policy(server) as p:
        p.act([obs])
    sent = server.requests[0]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool", "user"]
    assert sent[3] == {"role": "tool", "tool_call_id": "call_1_1", "content": obs[-1]["content"]}
    assert sent[4]["content"].startswith("Tool error: could not parse your tool call: invalid JSON")
    assert all("name" not in m for m in sent if m["role"] == "tool")


def test_message_conversion_edge_cases() -> None:
    conv = [
        {"role": "user", "content": "hi"},
        {"role": "tool", "tool_call_id": "x", "name": "shell", "content": "Not executed: budget"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "a", "function": {"name": "shell"}}]},
        {"role": "tool", "tool_call_id": "a", "name": "shell", "content": "out"},
        {"role": "tool", "tool_call_id": "a", "name": "shell", "content": "again"},  # answered twice
        {"role": "tool", "tool_call_id": "invalid_2_2", "name": "invalid_tool_call", "content": "Error: e2"},
    ]
    before = json.dumps(conv)
    out = to_openai_messages(conv)
    assert json.dumps(conv) == before  # the input is not modified
    assert out == [
        {"role": "user", "content": "hi"},
        {"role": "user", "content": "Tool error: Not executed: budget"},
        conv[2],
        {"role": "tool", "tool_call_id": "a", "content": "out"},
        {"role": "user", "content": "Tool error: again\n\nTool error: e2"},
    ]


# -- concurrency -----------------------------------------------------------------------------
def test_concurrency_is_bounded_and_requests_overlap(server: FakeVLLM) -> None:
    server.delay_s = 0.2
    convs = [[{"role": "user", "content": f"conversation {i}"}] for i in range(6)]
    with make_policy(server, concurrency=2) as p:
        start = time.monotonic()
        turns = p.act(convs)
        elapsed = time.monotonic() - start
    assert [t.action for t in turns] == [f"echo: conversation {i}" for i in range(6)]
    assert len(server.requests) == 6
    assert server.max_in_flight == 2  # never more than the limit, and the requests did overlap
    assert elapsed >= 0.55, elapsed  # three waves of two


# -- errors and retries ----------------------------------------------------------------------
def test_503_is_retried_until_success(server: FakeVLLM) -> None:
    server.fail_first = 2
    with make_policy(server, max_retries=3) as p:
        (turn,) = p.act([CONV])
    assert len(server.requests) == 3 and turn.info["attempts"] == 3
    assert turn.action == "echo: add() subtracts"


def test_503_gives_up_after_max_retries(server: FakeVLLM) -> None:
    server.fail_first = 100
    with make_policy(server, max_retries=2) as p, pytest.raises(OpenAIError) as err:
        p.act([CONV])
    assert err.value.status == 503 and err.value.attempts == 3 and "server overloaded" in (err.value.body or "")
    assert "failed after 3 attempt(s)" in str(err.value)
    assert len(server.requests) == 3


def test_other_4xx_raise_at_once(server: FakeVLLM) -> None:
    with make_policy(server, model="no-such-model") as p, pytest.raises(OpenAIError, match="does not exist") as err:
        p.act([CONV])
    assert err.value.status == 400 and err.value.attempts == 1
    assert len(server.requests) == 1


def test_connection_refused_retries_then_raises_quickly() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    policy = OpenAIPolicy(base_url=f"http://127.0.0.1:{port}/v1", model="m", max_retries=2, backoff_s=0.01)
    start = time.monotonic()
    with policy, pytest.raises(OpenAIError, match="Connection refused") as err:
        policy.act([CONV])
    assert time.monotonic() - start < 2.0
    assert err.value.attempts == 3 and err.value.status is None
    assert f"127.0.0.1:{port}/v1/chat/completions failed after 3 attempt(s): connection error" in str(err.value)
    assert isinstance(err.value.__cause__, urllib.error.URLError)


def test_a_timeout_is_retried(server: FakeVLLM) -> None:
    server.delay_s = 0.6
    with make_policy(server, timeout_s=0.15, max_retries=1) as p, pytest.raises(OpenAIError, match="timed out"):
        p.act([CONV])
    assert len(server.requests) == 2


def test_rejected_vllm_fields_are_dropped_once(server: FakeVLLM, caplog: pytest.LogCaptureFixture) -> None:
    server.reject_vllm_fields = True
    with make_policy(server, concurrency=3) as p:
        turns = p.act([CONV] * 3)  # concurrent: several may be rejected before the first fallback
        assert not p.send_vllm_fields
        for turn in turns:
            assert turn.logprobs is not None and len(turn.logprobs) == N_TOKENS
            assert turn.completion_ids is None and turn.prompt_ids is None
            assert turn.info["available"] == {"prompt_ids": False, "completion_ids": False, "logprobs": True}
        n = len(server.requests)
        assert 4 <= n <= 6
        (turn,) = p.act([CONV])
    assert len(server.requests) == n + 1 and turn.info["attempts"] == 1
    plain = [b for b in server.requests if not set(VLLM_FIELDS) & set(b)]
    assert len(plain) == 4 and all(b["logprobs"] is True for b in plain)  # the rejected ones had the fields
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "rejected the vLLM fields" in r.message]
    assert len(warnings) == 1
