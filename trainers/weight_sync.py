"""Pushing the trainer's weights to inference servers over a dedicated `torch.distributed` group.

The trainer (rank 0) and each server (ranks 1..N) join a process group made for this purpose only:
its own ``TCPStore`` and a gloo (CPU) or NCCL (CUDA) process group built from it directly, so the
trainer's default process group (DeepSpeed's, say) is untouched, and the same code runs on both
backends. An update is a sequence of broadcasts from rank 0:

    for each bucket:  header (one control message: the bucket's tensor names, shapes, dtype and
                      byte offsets, as JSON) -> payload (one flat buffer holding the bucket's tensors)
    end:              header {"end": true, "version": v}

Buckets group tensors of one dtype, in order, up to ``bucket_bytes`` (default 256 MiB); a tensor
larger than that travels alone. ``bucket_bytes=0`` sends one bucket (one control message) per
tensor: the per-tensor baseline of ``benchmarks/weight_sync.py``. A header is two broadcasts (its
length, then its bytes), so a bucket costs three collectives whatever it holds.

Receivers run `WeightReceiver.receive_update`, which applies each bucket as it arrives (for
example a server's ``model.load_weights`` or a copy into its parameters) and returns the version.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = [
    "Bucket",
    "ServerWeightPusher",
    "SyncStats",
    "TensorSpec",
    "VLLMWeightPusher",
    "WeightReceiver",
    "WeightSender",
    "WeightSyncGroup",
    "adapter_weights",
    "free_port",
    "make_pusher",
    "plan_buckets",
    "policy_weights",
    "split_adapter_name",
]

DEFAULT_BUCKET_BYTES = 256 * 2**20


@dataclass(frozen=True)
class TensorSpec:
    """One tensor's place in a bucket: name, shape, and byte offset in the bucket's buffer."""

    name: str
    shape: tuple[int, ...]
    offset: int
    nbytes: int


@dataclass(frozen=True)
class Bucket:
    """Tensors of one dtype sent as one flat buffer after one control message."""

    dtype: str
    nbytes: int
    tensors: tuple[TensorSpec, ...]

    def header(self) -> dict[str, Any]:
        """The control message announcing this bucket."""
        return {
            "dtype": self.dtype,
            "nbytes": self.nbytes,
            "tensors": [[t.name, list(t.shape), t.offset, t.nbytes] for t in self.tensors],
        }

    @classmethod
    def from_header(cls, header: dict[str, Any]) -> Bucket:
        specs = tuple(TensorSpec(n, tuple(s), o, b) for n, s, o, b in header["tensors"])
        return cls(header["dtype"], int(header["nbytes"]), specs)


def _dtype(name: str) -> torch.dtype:
    value = getattr(torch, name.removeprefix("torch."), None)
    if not isinstance(value, torch.dtype):
        raise ValueError(f"unknown dtype {name!r}")
    return value


def plan_buckets(named: Iterable[tuple[str, Tensor]], bucket_bytes: int = DEFAULT_BUCKET_BYTES) -> list[Bucket]:
    """Group `named` tensors into buckets of one dtype and at most `bucket_bytes` (see the module
    docstring); ``bucket_bytes <= 0`` puts every tensor in its own bucket. Order is preserved
    within each dtype."""
    buckets: list[Bucket] = []
    open_: dict[str, list[TensorSpec]] = {}
    sizes: dict[str, int] = {}

    def close(dtype: str) -> None:
        if open_.get(dtype):
            buckets.append(Bucket(dtype, sizes[dtype], tuple(open_[dtype])))
        open_[dtype], sizes[dtype] = [], 0

    for name, tensor in named:
        dtype = str(tensor.dtype).removeprefix("torch.")
        nbytes = tensor.numel() * tensor.element_size()
        if dtype not in open_:
            open_[dtype], sizes[dtype] = [], 0
        if open_[dtype] and (bucket_bytes <= 0 or sizes[dtype] + nbytes > bucket_bytes):
            close(dtype)
        open_[dtype].append(TensorSpec(name, tuple(tensor.shape), sizes[dtype], nbytes))
        sizes[dtype] += nbytes
        if bucket_bytes <= 0:
            close(dtype)
    for dtype in list(open_):
        close(dtype)
    return buckets


class WeightSyncGroup:
    """A process group for weight updates only (see the module docstring).

    Args:
        host, port: the ``TCPStore`` address; rank 0 (the trainer) hosts it.
        rank: 0 for the trainer, 1..world_size-1 for the servers.
        world_size: 1 + the number of servers.
        backend: ``"gloo"`` (CPU tensors) or ``"nccl"`` (CUDA tensors).
        device: where buffers live with NCCL (``cuda:N``); gloo's are always in host memory.
        timeout_s: how long joining and each collective may take.
    """

    def __init__(
        self,
        host: str,
        port: int,
        rank: int,
        world_size: int,
        *,
        backend: str = "gloo",
        device: str | torch.device = "cpu",
        timeout_s: float = 300.0,
    ) -> None:
        if backend not in ("gloo", "nccl"):
            raise ValueError(f"backend must be gloo or nccl, got {backend!r}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside a world of {world_size}")
        timeout = timedelta(seconds=timeout_s)
        self.rank, self.world_size, self.backend = rank, world_size, backend
        # gloo moves CPU buffers: a CUDA model is staged through host memory (one GPU can hold
        # the trainer and the server, which NCCL does not allow)
        self.device = torch.device(device) if backend == "nccl" else torch.device("cpu")
        self.store = dist.TCPStore(host, port, world_size, is_master=rank == 0, timeout=timeout)
        if backend == "gloo":
            self.pg: Any = dist.ProcessGroupGloo(self.store, rank, world_size, timeout)
        else:
            self.pg = dist.ProcessGroupNCCL(self.store, rank, world_size)

    def broadcast_async(self, tensor: Tensor, src: int = 0) -> Any:
        """Start broadcasting `tensor` in place from rank `src`; the returned work's ``wait()``
        blocks until it is done (`tensor` must not change before then)."""
        opts = dist.BroadcastOptions()
        opts.rootRank = src
        opts.rootTensor = 0
        return self.pg.broadcast([tensor], opts)

    def broadcast(self, tensor: Tensor, src: int = 0) -> None:
        """Broadcast `tensor` in place from rank `src` to every rank of the group."""
        self.broadcast_async(tensor, src).wait()

    def send_header(self, header: dict[str, Any]) -> None:
        """Rank 0: broadcast one control message."""
        data = torch.frombuffer(bytearray(json.dumps(header).encode()), dtype=torch.uint8).to(self.device)
        self.broadcast(torch.tensor([data.numel()], dtype=torch.int64, device=self.device))
        self.broadcast(data)

    def recv_header(self) -> dict[str, Any]:
        """Ranks > 0: receive one control message."""
        length = torch.zeros(1, dtype=torch.int64, device=self.device)
        self.broadcast(length)
        data = torch.empty(int(length.item()), dtype=torch.uint8, device=self.device)
        self.broadcast(data)
        return json.loads(bytes(data.cpu().numpy()).decode())

    def close(self) -> None:
        """Leave the group."""
        shutdown = getattr(self.pg, "shutdown", None)
        if callable(shutdown):
            shutdown()
        self.pg = None


@dataclass
class SyncStats:
    """What one push did: buckets (= control messages), bytes and seconds."""

    version: int
    buckets: int
    tensors: int
    nbytes: int
    seconds: float
    per_bucket_s: list[float] = field(default_factory=list)

    @property
    def gb_per_s(self) -> float:
        """Payload gigabytes (1e9 bytes) per second."""
        return self.nbytes / self.seconds / 1e9 if self.seconds > 0 else float("inf")


class WeightSender:
    """Rank 0 of a `WeightSyncGroup`: pushes named tensors in buckets.

    Packing is pipelined with sending: while one bucket's payload travels (an asynchronous
    broadcast), the next bucket is packed into a second buffer. The two buffers are kept between
    pushes (allocating and first-touching hundreds of MB per push costs more than copying into
    them). A bucket holding a single contiguous tensor on the group's device is sent from the
    tensor itself, without a copy.
    """

    def __init__(self, group: WeightSyncGroup, bucket_bytes: int = DEFAULT_BUCKET_BYTES) -> None:
        if group.rank != 0:
            raise ValueError("the sender is rank 0")
        self.group = group
        self.bucket_bytes = bucket_bytes
        self._buffers: list[Tensor | None] = [None, None]

    def _buffer(self, slot: int, nbytes: int) -> Tensor:
        buffer = self._buffers[slot]
        if buffer is None or buffer.numel() < nbytes:
            buffer = torch.empty(nbytes, dtype=torch.uint8, device=self.group.device)
            self._buffers[slot] = buffer
        return buffer[:nbytes]

    def _payload(self, bucket: Bucket, by_name: dict[str, Tensor], slot: int) -> Tensor:
        if len(bucket.tensors) == 1:
            only = by_name[bucket.tensors[0].name].detach()
            if only.is_contiguous() and only.device == self.group.device:
                return only.reshape(-1).view(torch.uint8)
        buffer = self._buffer(slot, bucket.nbytes)
        for spec in bucket.tensors:
            src = by_name[spec.name].detach().contiguous().reshape(-1)
            buffer[spec.offset : spec.offset + spec.nbytes].copy_(src.view(torch.uint8))
        return buffer

    def push(self, named: Sequence[tuple[str, Tensor]], version: int) -> SyncStats:
        """Send every tensor of `named` (bucketed), then the end marker with `version`."""
        started = time.perf_counter()
        buckets = plan_buckets(named, self.bucket_bytes)
        by_name = dict(named)
        times = []
        in_flight: Any = None
        for i, bucket in enumerate(buckets):
            t0 = time.perf_counter()
            payload = self._payload(bucket, by_name, i % 2)  # packed while the last bucket travels
            if in_flight is not None:
                in_flight.wait()
            self.group.send_header(bucket.header())
            in_flight = self.group.broadcast_async(payload)
            times.append(time.perf_counter() - t0)
        if in_flight is not None:
            in_flight.wait()
        self.group.send_header({"end": True, "version": int(version)})
        total = sum(b.nbytes for b in buckets)
        return SyncStats(int(version), len(buckets), len(by_name), total, time.perf_counter() - started, times)


class WeightReceiver:
    """A rank > 0 of a `WeightSyncGroup`: receives updates, bucket by bucket.

    `receive_update` hands each bucket to `apply` as ``[(name, tensor), ...]``: views of one
    buffer kept between buckets and updates, valid only during the call (`apply` must copy what it
    keeps). `stream` yields the tensors one by one, for a consumer such as vLLM's
    ``load_weights`` that takes an iterator; they are views of a buffer received for their bucket
    alone, so they stay valid as long as they are referenced (a consumer may hold a tensor past
    its bucket).

    `failure` is set when the group itself failed (a broadcast raised): the receiver, and the
    group, cannot be used again.
    """

    def __init__(self, group: WeightSyncGroup, apply: Callable[[list[tuple[str, Tensor]]], None] | None = None) -> None:
        if group.rank == 0:
            raise ValueError("rank 0 sends; receivers are ranks 1..N")
        self.group = group
        self.apply = apply
        #: the version carried by the end marker of the last update received in full
        self.version: int | None = None
        self.tensors = 0
        self.nbytes = 0
        self._buffer: Tensor | None = None
        self.failure: BaseException | None = None

    def buckets(self, reuse_buffer: bool = False) -> Iterator[list[tuple[str, Tensor]]]:
        """Receive one update; yield its buckets as they arrive. `version` is set at the end marker.

        With `reuse_buffer`, every bucket lands in one buffer kept between updates, so a bucket's
        tensors are valid only until the next bucket is asked for; otherwise each bucket gets a
        buffer of its own.

        The sender does not wait for the receiver, so a consumer that stops early must `drain`
        the rest, or the group falls out of step with the trainer."""
        if self.failure is not None:
            raise RuntimeError(f"the weight-sync group failed earlier: {self.failure}")
        self.version, self.tensors, self.nbytes = None, 0, 0
        while True:
            try:
                header = self.group.recv_header()
            except BaseException as exc:
                self.failure = exc
                raise
            if header.get("end"):
                self.version = int(header["version"])
                return
            bucket = Bucket.from_header(header)
            if reuse_buffer:
                if self._buffer is None or self._buffer.numel() < bucket.nbytes:
                    self._buffer = torch.empty(bucket.nbytes, dtype=torch.uint8, device=self.group.device)
                buffer = self._buffer[: bucket.nbytes]
            else:
                buffer = torch.empty(bucket.nbytes, dtype=torch.uint8, device=self.group.device)
            try:
                self.group.broadcast(buffer)
            except BaseException as exc:
                self.failure = exc
                raise
            dtype = _dtype(bucket.dtype)
            self.tensors += len(bucket.tensors)
            self.nbytes += bucket.nbytes
            views = [buffer[t.offset : t.offset + t.nbytes].view(dtype).reshape(t.shape) for t in bucket.tensors]
            yield [(t.name, v) for t, v in zip(bucket.tensors, views, strict=True)]

    def stream(self) -> Iterator[tuple[str, Tensor]]:
        """Receive one update as a stream of ``(name, tensor)``; see `buckets`."""
        for bucket in self.buckets():
            yield from bucket

    @staticmethod
    def drain(iterator: Iterator[Any]) -> int:
        """Consume what is left of a `buckets` or `stream` iterator; how many items were left."""
        return sum(1 for _ in iterator)

    def receive_update(self) -> int:
        """Receive buckets until the end marker, applying each; return the version it carries.

        If `apply` raises, the rest of the update is still received (not applied), so the group
        stays in step with the sender, and then the error is raised."""
        if self.apply is None:
            raise ValueError("receive_update needs an apply function; or iterate stream()")
        buckets = self.buckets(reuse_buffer=True)
        for bucket in buckets:
            try:
                self.apply(bucket)
            except Exception:
                if self.failure is None:
                    self.drain(buckets)
                raise
        assert self.version is not None
        return self.version


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that was free a moment ago (for a group's store)."""
    import socket

    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _http_json(url: str, body: dict[str, Any] | None = None, timeout: float = 30.0) -> Any:
    """GET (no body) or POST `body` as JSON; the decoded answer. An HTTP error names the url and
    carries the server's own message."""
    import urllib.error
    import urllib.request

    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json"}, method="GET" if body is None else "POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:2000]
        raise RuntimeError(f"{url}: HTTP {exc.code}: {detail}") from None
    return json.loads(raw) if raw else None


