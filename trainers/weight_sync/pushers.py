"""The trainer's control plane of live weight updates: forming the group with the servers, pushing.

The trainer (rank 0) and each server (ranks 1..N) join a `WeightSyncGroup`; the data moves as
`swerepair.agents.inference.weights.protocol` says, sent by a `WeightSender`. What differs by kind
of server is how it is asked (over HTTP) to join and to receive, and how it reports back:

- `ServerWeightPusher`: swerepair's embedded server (``/weights/init``, ``/weights/update``,
  ``/weights/status``);
- `VLLMWeightPusher`: vLLM with the worker extension (``/collective_rpc``, ``/reset_prefix_cache``).

While this process blocks in a collective, `watch` polls the servers for their own account of a
failure, so a server that failed is reported within half a second instead of after the group's
timeout.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from torch import Tensor

from swerepair.agents.inference.http import free_port, request_json, server_root
from swerepair.agents.inference.weights.group import WeightSyncGroup
from swerepair.agents.inference.weights.protocol import DEFAULT_BUCKET_BYTES
from swerepair.trainers.weight_sync.sender import SyncStats, WeightSender

__all__ = ["ServerWeightPusher", "VLLMWeightPusher", "WeightPusher", "make_pusher", "watch"]

log = logging.getLogger(__name__)


def watch(blocking: Callable[[], Any], server_error: Callable[[], str | None], what: str) -> Any:
    """Run `blocking` (a rendezvous or broadcast with the servers) while watching for a
    server's failure, so that a server that failed at once is reported at once, not after
    the group's timeout (the collective is then abandoned, and the group with it)."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = blocking()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run, name="weight-sync", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.5)  # a failed server is noticed within half a second
        if thread.is_alive() and (problem := server_error()):
            raise RuntimeError(f"{what} failed: {problem}")
    if "error" in box:
        # the collective failed here (say, a peer closed the connection); the server's own
        # account of why usually arrives a moment later, and says more
        problem, deadline = server_error(), time.monotonic() + 2.0
        while problem is None and time.monotonic() < deadline:
            time.sleep(0.05)
            problem = server_error()
        raise RuntimeError(f"{what} failed: {problem or box['error']}") from box["error"]
    return box.get("value")


class WeightPusher:
    """What pushing to any kind of server shares: forming the group (the trainer is rank 0, each
    server's workers the ranks after it), pushing through a `WeightSender`, and remembering the
    version each server serves. Subclasses say how a server is asked to join and to receive."""

    def __init__(
        self,
        server_urls: Sequence[str],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        backend: str = "gloo",
        device: str = "cpu",
        bucket_bytes: int = DEFAULT_BUCKET_BYTES,
        timeout_s: float = 300.0,
    ) -> None:
        if not server_urls:
            raise ValueError("no servers to push weights to")
        self.urls = [server_root(u) for u in server_urls]
        self.host, self.port, self.backend, self.device = host, port, backend, device
        self._pick_port = port == 0
        self.bucket_bytes, self.timeout_s = bucket_bytes, timeout_s
        self.sender: WeightSender | None = None
        #: the policy version each server (by url) serves: that of the last push it completed
        self.versions: dict[str, int] = {}

    # -- what a kind of server does differently --
    def _ranks(self, url: str) -> int:
        """How many ranks the server at `url` takes in the group (its workers that hold weights)."""
        return 1

    def _ask_join(self, url: str, first_rank: int, world_size: int) -> None:
        raise NotImplementedError

    def _joined(self) -> None:
        """Block until every server has joined (after this process has)."""
        raise NotImplementedError

    def _ask_receive(self, url: str, version: int) -> None:
        raise NotImplementedError

    def _received(self, version: int) -> None:
        """Block until every server has applied `version` (after the buckets were sent)."""
        raise NotImplementedError

    # -- the shared protocol --
    def connect(self) -> None:
        """Form the group: the servers' ranks follow this process's rank 0, in url order."""
        if self._pick_port:  # a fresh one each time: an abandoned group may still hold the last
            self.port = free_port(self.host)
        ranks = [self._ranks(url) for url in self.urls]
        world = 1 + sum(ranks)
        first = 1
        for url, n in zip(self.urls, ranks, strict=True):
            self._ask_join(url, first, world)
            first += n
        try:
            group = self._watching(
                lambda: WeightSyncGroup(
                    self.host, self.port, 0, world, backend=self.backend, device=self.device, timeout_s=self.timeout_s
                ),
                "joining the weight-sync group",
            )
        except BaseException:
            self.close()  # forget the servers' pending joins; connect() again starts afresh
            raise
        self.sender = WeightSender(group, self.bucket_bytes)
        self._joined()

    def push(self, named: Sequence[tuple[str, Tensor]], version: int) -> SyncStats:
        """Send `named` tensors to every server; return when all of them serve `version`."""
        if self.sender is None:
            raise RuntimeError("connect() first")
        sender = self.sender
        for url in self.urls:
            self._ask_receive(url, version)
        try:
            stats = self._watching(lambda: sender.push(named, version), f"update to version {version}")
        except BaseException:
            self.close()  # a broadcast may still be blocked: the group is unusable; connect() again
            raise
        self._received(version)
        for url in self.urls:
            self.versions[url] = int(version)
        return stats

    def _server_error(self) -> str | None:
        """A server's report that it failed (joining or receiving), while this process waits in a
        collective for it; None if none failed so far."""
        return None

    def _watching(self, blocking: Callable[[], Any], what: str) -> Any:
        """Run `blocking` under `watch`, with this pusher's servers as what is watched."""
        return watch(blocking, self._server_error, what)

    def version_of(self, url: str) -> int:
        """The version the server at `url` serves now (0 before the first push)."""
        return self.versions.get(server_root(url), 0)

    def close(self) -> None:
        """Leave the group."""
        if self.sender is not None:
            self.sender.group.close()
            self.sender = None


