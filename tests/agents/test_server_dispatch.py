"""`ServerBackend` over several servers: least-loaded dispatch, a dead server removed from it, and
each generation naming its server. Fake servers (the standard library's HTTP server answering
chat completions with fixed ids) stand in for the embedded one; the real servers behind a trainer
are in tests/trainers/test_many_servers.py."""

from __future__ import annotations

import contextlib
import json
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from swerepair.agents.inference.backend import GenerationError
from swerepair.agents.inference.http import free_port
from swerepair.agents.inference.server_backend import ServerBackend


class FakeServer:
    """Answers every chat completion with ids [7, 8] after `gate` is set; `status` != 200 answers
    that error instead."""

    def __init__(self, status: int = 200) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.status, self.seen = status, 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                fake.seen += 1
                fake.gate.wait(30)
                if fake.status != 200:
                    payload = {"error": {"message": "stopping", "code": fake.status}}
                else:
                    choice = {
                        "message": {"role": "assistant", "content": "hi"},
                        "token_ids": [7, 8],
                        "logprobs": {"content": [{"logprob": -0.5}, {"logprob": -0.25}]},
                        "finish_reason": "stop",
                    }
                    payload = {"choices": [choice], "policy_version": 3}
                data = json.dumps(payload).encode()
                self.send_response(fake.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.gate.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@contextlib.contextmanager
def fakes(*statuses: int) -> Iterator[list[FakeServer]]:
    servers = [FakeServer(s) for s in statuses]
    try:
        yield servers
    finally:
        for server in servers:
            server.close()


def test_requests_go_to_the_least_loaded_server_ties_to_the_first() -> None:
    with fakes(200, 200) as (a, b):
        a.gate.clear()
        b.gate.clear()  # every request stays in flight until all were dispatched
        backend = ServerBackend([a.url, b.url], concurrency=8)
        try:
            out: list[Any] = []
            worker = threading.Thread(target=lambda: out.extend(backend.generate([[1]] * 5)))
            worker.start()
            while a.seen + b.seen < 5:
                threading.Event().wait(0.01)
            assert backend.in_flight == {a.url: 3, b.url: 2}  # 1st to a (tie), 2nd to b, 3rd to a, ...
            a.gate.set()
            b.gate.set()
            worker.join(30)
            assert Counter(g.server for g in out) == {a.url: 3, b.url: 2}
            assert backend.in_flight == {a.url: 0, b.url: 0} and backend.requests == {a.url: 3, b.url: 2}
            # one server busy: the next requests all go to the idle one
            a.gate.clear()
            held = threading.Thread(target=backend.generate, args=([[1]],))
            held.start()
            while backend.in_flight[a.url] < 1:
                threading.Event().wait(0.01)
            b.gate.clear()
            worker = threading.Thread(target=lambda: out.extend(backend.generate([[2]])))
            worker.start()
            while b.seen < 3:
                threading.Event().wait(0.01)
            assert backend.in_flight == {a.url: 1, b.url: 1}
            a.gate.set()
            b.gate.set()
            held.join(30)
            worker.join(30)
            assert out[-1].server == b.url
        finally:
            backend.close()


@pytest.mark.parametrize("how", ["refused", "503"])
def test_a_dead_server_fails_its_requests_and_gets_no_more(how: str) -> None:
    with fakes(200, 503) as (good, stopping):
        dead_url = f"http://127.0.0.1:{free_port()}" if how == "refused" else stopping.url
        backend = ServerBackend([dead_url, good.url], concurrency=4, timeout_s=10)
        try:
            good.gate.clear()  # the first request (to the dead server) fails while the second waits
            with pytest.raises(GenerationError) as err:
                threading.Timer(0.3, good.gate.set).start()
                backend.generate([[1], [2]])
            results = err.value.results or []
            lost = [r for r in results if isinstance(r, GenerationError)]
            made = [r for r in results if not isinstance(r, GenerationError)]
            assert len(lost) == 1 and [(g.server, g.token_ids) for g in made] == [(good.url, (7, 8))]
            assert list(backend.dead) == [dead_url] and backend.live == [good.url]
            # from now on every request goes to the live server, even when it is busy
            gens = backend.generate([[1], [2], [3]])
            assert [g.server for g in gens] == [good.url] * 3 and backend.in_flight[dead_url] == 0
            assert backend.requests[dead_url] == 1
            backend.revive()
            assert backend.live == [dead_url, good.url]
        finally:
            backend.close()


def test_with_every_server_dead_requests_fail_at_once() -> None:
    backend = ServerBackend([f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"], timeout_s=10)
    try:
        for url in backend.urls:
            backend.mark_dead(url, "test")
        with pytest.raises(GenerationError, match="no live inference server") as err:
            backend.generate([[1], [2]])
        assert err.value.results is not None and len(err.value.results) == 2
        assert backend.requests == dict.fromkeys(backend.urls, 0)
    finally:
        backend.close()