class _WeightPusher:
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
        self.urls = [u.rstrip("/").removesuffix("/v1") for u in server_urls]
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
        """Run `blocking` (a rendezvous or broadcast with the servers) while watching for a
        server's failure, so that a server that failed at once is reported at once, not after
        the group's timeout (the collective is then abandoned, and the group with it)."""
        import threading

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
            if thread.is_alive() and (problem := self._server_error()):
                raise RuntimeError(f"{what} failed: {problem}")
        if "error" in box:
            # the collective failed here (say, a peer closed the connection); the server's own
            # account of why usually arrives a moment later, and says more
            problem, deadline = self._server_error(), time.monotonic() + 2.0
            while problem is None and time.monotonic() < deadline:
                time.sleep(0.05)
                problem = self._server_error()
            raise RuntimeError(f"{what} failed: {problem or box['error']}") from box["error"]
        return box.get("value")

    def version_of(self, url: str) -> int:
        """The version the server at `url` serves now (0 before the first push)."""
        return self.versions.get(url.rstrip("/").removesuffix("/v1"), 0)

    def close(self) -> None:
        """Leave the group."""
        if self.sender is not None:
            self.sender.group.close()
            self.sender = None


class ServerWeightPusher(_WeightPusher):
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
        _http_json(f"{url}/weights/init", {**body, "backend": self.backend})

    def _joined(self) -> None:
        self._wait(lambda s: s["joined"], "join")

    def _ask_receive(self, url: str, version: int) -> None:
        _http_json(f"{url}/weights/update", {})

    def _received(self, version: int) -> None:
        self._wait(lambda s: not s["updating"] and s["version"] == version, f"update to version {version}")

    def _server_error(self) -> str | None:
        for url in self.urls:
            try:
                error = _http_json(f"{url}/weights/status", timeout=5).get("error")
            except Exception:
                continue  # unreachable for a moment: the collective's own timeout still applies
            if error:
                return f"{url}: {error}"
        return None

    def _wait(self, done: Callable[[dict[str, Any]], bool], what: str) -> None:
        deadline = time.monotonic() + self.timeout_s
        for url in self.urls:
            while True:
                status = _http_json(f"{url}/weights/status")
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