class ServerWeightPusher(WeightPusher):
    """The trainer's side of live weight updates to embedded servers (``/weights/*`` endpoints).

    `connect` asks each server (rank i + 1) to join a new `WeightSyncGroup` and joins it as rank 0;
    `push` tells every server to start receiving, broadcasts the buckets, and waits until each
    server reports the new version.

    Args:
        server_urls: the servers' roots, e.g. ``"http://127.0.0.1:8000"`` (no ``/v1``).
        host, port: the group's store address (this process hosts it; port 0 picks a free one).
        backend: gloo (CPU) or nccl (CUDA).
        device: where this process's send buffers live (``cuda:N`` for NCCL).
        bucket_bytes: bucket size (see `plan_buckets`).
        timeout_s: how long joining and one push may take.
    """

    def _ask_join(self, url: str, first_rank: int, world_size: int) -> None:
        body = {"host": self.host, "port": self.port, "rank": first_rank, "world_size": world_size}
        request_json(f"{url}/weights/init", {**body, "backend": self.backend})

    def _joined(self) -> None:
        self._wait(lambda s: s["joined"], "join")

    def _ask_receive(self, url: str, version: int) -> None:
        request_json(f"{url}/weights/update", {})

    def _received(self, version: int) -> None:
        self._wait(lambda s: not s["updating"] and s["version"] == version, f"update to version {version}")

    def _server_error(self) -> str | None:
        for url in self.urls:
            try:
                error = request_json(f"{url}/weights/status", timeout=5).get("error")
            except Exception:
                continue  # unreachable for a moment: the collective's own timeout still applies
            if error:
                return f"{url}: {error}"
        return None

    def _wait(self, done: Callable[[dict[str, Any]], bool], what: str) -> None:
        deadline = time.monotonic() + self.timeout_s
        for url in self.urls:
            while True:
                status = request_json(f"{url}/weights/status")
                if status.get("error"):
                    raise RuntimeError(f"{url}: {what} failed: {status['error']}")
                if done(status):
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{url}: {what} did not finish in {self.timeout_s}s")
                time.sleep(0.002)


def _worker_error(results: list[Any]) -> str | None:
    """The first error among the answers of a server's workers to one ``collective_rpc``."""
    for r in results:
        if isinstance(r, dict) and r.get("error"):
            return str(r["error"])
    return None


