"""The embedded OpenAI-compatible server (`InferenceServer`) over the tiny Qwen3 model, on CPU.

One server on a free port serves the module; tests that need other settings (a long batching
window, a stand-in backend) start their own over the same model.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from swerepair.agents.inference.backend import Generation
from swerepair.agents.inference.chat import ChatRenderer
from swerepair.agents.inference.hf_backend import HFBackend
from swerepair.agents.inference.models import load_model
from swerepair.agents.inference.server import HTTPError, InferenceServer
from swerepair.agents.policies.openai import OpenAIPolicy
from swerepair.agents.scaffold import nano_agent

TOOLS = nano_agent().tool_schemas()
NAME = "tiny-policy"
MESSAGES = [
    {"role": "system", "content": "You fix bugs."},
    {"role": "user", "content": "add(2, 3) returns -1 instead of 5."},
]
#: six prompts the tiny model continues six different ways (greedy), so mixed-up answers show
ISSUES = [
    "add(2, 3) returns -1",
    "the tests fail",
    "def test_x():\n    assert f(1) == 2",
    "class A:\n    pass",
    "fix the bug in calc.py",
    "ImportError: cannot import name",
]
CALL_TEXT = '<tool_call>\n{"name": "shell", "arguments": {"cmd": "ls"}}\n</tool_call>'


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-qwen3")


@pytest.fixture(scope="module")
def server(tiny):
    model, tok = tiny
    with InferenceServer(model, tok, model_name=NAME, default_max_tokens=32) as srv:
        yield srv


def call(srv: InferenceServer, method: str, path: str, body: Any = None, *, raw: bytes | None = None, timeout=60):
    """``(status, decoded JSON answer)`` of one request to `srv` (`path` from the host root)."""
    root = srv.url.removesuffix("/v1")
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(
        root + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def complete(srv: InferenceServer, **body: Any) -> dict[str, Any]:
    status, answer = call(srv, "POST", "/v1/chat/completions", body)
    assert status == 200, answer
    return answer


def expected_prompt(tok, messages, tools=TOOLS) -> list[int]:
    renderer = ChatRenderer(tok, tools)
    return renderer.encode(renderer.render(messages, add_generation_prompt=True))


def direct_greedy(tiny, prompt: list[int], max_tokens: int) -> Generation:
    model, tok = tiny
    return HFBackend(model, tok, temperature=0, max_new_tokens=max_tokens).generate([prompt])[0]


def stop_id(tok) -> int:
    return tok.convert_tokens_to_ids("<|im_end|>")


class FixedBackend:
    """Returns the same completion for every prompt; counts `reset_cache` calls."""

    def __init__(self, tok, text: str, *, stop: bool = True) -> None:
        ids = tok(text, add_special_tokens=False)["input_ids"] + ([stop_id(tok)] if stop else [])
        self.ids, self.text, self.stop = tuple(ids), text, stop
        self.policy_version = 0
        self.resets = 0
        self.release = threading.Event()
        self.release.set()
        self.started = threading.Event()

    def generate(self, prompts):
        self.started.set()
        assert self.release.wait(30)
        finish = "stop" if self.stop else "length"
        lps = tuple(-0.5 for _ in self.ids)
        return [Generation(self.ids, lps, self.text, finish, self.policy_version) for _ in prompts]

    def reset_cache(self) -> None:
        self.resets += 1


@pytest.fixture
def fixed_server(tiny):
    """A server of its own, whose backend is replaced by the test."""
    model, tok = tiny
    with InferenceServer(model, tok, model_name=NAME) as srv:
        yield srv


# -- endpoints ---------------------------------------------------------------------------------
def test_health_and_models(server) -> None:
    assert server.url.startswith("http://127.0.0.1:") and server.url.endswith("/v1")
    assert call(server, "GET", "/health") == (200, {"status": "ok", "policy_version": server.policy_version})
    status, models = call(server, "GET", "/v1/models")
    assert status == 200 and models["object"] == "list"
    assert [m["id"] for m in models["data"]] == [NAME]
    assert models["data"][0]["object"] == "model"


def test_chat_completion_with_tools(server, tiny) -> None:
    _, tok = tiny
    answer = complete(server, model=NAME, messages=MESSAGES, tools=TOOLS, logprobs=True, max_tokens=24, seed=3)
    assert answer["object"] == "chat.completion" and answer["model"] == NAME
    assert answer["id"].startswith("chatcmpl-")
    choice = answer["choices"][0]
    ids = choice["token_ids"]
    entries = choice["logprobs"]["content"]
    assert 0 < len(ids) <= 24
    assert len(entries) == len(ids)
    assert all(isinstance(e["logprob"], float) and e["logprob"] <= 0 and e["top_logprobs"] == [] for e in entries)
    assert [e["token"] for e in entries] == [tok.decode([i]) for i in ids]
    assert answer["prompt_token_ids"] == expected_prompt(tok, MESSAGES)
    assert answer["usage"] == {
        "prompt_tokens": len(answer["prompt_token_ids"]),
        "completion_tokens": len(ids),
        "total_tokens": len(answer["prompt_token_ids"]) + len(ids),
    }
    # the random model writes no valid call: the content is the whole completion, less the stop token
    assert choice["message"]["role"] == "assistant" and choice["message"]["tool_calls"] == []
    stopped = ids[-1] == stop_id(tok)
    assert choice["finish_reason"] == ("stop" if stopped else "length")
    assert stopped or len(ids) == 24
    body = ids[:-1] if stopped else ids
    assert choice["message"]["content"] == tok.decode(body)
    assert "<|im_end|>" not in choice["message"]["content"]


def test_greedy_matches_the_backend_token_for_token(server, tiny) -> None:
    _, tok = tiny
    answer = complete(server, messages=MESSAGES, tools=TOOLS, temperature=0, max_tokens=20, logprobs=True)
    prompt = expected_prompt(tok, MESSAGES)
    direct = direct_greedy(tiny, prompt, 20)
    choice = answer["choices"][0]
    assert choice["token_ids"] == list(direct.token_ids)
    got = [e["logprob"] for e in choice["logprobs"]["content"]]
    assert got == pytest.approx(list(direct.logprobs), abs=1e-5)
    assert choice["finish_reason"] == direct.finish_reason


def test_prompt_token_ids_replace_the_messages(server, tiny) -> None:
    _, tok = tiny
    prompt = expected_prompt(tok, [{"role": "user", "content": "def test_x():\n    assert f(1) == 2"}], tools=())
    assert prompt != expected_prompt(tok, MESSAGES)
    answer = complete(server, messages=MESSAGES, tools=TOOLS, prompt_token_ids=prompt, temperature=0, max_tokens=12)
    assert answer["prompt_token_ids"] == prompt
    assert answer["choices"][0]["token_ids"] == list(direct_greedy(tiny, prompt, 12).token_ids)
    # without messages at all
    answer = complete(server, prompt_token_ids=prompt, temperature=0, max_tokens=12)
    assert answer["choices"][0]["token_ids"] == list(direct_greedy(tiny, prompt, 12).token_ids)


def test_openai_policy_gets_trainable_turns(server, tiny) -> None:
    _, tok = tiny
    with OpenAIPolicy(base_url=server.url, model=NAME, tools=TOOLS, temperature=0.0, max_tokens=16) as policy:
        turns = policy.act([MESSAGES, MESSAGES[1:]])
        assert policy.send_vllm_fields  # the server took vLLM's fields
    for turn, messages in zip(turns, [MESSAGES, MESSAGES[1:]], strict=True):
        assert turn.trainable
        assert list(turn.prompt_ids) == expected_prompt(tok, messages)
        assert len(turn.completion_ids) == len(turn.logprobs) > 0
        assert turn.info["ids_source"] == "token_ids"
        direct = direct_greedy(tiny, list(turn.prompt_ids), 16)
        assert turn.completion_ids == direct.token_ids
        assert list(turn.logprobs) == pytest.approx(list(direct.logprobs), abs=1e-5)


def test_seeded_requests_repeat_and_token_id_names(server) -> None:
    body = {"messages": MESSAGES, "max_tokens": 16, "seed": 11, "logprobs": True, "return_tokens_as_token_ids": True}
    first, second = complete(server, **body), complete(server, **body)
    ids = first["choices"][0]["token_ids"]
    assert second["choices"][0]["token_ids"] == ids
    assert [e["token"] for e in first["choices"][0]["logprobs"]["content"]] == [f"token_id:{i}" for i in ids]
    assert complete(server, messages=MESSAGES, max_tokens=4)["choices"][0]["logprobs"] is None


# -- batching --------------------------------------------------------------------------------------
def test_concurrent_requests_are_batched(tiny) -> None:
    model, tok = tiny
    conversations = [[{"role": "user", "content": text}] for text in ISSUES]
    with InferenceServer(model, tok, model_name=NAME, batch_window_s=0.2) as srv:
        with ThreadPoolExecutor(6) as pool:
            futures = [
                pool.submit(complete, srv, messages=c, tools=TOOLS, temperature=0, max_tokens=10, logprobs=True)
                for c in conversations
            ]
            answers = [f.result() for f in futures]
        stats = srv.stats
    assert stats["requests"] == 6
    assert stats["max_batch"] >= 2 and stats["batches"] < 6
    for conv, answer in zip(conversations, answers, strict=True):
        prompt = expected_prompt(tok, conv)
        assert answer["prompt_token_ids"] == prompt  # each answer is its own request's
        direct = direct_greedy(tiny, prompt, 10)
        assert answer["choices"][0]["token_ids"] == list(direct.token_ids)
        got = [e["logprob"] for e in answer["choices"][0]["logprobs"]["content"]]
        assert got == pytest.approx(list(direct.logprobs), abs=1e-4)


def test_different_sampling_parameters_go_to_different_backend_calls(tiny) -> None:
    model, tok = tiny
    with InferenceServer(model, tok, model_name=NAME, batch_window_s=0.2) as srv:
        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(complete, srv, messages=MESSAGES, temperature=0, max_tokens=n) for n in (4, 4, 6, 6)]
            answers = [f.result() for f in futures]
        stats = srv.stats
    assert stats["requests"] == 4 and stats["batches"] >= 2
    assert [len(a["choices"][0]["token_ids"]) <= n for a, n in zip(answers, (4, 4, 6, 6), strict=True)] == [True] * 4


def test_other_endpoints_answer_while_a_batch_generates(fixed_server, tiny) -> None:
    _, tok = tiny
    backend = FixedBackend(tok, "done")
    backend.release.clear()
    fixed_server.backend = backend
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(complete, fixed_server, messages=MESSAGES)
        assert backend.started.wait(10)
        assert call(fixed_server, "GET", "/health", timeout=5)[0] == 200
        assert call(fixed_server, "GET", "/v1/models", timeout=5)[0] == 200
        assert not pending.done()
        backend.release.set()
        assert pending.result(timeout=30)["choices"][0]["message"]["content"] == "done"


# -- tool calls ------------------------------------------------------------------------------------
def test_tool_calls_are_parsed(fixed_server, tiny) -> None:
    """A stand-in backend writes a known call (the random model never writes a valid one)."""
    _, tok = tiny
    backend = FixedBackend(tok, "Let me look.\n" + CALL_TEXT)
    fixed_server.backend = backend
    answer = complete(fixed_server, messages=MESSAGES, tools=TOOLS, logprobs=True)
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert message["content"] == "Let me look."
    [call_] = message["tool_calls"]
    assert call_["type"] == "function" and call_["id"]
    assert call_["function"]["name"] == "shell"
    assert json.loads(call_["function"]["arguments"]) == {"cmd": "ls"}
    assert choice["token_ids"] == list(backend.ids) and choice["token_ids"][-1] == stop_id(tok)
    assert len(choice["logprobs"]["content"]) == len(backend.ids)

    backend.__init__(tok, CALL_TEXT)  # the call alone: no content
    message = complete(fixed_server, messages=MESSAGES)["choices"][0]["message"]
    assert message["content"] is None and len(message["tool_calls"]) == 1

    answer = complete(fixed_server, messages=MESSAGES, tool_choice="none")  # not parsed
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": CALL_TEXT, "tool_calls": []}
    assert answer["choices"][0]["finish_reason"] == "stop"

    backend.__init__(tok, "<tool_call>\n{not json}\n</tool_call>", stop=False)  # malformed, cut off
    choice = complete(fixed_server, messages=MESSAGES)["choices"][0]
    assert choice["message"]["tool_calls"] == [] and choice["message"]["content"] == backend.text
    assert choice["finish_reason"] == "length"


def test_a_conversations_next_request_reuses_its_earlier_turns(tiny) -> None:
    _, tok = tiny
    with InferenceServer(*tiny, model_name=NAME, seed=0) as srv:
        first = complete(srv, messages=MESSAGES, tools=TOOLS, temperature=0, max_tokens=12)
        reply = first["choices"][0]["message"]
        follow = [*MESSAGES, {"role": "assistant", "content": reply["content"]}, {"role": "user", "content": "go on"}]
        before = srv.stats
        second = complete(srv, messages=follow, tools=TOOLS, temperature=0, max_tokens=12)
        after = srv.stats
        prompt = expected_prompt(tok, follow)
        assert after["reused_tokens"] - before["reused_tokens"] > len(expected_prompt(tok, MESSAGES)) // 2
        assert after["encoded_tokens"] - before["encoded_tokens"] < len(prompt) // 2
        # what it generated is what the model generates from the whole prompt
        assert second["choices"][0]["token_ids"] == list(direct_greedy(tiny, prompt, 12).token_ids)
        assert call(srv, "POST", "/reset_cache", {}) == (200, {"ok": True})
        assert len(srv.backend.cache) == 0
    with InferenceServer(*tiny, model_name=NAME, cache_bytes=0) as off:
        complete(off, messages=MESSAGES, tools=TOOLS, temperature=0, max_tokens=4)
        assert off.stats["reused_tokens"] == 0


def test_reset_cache(fixed_server, tiny) -> None:
    assert call(fixed_server, "POST", "/reset_cache", {}) == (200, {"ok": True})
    backend = FixedBackend(tiny[1], "x")
    fixed_server.backend = backend
    assert call(fixed_server, "POST", "/reset_cache") == (200, {"ok": True})
    assert backend.resets == 1


# -- errors and routes -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[1, 2]", 400, "JSON object"),
        (b"{}", 400, "'messages' is required"),
        (json.dumps({"messages": MESSAGES, "n": 2}).encode(), 400, "n=1"),
        (json.dumps({"messages": MESSAGES, "top_logprobs": 5}).encode(), 400, "top_logprobs"),
        (json.dumps({"messages": MESSAGES, "model": "other"}).encode(), 404, "does not exist"),
        (json.dumps({"messages": MESSAGES, "temperature": -1}).encode(), 400, "temperature"),
        (json.dumps({"messages": MESSAGES, "max_tokens": 0}).encode(), 400, "max_tokens"),
        (json.dumps({"messages": MESSAGES, "max_tokens": 10**6}).encode(), 400, "context"),
        (json.dumps({"messages": [{"content": "no role"}]}).encode(), 400, "role"),
        (json.dumps({"prompt_token_ids": [1, 10**7]}).encode(), 400, "vocabulary"),
        (json.dumps({"prompt_token_ids": []}).encode(), 400, "prompt_token_ids"),
        (json.dumps({"messages": MESSAGES, "stream": True}).encode(), 400, "stream"),
    ],
)
def test_bad_requests(server, body, status, words) -> None:
    got, answer = call(server, "POST", "/v1/chat/completions", raw=body)
    assert got == status
    assert words in answer["error"]["message"]
    assert answer["error"]["code"] == status


def test_unknown_paths_and_methods(server) -> None:
    status, answer = call(server, "GET", "/v1/nothing")
    assert status == 404 and "no route" in answer["error"]["message"]
    assert call(server, "GET", "/v1/chat/completions")[0] == 405
    assert call(server, "GET", "/health?x=1")[0] == 200  # query strings are ignored


def test_custom_routes(server) -> None:
    seen = []

    def handler(body: dict[str, Any]) -> dict[str, Any]:
        seen.append(body)
        if body.get("bad"):
            raise ValueError("bad weights")
        if body.get("missing"):
            raise HTTPError(409, "busy")
        if body.get("crash"):
            raise RuntimeError("boom")
        return {"loaded": body.get("path")}

    server.add_route("POST", "/update_weights", handler)
    server.add_route("GET", "/weights", lambda body: {"body": body})
    assert call(server, "POST", "/update_weights", {"path": "/ckpt"}) == (200, {"loaded": "/ckpt"})
    assert seen == [{"path": "/ckpt"}]
    status, answer = call(server, "POST", "/update_weights", {"bad": True})
    assert status == 400 and answer["error"]["message"] == "bad weights"
    assert call(server, "POST", "/update_weights", {"missing": True})[0] == 409
    status, answer = call(server, "POST", "/update_weights", {"crash": True})
    assert status == 500 and "boom" in answer["error"]["message"]
    assert call(server, "GET", "/weights") == (200, {"body": {}})
    assert call(server, "GET", "/health")[0] == 200  # the server lives on


def test_policy_version_roundtrip(server) -> None:
    before = server.policy_version
    try:
        assert call(server, "POST", "/policy_version", {"version": 7}) == (200, {"policy_version": 7})
        assert server.policy_version == 7 and server.backend.policy_version == 7
        assert call(server, "GET", "/policy_version") == (200, {"policy_version": 7})
        assert call(server, "GET", "/health")[1]["policy_version"] == 7
        assert complete(server, messages=MESSAGES, max_tokens=2)["policy_version"] == 7
        server.policy_version = 8
        assert complete(server, messages=MESSAGES, max_tokens=2)["policy_version"] == 8
        with OpenAIPolicy(base_url=server.url, model=NAME, temperature=0.0, max_tokens=2) as policy:
            assert policy.act([MESSAGES])[0].policy_version == 8  # the client reads the version tag
        assert call(server, "POST", "/policy_version", {"version": "9"})[0] == 400
        assert call(server, "POST", "/policy_version", {})[0] == 400
        assert server.policy_version == 8
    finally:
        server.policy_version = before


def test_stop_and_restart(tiny) -> None:
    model, tok = tiny
    srv = InferenceServer(model, tok)
    with pytest.raises(RuntimeError):
        srv.url  # noqa: B018
    with srv:
        first = srv.url
        assert call(srv, "GET", "/health")[0] == 200
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(first.removesuffix("/v1") + "/health", timeout=5)
    with srv:
        assert complete(srv, messages=MESSAGES, max_tokens=2)["model"] == "swerepair-policy"