class VLLMWeightPusher(_WeightPusher):
    """The trainer's side of live weight updates to vLLM servers running the worker extension
    `swerepair.agents.vllm_extension.WeightSyncExtension` (started with ``--worker-extension-cls``
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
        from concurrent.futures import ThreadPoolExecutor

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
        answer = _http_json(f"{url}/collective_rpc", body, timeout=wait + 30)
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
            answer = _http_json(f"{url}/reset_prefix_cache?reset_running_requests=true", {}) or {}
            if answer.get("success", True):
                return True
            time.sleep(0.1)
        import logging

        logging.getLogger(__name__).warning("%s: prefix cache not reset (blocks still held)", url)
        return False

    def close(self) -> None:
        """Leave the group, then ask the servers' workers to leave theirs (first this process's
        side, which ends any broadcast a worker is still blocked in)."""
        import contextlib

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


def make_pusher(engine: str, server_urls: Sequence[str], **kwargs: Any) -> _WeightPusher:
    """The pusher for servers of kind `engine`: ``"swerepair"`` (``swerepair serve``) or ``"vllm"``."""
    if engine == "swerepair":
        return ServerWeightPusher(server_urls, **kwargs)
    if engine == "vllm":
        return VLLMWeightPusher(server_urls, **kwargs)
    raise ValueError(f"server engine must be swerepair or vllm, got {engine!r}")


def policy_weights(model: Any, merge: bool = True) -> list[tuple[str, Tensor]]:
    """The weights a server needs, under the plain model's names: a peft model's LoRA adapters are
    merged into their base weights (and the ``base_layer`` names mapped back); tied weights travel
    once. The tensors are copies; the model is left as it was (the merge is undone). With
    ``merge=False`` the base weights travel without the adapters (see `adapter_weights`)."""
    merge_fn = getattr(model, "merge_adapter", None) if merge else None
    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    if callable(merge_fn):
        merge_fn()
    try:
        out: list[tuple[str, Tensor]] = []
        seen: set[int] = set()
        for name, p in lm.named_parameters():
            if "lora_" in name or id(p) in seen:
                continue
            seen.add(id(p))
            out.append((name.replace(".base_layer.", "."), p.detach().clone()))
        return out
    finally:
        if callable(merge_fn):
            model.unmerge_adapter()


#: Name suffixes of adapter tensors in an update: ``<target weight name><suffix>``.
LORA_A, LORA_B, LORA_SCALING = "::lora_A", "::lora_B", "::lora_scaling"


def adapter_weights(model: Any) -> list[tuple[str, Tensor]]:
    """A peft LoRA model's update without its base weights: for every LoRA layer, the factors A
    (r × in) and B (out × r) and the scaling of its active adapter, named after the base weight
    they change (``model.layers.0.self_attn.q_proj.weight::lora_A``), plus every other trainable
    parameter under its plain name. A receiver that kept the base weights applies them as
    ``W = W_base + scaling · B @ A`` (what peft's merge computes). For SmolLM2-135M with
    rank 8 on every linear layer of the last third (the cpu-demo preset) that is 3.3 MB (210
    tensors) instead of 538 MB.

    The receiver keeps as base whatever the weight holds before its first factor update, so the
    first factor push to a server must follow (or include) a push of the unmerged base weights,
    ``policy_weights(model, merge=False)``, as the trainer does; after a merged push the adapter
    would count twice.

    Raises ``ValueError`` for what that formula does not cover: DoRA, ``fan_in_fan_out`` layers,
    several active adapters, or a model without LoRA layers."""
    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    out: list[tuple[str, Tensor]] = []
    covered: set[int] = set()
    for module_name, module in lm.named_modules():
        if not (hasattr(module, "lora_A") and hasattr(module, "lora_B") and hasattr(module, "base_layer")):
            continue
        active = [a for a in getattr(module, "active_adapters", ["default"]) if a in module.lora_A]
        if not active:
            continue
        if len(active) > 1:
            raise ValueError(f"{module_name}: {len(active)} active adapters; push merged weights instead")
        adapter = active[0]
        if getattr(module, "use_dora", {}).get(adapter, False) or getattr(module, "fan_in_fan_out", False):
            raise ValueError(f"{module_name}: DoRA or fan_in_fan_out; push merged weights instead")
        target = f"{module_name}.weight"
        a, b = module.lora_A[adapter].weight, module.lora_B[adapter].weight
        covered.update((id(a), id(b)))
        scaling = torch.tensor(float(module.scaling[adapter]), dtype=torch.float32)
        out += [(target + LORA_A, a.detach().clone()), (target + LORA_B, b.detach().clone())]
        out.append((target + LORA_SCALING, scaling))
    if not out:
        raise ValueError("the model has no active LoRA layers; push merged weights instead")
    for name, p in lm.named_parameters():  # e.g. modules_to_save
        if p.requires_grad and id(p) not in covered and "lora_" not in name:
            out.append((name.replace(".base_layer.", "."), p.detach().clone()))
    return out


def split_adapter_name(name: str) -> tuple[str, str] | None:
    """``("model.x.weight", "lora_A")`` for an adapter tensor's name, None for a plain one."""
    for suffix in (LORA_A, LORA_B, LORA_SCALING):
        if name.endswith(suffix):
            return name[: -len(suffix)], suffix[2:]
    return None