class VLLMWeightPusher(WeightPusher):
    """The trainer's side of live weight updates to vLLM servers running the worker extension
    `swerepair.agents.inference.vllm_extension.WeightSyncExtension` (started with ``--worker-extension-cls``
    and ``VLLM_SERVER_DEV_MODE=1``, which enables ``/collective_rpc`` and ``/reset_prefix_cache``).

    Every worker of a server (tensor-parallel ranks) joins the group; the extension's methods are
    called through ``POST /collective_rpc``, which blocks until the workers are done, so joining
    and receiving are asked from background threads while this process broadcasts. After each
    update the server's prefix cache is reset, so no cached KV computed by old weights is reused.
    Arguments as `ServerWeightPusher`.
    """

    def __init__(self, server_urls: Sequence[str], **kwargs: Any) -> None:
        super().__init__(server_urls, **kwargs)
        self._pool: Any = None
        self._pending: list[tuple[str, Any]] = []

    def _submit(self, url: str, method: str, spec: dict[str, Any]) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=max(1, len(self.urls)), thread_name_prefix="vllm-weights")
        self._pending.append((url, self._pool.submit(self.rpc, url, method, spec)))

    def _server_error(self) -> str | None:
        for url, future in self._pending:
            if not future.done():
                continue
            if future.exception() is not None:
                return f"{url}: {future.exception()}"
            if (error := _worker_error(future.result())) is not None:
                return f"{url}: a worker failed: {error}"
        return None

    def rpc(self, url: str, method: str, spec: dict[str, Any] | None = None, timeout: float | None = None) -> list[Any]:
        """Call the extension's `method` on every worker of the server at `url` (one JSON string
        argument, as vLLM's endpoint passes only strings); the workers' answers."""
        body: dict[str, Any] = {"method": method, "args": [json.dumps(spec or {})]}
        wait = self.timeout_s if timeout is None else timeout
        body["timeout"] = wait
        answer = request_json(f"{url}/collective_rpc", body, timeout=wait + 30)
        results = (answer or {}).get("results")
        if not isinstance(results, list) or not results:
            raise RuntimeError(f"{url}: {method} returned {answer!r}; is the server running the extension?")
        return results

    def _ranks(self, url: str) -> int:
        return len(self.rpc(url, "swerepair_status", timeout=60))

    def _ask_join(self, url: str, first_rank: int, world_size: int) -> None:
        spec = {"host": self.host, "port": self.port, "first_rank": first_rank, "world_size": world_size}
        spec.update(backend=self.backend, timeout_s=self.timeout_s)
        self._submit(url, "swerepair_join", spec)

    def _ask_receive(self, url: str, version: int) -> None:
        self._submit(url, "swerepair_receive", {"version": version})

    def _collect(self, what: str) -> list[tuple[str, list[Any]]]:
        pending, self._pending = self._pending, []
        out = []
        for url, future in pending:
            try:
                results = future.result(timeout=self.timeout_s + 60)
            except Exception as exc:
                raise RuntimeError(f"{url}: {what} failed: {exc}") from exc
            if (error := _worker_error(results)) is not None:
                raise RuntimeError(f"{url}: {what} failed in a worker: {error}")
            out.append((url, results))
        return out

    def _joined(self) -> None:
        self._collect("joining the weight-sync group")

    def _received(self, version: int) -> None:
        for url, results in self._collect(f"update to version {version}"):
            got = {r.get("version") if isinstance(r, dict) else r for r in results}
            if got != {version}:
                raise RuntimeError(f"{url}: workers report versions {sorted(map(str, got))}, expected {version}")
            self.reset_prefix_cache(url)

    def reset_prefix_cache(self, url: str, attempts: int = 20) -> bool:
        """Drop the server's cached KV, all of it computed by the old weights. Requests still
        running (asynchronous rollouts) are preempted and resumed: the tokens they generated are
        kept, their KV is recomputed with the new weights. vLLM can still refuse (blocks held by
        a KV transfer); this retries for a while, then logs and goes on."""
        for _ in range(attempts):
            answer = request_json(f"{url}/reset_prefix_cache?reset_running_requests=true", {}) or {}
            if answer.get("success", True):
                return True
            time.sleep(0.1)
        log.warning("%s: prefix cache not reset (blocks still held)", url)
        return False

    def close(self) -> None:
        """Leave the group, then ask the servers' workers to leave theirs (first this process's
        side, which ends any broadcast a worker is still blocked in)."""
        joined = self.sender is not None
        super().close()
        self._pending = []
        if joined:
            for url in self.urls:
                with contextlib.suppress(Exception):  # the server may already be gone
                    self.rpc(url, "swerepair_leave", timeout=30)
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None


def make_pusher(engine: str, server_urls: Sequence[str], **kwargs: Any) -> WeightPusher:
    """The pusher for servers of kind `engine`: ``"swerepair"`` (``swerepair serve``) or ``"vllm"``."""
    if engine == "swerepair":
        return ServerWeightPusher(server_urls, **kwargs)
    if engine == "vllm":
        return VLLMWeightPusher(server_urls, **kwargs)
    raise ValueError(f"server engine must be swerepair or vllm, got {engine!r}")
