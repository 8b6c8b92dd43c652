"""Containers started ahead of the resets that need them, and task images kept within a disk budget.

Two parts, one per cost of a Docker reset:

- `WarmPool` keeps up to ``size`` containers started ahead, for the images the next resets will
  ask for (``pool.expect(images)``, in the order the trainer will ask for them). ``acquire(image)``
  hands out a warm container of that image (a *hit*) or starts one cold (a *miss*); every
  container serves one episode: ``release(container)`` removes it, it is never reused. The
  containers of one Docker host count against a per-host limit (`host_slots`), warm and leased
  together, so that several pools never start more than a host takes. Several hosts, each with
  its own cap: `PoolConfig.hosts` and `swerepair.envs.sandbox.docker.hosts` (`MultiHostPool`).
- `ImageCache` keeps the task images on the engine within a disk budget: ``prefetch(images)``
  pulls the missing ones in a background thread, in order; ``ensure(image)`` makes one present
  (pulling it if needed: a real ``client.images.pull``, whose failure is reported as a
  `SandboxError` naming the image); beyond ``budget_bytes`` the least recently used task images
  are removed, never one that a container (running or not) uses, nor one expected next. Sizes
  are the engine's (``Size`` of each image, each image counted once, base layers included).

Both report what they did in `stats()` (``docker/pulls``, ``docker/evictions``,
``docker/cache_bytes``, ``docker/pool_hits``, ``docker/pool_misses``, ``docker/reset_wait_s``,
...). `sandbox_pool` gives the process's pool for the Docker sandbox's settings (`shared_pool`),
so that the many envs of a rollout share one, and `shared_expect` tells it (and pools made later)
the resets that come next: `GRPOTrainer` says this step's and the next step's tasks.

The pool knows no Docker API itself: it is handed ``start(image, labels) -> container`` and
``remove(container)`` (the engine's, from `swerepair.envs.sandbox.docker.client`, or fakes in a
unit test); the cache is handed a Docker SDK client (or anything with its ``images`` and
``api.containers`` methods).
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import logging
import os
import threading
import time
import uuid
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from swerepair.core import SandboxError, Task
from swerepair.envs.sandbox.docker.hosts import (
    LABEL_DOCKER_HOST,
    HostSpec,
    MultiHostPool,
    hosts_from_env,
    parse_hosts,
)
from swerepair.envs.sandbox.docker.images import NoImageError, image_for, normalize_image

__all__ = [
    "POOL_LABEL",
    "HostSlots",
    "ImageCache",
    "ImagePullError",
    "PoolConfig",
    "WarmPool",
    "close_shared_pools",
    "host_slots",
    "sandbox_pool",
    "shared_expect",
    "shared_pool",
    "shared_stats",
]

log = logging.getLogger(__name__)

#: The label every pooled container carries: the id of the pool that started it.
POOL_LABEL = "swerepair.pool"

Container = Any
StartFn = Callable[[str, Mapping[str, str]], Container]
RemoveFn = Callable[[Container], None]


class ImagePullError(SandboxError):
    """A task image is not on the engine and could not be pulled (or pulling is off)."""


@dataclass(frozen=True)
class PoolConfig:
    """Settings of the warm pool and the image cache (``docker={...}`` of ``gymnasium.make``, and
    the ``docker_*`` settings of a `TrainConfig`).

    Attributes:
        pool_size: containers kept started ahead of the resets that need them (0: none; every
            reset starts its container cold).
        per_host_limit: at most this many containers of the pools at once on one Docker host,
            warm and in use together (the process's pools on that host share the limit).
        image_budget_bytes: the task images' disk budget; beyond it the least recently used are
            removed (``None``: no budget, nothing is removed).
        pull: pull a missing image (``False``: a missing image fails the reset at once).
        prefetch: pull the expected images ahead in a background thread.
        host: the Docker host (``DOCKER_HOST``'s form); ``None``: the environment's.
        hosts: several Docker hosts, ``"host"`` or ``"host=N"`` (N: its cap of sandboxes at once;
            default `per_host_limit`); a comma-separated string or a ``{host: N}`` dict is read
            as such. Each sandbox goes to the least-loaded live host (`swerepair.envs.sandbox.
            docker.hosts`). Empty: `host`, else ``$SWEREPAIR_DOCKER_HOSTS``, else ``$DOCKER_HOST``.
    """

    pool_size: int = 2
    per_host_limit: int = 16
    image_budget_bytes: int | None = None
    pull: bool = True
    prefetch: bool = True
    host: str | None = None
    hosts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.pool_size < 0:
            raise ValueError(f"pool_size must be >= 0, got {self.pool_size}")
        if self.per_host_limit < 1:
            raise ValueError(f"per_host_limit must be >= 1, got {self.per_host_limit}")
        if self.image_budget_bytes is not None and self.image_budget_bytes < 0:
            raise ValueError(f"image_budget_bytes must be >= 0 or None, got {self.image_budget_bytes}")
        hosts: Any = self.hosts
        if isinstance(hosts, str):
            hosts = [part.strip() for part in hosts.split(",") if part.strip()]
        elif isinstance(hosts, Mapping):
            hosts = [(h, n) for h, n in hosts.items()]
        entries = tuple(
            h.strip() if isinstance(h, str) else (f"{h[0]}={h[1]}" if h[1] is not None else str(h[0])) for h in hosts
        )  # as given: a host without a cap takes per_host_limit whenever that changes
        parse_hosts(entries, self.per_host_limit)  # raises ValueError for a bad list
        object.__setattr__(self, "hosts", entries)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> PoolConfig:
        """The settings of `values` (a ``docker={...}`` dict); keys that are not pool settings
        are ignored (they belong to the sandbox), so one dict can carry both.

        >>> config = PoolConfig.from_mapping({"pool_size": 4, "image_budget_gb": 50, "memory": "4g"})
        >>> config.pool_size, config.per_host_limit, config.image_budget_bytes, config.host, config.hosts
        (4, 16, 50000000000, None, ())
        >>> PoolConfig.from_mapping({"hosts": "unix:///var/run/docker.sock, tcp://b:2375=8"}).hosts
        ('unix:///var/run/docker.sock', 'tcp://b:2375=8')
        """
        values = dict(values or {})
        if "image_budget_gb" in values:
            gb = values.pop("image_budget_gb")
            values["image_budget_bytes"] = None if gb is None else int(float(gb) * 1e9)
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in values.items() if k in names})


# -- per-host limit -----------------------------------------------------------------------------
class HostSlots:
    """How many pooled containers one Docker host runs, against its limit (thread-safe)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.waiting = 0  # resets waiting for a slot: they go before warm starts
        self._cond = threading.Condition()

    def try_take(self, *, ahead: bool = False) -> bool:
        """Take a slot if one is free now; with `ahead` (a container started ahead of need),
        only if no reset is waiting for one."""
        with self._cond:
            if self.used >= self.limit or (ahead and self.waiting):
                return False
            self.used += 1
            return True

    def take(self, timeout: float | None = None) -> bool:
        """Wait up to `timeout` seconds (``None``: for ever) for a slot; False if none came."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self.waiting += 1
            try:
                while self.used >= self.limit:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return False
                    self._cond.wait(left)
                self.used += 1
                return True
            finally:
                self.waiting -= 1

    def give(self) -> None:
        """Return a slot."""
        with self._cond:
            self.used = max(0, self.used - 1)
            self._cond.notify_all()


_HOSTS: dict[tuple[int, str], HostSlots] = {}  # by process (a forked child counts its own) and host
_HOSTS_LOCK = threading.Lock()


def host_slots(host: str | None, limit: int) -> HostSlots:
    """The process's slots of `host` (``None``: the default host), with `limit` as its limit
    (the latest limit asked for wins)."""
    key = (os.getpid(), host or "")
    with _HOSTS_LOCK:
        slots = _HOSTS.get(key)
        if slots is None:
            slots = _HOSTS[key] = HostSlots(limit)
        elif slots.limit != limit:
            with slots._cond:
                slots.limit = limit
                slots._cond.notify_all()
        return slots


# -- image cache --------------------------------------------------------------------------------
def _split_ref(ref: str) -> tuple[str, str]:
    """``(repository, tag or digest)`` of a normalized reference, for ``images.pull``."""
    if "@" in ref:
        repo, digest = ref.split("@", 1)
        return repo, digest
    repo, _, tag = ref.rpartition(":")
    return repo, tag


class ImageCache:
    """The task images on one engine: pulled ahead, least recently used removed beyond a budget.

    Args:
        client: a Docker SDK client (``images.get/pull/remove``, ``api.containers``).
        budget_bytes: the disk the task images may take (``None``: unbounded).
        pull: pull missing images (``False``: `ensure` fails at once for a missing image).
        pinned: more images never to remove (say, the warm pool's next ones).
        ahead: pull the images `prefetch` is told of in a background thread (``False``: they are
            only kept from eviction, and pulled when a reset needs them).
        host: the engine's address, named in errors (several hosts: each has its own cache).

    Only images the cache was asked for (`ensure`, `prefetch`) are its task images: other images
    on the engine (the base images, the user's) are never counted nor removed.
    """

    def __init__(
        self,
        client: Any,
        *,
        budget_bytes: int | None = None,
        pull: bool = True,
        pinned: Callable[[], Iterable[str]] | None = None,
        ahead: bool = True,
        host: str | None = None,
    ) -> None:
        self.client = client
        self.host = host
        self.ahead = ahead
        self.budget_bytes = budget_bytes
        self.pull_missing = pull
        self._pinned = pinned
        self._lock = threading.RLock()
        self._clock = itertools.count()
        self._known: OrderedDict[str, tuple[str, int]] = OrderedDict()  # name -> (id, size), LRU first
        self._used_at: dict[str, int] = {}
        self._pulling: dict[str, threading.Event] = {}
        self._expected: deque[str] = deque()
        self._prefetcher: threading.Thread | None = None
        self._wake = threading.Condition(self._lock)
        self._closed = False
        self.last_error: str | None = None
        self.counts: Counter[str] = Counter()
        self.seconds: Counter[str] = Counter()

    # -- what is there ---------------------------------------------------------------------------
    def _inspect(self, name: str) -> tuple[str, int] | None:
        """``(id, size)`` of `name` on the engine, or None when it is not there."""
        import docker.errors

        try:
            image = self.client.images.get(name)
        except docker.errors.ImageNotFound:
            return None
        return image.id, int(image.attrs.get("Size") or 0)

    def _in_use_ids(self) -> set[str]:
        """Image ids that some container on the engine (running or not) was created from."""
        return {c.get("ImageID", "") for c in self.client.api.containers(all=True)}

    def cache_bytes(self) -> int:
        """The disk the known task images take: each image (by id) counted once."""
        with self._lock:
            return sum(dict(self._known.values()).values()) if self._known else 0

    def images(self) -> list[str]:
        """The task images on the engine, least recently used first."""
        with self._lock:
            return list(self._known)

    # -- use ---------------------------------------------------------------------------------------
    def touch(self, image: str) -> None:
        """Mark `image` used now (most recently used)."""
        name = normalize_image(image)
        with self._lock:
            if name in self._known:
                self._known.move_to_end(name)
            self._used_at[name] = next(self._clock)

    def used(self, image: str) -> None:
        """`image` was used by a reset (a warm container of it was handed out): mark it used now
        and drop one expectation of it."""
        name = normalize_image(image)
        with self._lock:
            with contextlib.suppress(ValueError):
                self._expected.remove(name)
            self._wake.notify_all()
        self.touch(name)

    def ensure(self, image: str, *, consume: bool = True) -> float:
        """Make `image` present on the engine (waiting for a prefetch of it, or pulling it), mark
        it used now, and with `consume` drop one expectation of it (`prefetch`); then remove least
        recently used images beyond the budget. Returns the seconds spent waiting for the image.
        Raises `ImagePullError` when it is missing and cannot be pulled."""
        name = normalize_image(image)
        started = time.monotonic()
        with self._lock:
            if consume:
                with contextlib.suppress(ValueError):
                    self._expected.remove(name)
                self._wake.notify_all()
        self._present(name, waiting=True)
        self.touch(name)
        waited = time.monotonic() - started
        with self._lock:
            self.seconds["pull_wait"] += waited
        self.evict(keep=(name,))
        return waited

    def _present(self, name: str, *, waiting: bool) -> None:
        """Make `name` present: wait for a pull of it in flight, else pull it if missing."""
        while True:
            with self._lock:
                event = self._pulling.get(name)
                if event is None:
                    found = self._inspect(name)
                    if found is not None:
                        self._known[name] = found
                        self._known.move_to_end(name)
                        if waiting:
                            self.counts["image_hits"] += 1
                        return
                    event = self._pulling[name] = threading.Event()
                    break
            event.wait()
        try:
            self._pull(name)
        finally:
            with self._lock:
                del self._pulling[name]
            event.set()

    def _where(self) -> str:
        return f" at {self.host}" if self.host else ""

    def _pull(self, name: str) -> None:
        if not self.pull_missing:
            with self._lock:
                self.counts["pull_failures"] += 1
                self.last_error = f"image {name} is not on the Docker engine{self._where()} (pulling is off)"
            raise ImagePullError(self.last_error)
        repo, tag = _split_ref(name)
        started = time.monotonic()
        try:
            self.client.images.pull(repo, tag=tag)
            found = self._inspect(name)
            if found is None:
                raise RuntimeError("the engine reported the pull done, but the image is not there")
        except Exception as exc:  # the engine's APIError, a lost connection, ...
            with self._lock:
                self.counts["pull_failures"] += 1
                where = self._where()
                self.last_error = f"image {name} is not on the Docker engine{where} and pulling it failed: {exc}"
            log.error("%s", self.last_error)
            raise ImagePullError(self.last_error) from exc
        with self._lock:
            self.counts["pulls"] += 1
            self.counts["pulled_bytes"] += found[1]
            self.seconds["pull"] += time.monotonic() - started
            self._known[name] = found
            self._known.move_to_end(name)
            self._used_at.setdefault(name, next(self._clock))
        log.info("pulled %s (%.2f GB) in %.1fs", name, found[1] / 1e9, time.monotonic() - started)

    # -- ahead ---------------------------------------------------------------------------------------
    def prefetch(self, images: Iterable[str]) -> None:
        """Expect `images` next, in this order (replacing what was expected before): a background
        thread pulls the missing ones, in order, as long as the budget holds them (images
        expected and not yet used are never removed for the next one). Pull failures are
        counted and logged, and reported again by the `ensure` that needs the image."""
        with self._lock:
            self._expected = deque(normalize_image(i) for i in images)
            if not self.ahead or self._closed:
                return
            if self._prefetcher is None or not self._prefetcher.is_alive():
                self._prefetcher = threading.Thread(
                    target=self._prefetch_loop, name="swerepair-image-prefetch", daemon=True
                )
                self._prefetcher.start()
            self._wake.notify_all()

    def expected(self) -> list[str]:
        """The images expected next (by `prefetch`), not yet used, in order."""
        with self._lock:
            return list(self._expected)

    def _next_to_fetch(self, failed: set[str]) -> str | None:
        for name in self._expected:
            if name not in self._known and name not in self._pulling and name not in failed:
                if self.budget_bytes is not None and self._known:
                    # make room for an image of the mean size of those known (its own is unknown)
                    room = self.cache_bytes() // len(set(self._known.values()))
                    if self.cache_bytes() + room > self.budget_bytes:
                        self.evict(room=room)
                    if self.cache_bytes() + room > self.budget_bytes:
                        return None  # full of images in use or expected sooner: pull on demand
                return name
        return None

    def _prefetch_loop(self) -> None:
        failed: set[str] = set()
        while True:
            with self._lock:
                while not self._closed and (name := self._next_to_fetch(failed)) is None:
                    self._wake.wait(5.0)
                    failed &= set(self._expected)
                if self._closed:
                    return
            try:
                self._present(name, waiting=False)
            except ImagePullError:
                failed.add(name)
                continue
            except Exception:  # never let the thread die on an engine hiccup
                log.exception("prefetching %s failed", name)
                failed.add(name)
                continue
            self.evict()

    # -- budget --------------------------------------------------------------------------------------
    def evict(self, keep: Iterable[str] = (), *, room: int = 0) -> list[str]:
        """Remove least recently used task images until the cache is within budget (with `room`
        bytes to spare); never an image that a container uses (running or stopped, by the
        engine's list), nor one expected next, pinned, or in `keep`. Returns the names removed."""
        import docker.errors

        if self.budget_bytes is None:
            return []
        removed: list[str] = []
        with self._lock:
            limit = self.budget_bytes - room
            if self.cache_bytes() <= limit:
                return []
            keep_names = {normalize_image(n) for n in (self._pinned() if self._pinned else ())}
            keep_names |= {normalize_image(n) for n in keep}
            keep_names |= set(self._expected) | set(self._pulling)
            keep_ids = self._in_use_ids() | {self._known[n][0] for n in keep_names if n in self._known}
            for name in sorted(self._known, key=lambda n: self._used_at.get(n, -1)):
                if self.cache_bytes() <= limit:
                    break
                image_id, size = self._known[name]
                if name in keep_names or image_id in keep_ids:
                    continue
                try:
                    self.client.images.remove(name)
                except docker.errors.ImageNotFound:
                    pass
                except docker.errors.APIError as exc:  # a container was just created from it, ...
                    log.warning("could not remove the image %s: %s", name, exc)
                    continue
                del self._known[name]
                self._used_at.pop(name, None)
                removed.append(name)
                self.counts["evictions"] += 1
                if all(i != image_id for i, _ in self._known.values()) and self._inspect_id(image_id) is None:
                    self.counts["evicted_bytes"] += size
            over = self.cache_bytes() - self.budget_bytes
        if removed:
            log.info("image budget: removed %s", ", ".join(removed))
        if over > 0:
            log.warning("the task images take %.2f GB over the budget; all in use or expected next", over / 1e9)
        return removed

    def _inspect_id(self, image_id: str) -> str | None:
        import docker.errors

        try:
            return str(self.client.images.get(image_id).id)
        except docker.errors.ImageNotFound:
            return None

    # -- report ----------------------------------------------------------------------------------------
    def stats(self) -> dict[str, float]:
        """``docker/pulls``, ``docker/pull_failures``, ``docker/image_hits``, ``docker/evictions``,
        ``docker/pulled_bytes``, ``docker/evicted_bytes``, ``docker/cache_bytes``,
        ``docker/cache_images``, ``docker/pull_s`` and ``docker/pull_wait_s`` (time resets waited
        for images), all since the cache was made (``cache_bytes`` and ``cache_images``: now)."""
        with self._lock:
            out = {
                f"docker/{k}": float(self.counts[k])
                for k in ("pulls", "pull_failures", "image_hits", "evictions", "pulled_bytes", "evicted_bytes")
            }
            out["docker/cache_bytes"] = float(self.cache_bytes())
            out["docker/cache_images"] = float(len(self._known))
            out["docker/pull_s"] = float(self.seconds["pull"])
            out["docker/pull_wait_s"] = float(self.seconds["pull_wait"])
            return out

    def close(self) -> None:
        """Stop the prefetch thread (a pull in flight finishes in the engine). Idempotent."""
        with self._lock:
            self._closed = True
            self._wake.notify_all()
            thread = self._prefetcher
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=1.0)


# -- warm pool ------------------------------------------------------------------------------------
class WarmPool:
    """Containers started ahead for the images the next resets need; one container per episode.

    Args:
        start: ``start(image, labels) -> container``: create and start a container (labels
            given are to be set on it).
        remove: ``remove(container)``: stop and remove it.
        size: warm containers kept at most (0: none, every acquire starts cold).
        host: the Docker host (its name keys the per-host limit).
        per_host_limit: containers of the pools on `host` at most, warm and leased together.
        cache: the image cache: images are made present (pulled) through it; `prefetch` is told
            the expected images. ``None``: images must already be on the engine.
        resolve: the image of a `Task` given to `expect` (default: `image_for`).
        labels: more labels for every container.
        acquire_timeout_s: how long `acquire` waits for a free slot of the host before it fails.
    """

    def __init__(
        self,
        start: StartFn,
        remove: RemoveFn,
        *,
        size: int = 2,
        host: str | None = None,
        per_host_limit: int = 16,
        cache: ImageCache | None = None,
        resolve: Callable[[Task], str] | None = None,
        labels: Mapping[str, str] | None = None,
        acquire_timeout_s: float = 600.0,
    ) -> None:
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size}")
        self.start_fn, self.remove_fn = start, remove
        self.size = size
        self.host = host
        self.slots = host_slots(host, per_host_limit)
        self.cache = cache
        self.resolve = resolve
        self.id = uuid.uuid4().hex[:12]
        self.pid = os.getpid()  # a forked child never hands out (nor removes) its parent's containers
        self.labels = {**(labels or {}), POOL_LABEL: self.id}
        self.acquire_timeout_s = acquire_timeout_s
        self._lock = threading.Condition()
        self._warm: dict[str, deque[Container]] = {}
        self._starting: Counter[str] = Counter()
        self._upcoming: deque[str] = deque()
        self._leased: dict[int, Container] = {}
        self._closed = False
        self._failures: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()
        self.seconds: Counter[str] = Counter()
        self._cold: Counter[str] = Counter()
        if cache is not None and cache._pinned is None:
            cache._pinned = self._pinned_images
        self._filler = threading.Thread(target=self._fill_loop, name="swerepair-warm-pool", daemon=True)
        if size > 0:
            self._filler.start()

    # -- what comes next ---------------------------------------------------------------------------
    def _image_of(self, item: Any) -> str:
        if isinstance(item, str):
            return normalize_image(item)
        if isinstance(item, Task):
            return normalize_image(self.resolve(item) if self.resolve is not None else image_for(item))
        raise TypeError(f"expect() takes image names or tasks, got {type(item).__name__}")

    def expect(self, items: Iterable[Any]) -> list[str]:
        """The resets that come next, in order: image names or tasks, one per reset (repeat an
        image for a group of episodes). Replaces what was expected before. The pool starts
        containers for the first `size` of them, and the cache pulls the missing images, in this
        order. Returns the images."""
        images = [self._image_of(i) for i in items]
        with self._lock:
            if self._closed:
                raise RuntimeError("the pool is closed")
            self._upcoming = deque(images)
            self._failures.clear()
            surplus = self._surplus()
            self._lock.notify_all()
        for container in surplus:
            self._discard(container)
        if self.cache is not None:
            self.cache.prefetch(images)
        return images

    def _pinned_images(self) -> set[str]:
        """Images the cache must keep: the next ones, and those containers are being started of."""
        with self._lock:
            return set(self._window()) | {i for i, n in (self._starting + self._cold).items() if n > 0}

    def _window(self) -> Counter[str]:
        """How many warm containers of each image the next `size` resets want."""
        return Counter(itertools.islice(self._upcoming, self.size))

    def _surplus(self) -> list[Container]:
        """Warm containers no longer wanted by the window (taken out of the pool; to remove)."""
        want = self._window()
        out = []
        for image, queue in self._warm.items():
            while len(queue) > want.get(image, 0):
                out.append(queue.pop())
        return out

    def _next_start(self) -> str | None:
        want = self._window()
        for image in dict.fromkeys(self._upcoming):
            have = len(self._warm.get(image, ())) + self._starting[image]
            if want.get(image, 0) > have and self._failures[image] < 2:
                return image
        return None

    def _fill_loop(self) -> None:
        while True:
            with self._lock:
                while not self._closed and (image := self._next_start()) is None:
                    self._lock.wait(5.0)
                if self._closed:
                    return
                if not self.slots.try_take(ahead=True):
                    self._lock.wait(0.2)  # the host is full: try again when a slot may be free
                    continue
                self._starting[image] += 1
            try:
                container = self._start(image)
            except Exception as exc:
                log.warning("warm pool: could not start a container of %s: %s", image, exc)
                self.slots.give()
                with self._lock:
                    self._starting[image] -= 1
                    self._failures[image] += 1
                    self._lock.notify_all()
                continue
            with self._lock:
                self._starting[image] -= 1
                if self._closed:
                    keep = False
                else:
                    self._warm.setdefault(image, deque()).append(container)
                    keep = True
                self._lock.notify_all()
            if not keep:
                self._discard(container)

    def _start(self, image: str, *, ensured: bool = False) -> Container:
        if self.cache is not None and not ensured:
            self.cache.ensure(image, consume=False)
        started = time.monotonic()
        container = self.start_fn(image, dict(self.labels))
        with self._lock:
            self.counts["started"] += 1
            self.seconds["start"] += time.monotonic() - started
        return container

    # -- hand out ----------------------------------------------------------------------------------
    def acquire(self, image: str, *, timeout: float | None = None, info: dict[str, Any] | None = None) -> Container:
        """A started container of `image` for one episode: a warm one (a hit; one being started
        for it is waited for), else one started now (a miss). Give it back with `release`.
        `info`, if given, receives ``image``, ``pool_hit`` and ``reset_wait_s`` (this wait).
        Raises `SandboxError` when the host has no free slot within the timeout, or what
        starting raises (`ImagePullError` for an image that cannot be had)."""
        name = normalize_image(image)
        began = time.monotonic()
        timeout = self.acquire_timeout_s if timeout is None else timeout
        container = None
        try:
            container = self._take_warm(name)
            with self._lock:
                self.counts["hits" if container is not None else "misses"] += 1
            if container is not None:
                if self.cache is not None:
                    self.cache.used(name)
                return container
            return self._start_cold(name, began + timeout)
        finally:
            waited = time.monotonic() - began
            with self._lock:
                self.seconds["reset_wait"] += waited
            if info is not None:
                info.update(image=name, pool_hit=container is not None, reset_wait_s=waited, host=self.host)

    def _take_warm(self, name: str) -> Container | None:
        with self._lock:
            if self._closed:
                raise SandboxError("the warm pool is closed")
            with contextlib.suppress(ValueError):
                self._upcoming.remove(name)
            while True:
                queue = self._warm.get(name)
                if queue:
                    container = queue.popleft()
                    self._leased[id(container)] = container
                    self._lock.notify_all()
                    return container
                if not self._starting[name]:
                    return None
                self._lock.wait(1.0)  # one is being started for it: faster than a cold start

    def _start_cold(self, name: str, deadline: float) -> Container:
        while not self.slots.try_take():
            victim = self._victim()
            if victim is not None:
                self._discard(victim)  # gives its slot back
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                raise SandboxError(
                    f"no free container slot on the Docker host {self.host or '(default)'} "
                    f"(limit {self.slots.limit}) for {name}"
                )
            if self.slots.take(timeout=min(left, 0.5)):  # meanwhile no container is started ahead
                break
        with self._lock:
            self._cold[name] += 1
        try:
            if self.cache is not None:
                self.cache.ensure(name)
            container = self._start(name, ensured=True)
        except BaseException:
            self.slots.give()
            raise
        finally:
            with self._lock:
                self._cold[name] -= 1
        with self._lock:
            self._leased[id(container)] = container
        return container

    def _victim(self) -> Container | None:
        """A warm container to give up for a cold start: one of the image wanted last."""
        with self._lock:
            order = {image: k for k, image in enumerate(self._upcoming)}
            images = [i for i, q in self._warm.items() if q]
            if not images:
                return None
            image = max(images, key=lambda i: order.get(i, len(order) + 1))
            return self._warm[image].pop()

    def release(self, container: Container) -> None:
        """The episode is over: remove `container` (containers are never reused) and free its
        slot of the host. Safe to call twice."""
        with self._lock:
            known = self._leased.pop(id(container), None) is not None
        if known:
            self._discard(container)

    def _discard(self, container: Container) -> None:
        try:
            self.remove_fn(container)
        except Exception:
            log.exception("warm pool: could not remove a container")
        finally:
            self.slots.give()
            with self._lock:
                self._lock.notify_all()

    # -- report and close -----------------------------------------------------------------------------
    def warm(self) -> dict[str, int]:
        """Warm containers per image, now."""
        with self._lock:
            return {image: len(q) for image, q in self._warm.items() if q}

    def stats(self) -> dict[str, float]:
        """``docker/pool_hits``, ``docker/pool_misses``, ``docker/reset_wait_s`` (seconds resets
        waited in `acquire`, hits and misses together), ``docker/containers_started``,
        ``docker/pool_warm`` and ``docker/pool_leased`` (now), and the cache's `stats`."""
        with self._lock:
            out = {
                "docker/pool_hits": float(self.counts["hits"]),
                "docker/pool_misses": float(self.counts["misses"]),
                "docker/reset_wait_s": float(self.seconds["reset_wait"]),
                "docker/containers_started": float(self.counts["started"]),
                "docker/pool_warm": float(sum(len(q) for q in self._warm.values())),
                "docker/pool_leased": float(len(self._leased)),
            }
        if self.cache is not None:
            out.update(self.cache.stats())
        return out

    def close(self) -> None:
        """Remove the warm containers and those still leased; stop the threads. Idempotent."""
        with self._lock:
            self._closed = True
            containers = [c for q in self._warm.values() for c in q] + list(self._leased.values())
            self._warm.clear()
            self._leased.clear()
            self._lock.notify_all()
        if self._filler.is_alive() and self._filler is not threading.current_thread():
            self._filler.join(timeout=30.0)
        with self._lock:  # a start that finished while closing
            containers += [c for q in self._warm.values() for c in q]
            self._warm.clear()
        for container in containers:
            self._discard(container)
        if self.cache is not None:
            self.cache.close()

    def __enter__(self) -> WarmPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- the process's pools ------------------------------------------------------------------------------
_SHARED: dict[Hashable, WarmPool | MultiHostPool] = {}
_SHARED_LOCK = threading.Lock()
_EXPECTED: list[Any] = []  # what the trainer expects next, for pools made after it said so


def shared_pool(key: Hashable, factory: Callable[[], WarmPool | MultiHostPool]) -> WarmPool | MultiHostPool:
    """The process's pool for `key` (the pool settings and everything a container is started
    with: its containers must be what an unpooled reset would start), made by ``factory()`` the
    first time, so that the envs of a rollout share it; it is told what `shared_expect` said last.
    Closed at exit (its containers removed)."""
    with _SHARED_LOCK:
        pool = _SHARED.get(key)
        if pool is not None and not pool._closed and pool.pid == os.getpid():
            return pool
        pool = _SHARED[key] = factory()
        expected = list(_EXPECTED)
    if expected:
        with contextlib.suppress(Exception):
            pool.expect(expected)
    return pool


def shared_expect(items: Iterable[Any]) -> None:
    """Tell the process's pools (and those made later) the resets that come next, in order:
    tasks or image names, one per reset (`WarmPool.expect`). A trainer calls it with the tasks
    of its next steps; an item no pool can resolve to an image is skipped with a warning."""
    items = list(items)
    with _SHARED_LOCK:
        _EXPECTED[:] = items
        pools = [p for p in _SHARED.values() if not p._closed and p.pid == os.getpid()]
    for pool in pools:
        try:
            pool.expect(items)
        except (NoImageError, TypeError) as exc:
            log.warning("warm pool: cannot expect these resets: %s", exc)


def shared_stats() -> dict[str, float]:
    """The `WarmPool.stats` of the process's pools, summed (gauges too: they add up across
    pools; but ``docker/hosts`` and ``docker/hosts_live``, the hosts they share, are the
    largest); empty when no pool was made."""
    with _SHARED_LOCK:
        pools = [p for p in _SHARED.values() if p.pid == os.getpid()]
    total: Counter[str] = Counter()
    for pool in pools:
        stats = pool.stats()
        for key in _HOST_GAUGES & set(stats):  # the pools share the hosts: not summed
            total[key] = max(total[key], stats.pop(key))
        total.update(stats)
    return {k: float(v) for k, v in sorted(total.items())}


_HOST_GAUGES = {"docker/hosts", "docker/hosts_live"}


def close_shared_pools() -> None:
    """Close the process's pools (their containers are removed) and forget what was expected."""
    with _SHARED_LOCK:
        pools = [p for p in _SHARED.values() if p.pid == os.getpid()]  # a forked child's copy: not its own
        _SHARED.clear()
        _EXPECTED.clear()
    for pool in pools:
        pool.close()


atexit.register(close_shared_pools)


# -- the Docker sandbox's pools -----------------------------------------------------------------------
def sandbox_pool(
    config: Any,
    *,
    runtime: str | None = None,
    workdir: str | None = None,
    role: str = "agent",
    client: Any = None,
) -> WarmPool | MultiHostPool:
    """The process's pool of the Docker sandbox's containers as `DockerSandbox` starts them with
    `config` (a `SandboxConfig`: its limits, and its ``docker_pool`` settings, default
    `PoolConfig()`), `runtime`, `workdir` and `role`: one pool per distinct set, shared by every
    env of the process; images are pulled and budgeted through its `ImageCache`, and tasks given
    to `expect` resolve to images as `DockerSandbox.for_task` resolves them. With several hosts
    (``docker_pool.hosts``, else ``$SWEREPAIR_DOCKER_HOSTS`` when no single ``host`` is named;
    not with an explicit `client`) a `MultiHostPool`: one such pool per host, each sandbox on the
    least-loaded live host (`swerepair.envs.sandbox.docker.hosts`)."""

    settings: PoolConfig = config.docker_pool or PoolConfig()
    # several hosts: the settings' list, else (no single host named) the environment's
    hosts: tuple[HostSpec, ...] = ()
    if client is None:
        hosts = parse_hosts(settings.hosts, settings.per_host_limit)
        if not hosts and settings.host is None:
            hosts = hosts_from_env(settings.per_host_limit)
    host = settings.host or os.environ.get("DOCKER_HOST")
    # an explicit client is an engine of its own: its containers never mix with the default one's
    engine_key = None if client is None else id(client)
    key = ("docker-sandbox", settings, repr(config.limits), runtime, workdir, role, host, config.docker_image)
    key += (engine_key, hosts)

    def make_pool(engine: Any, host: str | None, limit: int, labels: Mapping[str, str] | None = None) -> WarmPool:
        from swerepair.envs.sandbox.docker.client import remove_container, start_container
        from swerepair.envs.sandbox.docker.sandbox import DEFAULT_WORKDIR, _image_for

        def start(image: str, labels: Mapping[str, str]) -> Container:
            # where DockerSandbox puts the workspace (it releases a container made for another)
            image_config = (engine.images.get(image).attrs or {}).get("Config") or {}
            where = workdir or (image_config.get("WorkingDir") or "").rstrip("/") or DEFAULT_WORKDIR
            return start_container(
                engine, image, limits=config.limits, runtime=runtime, role=role, workdir=where, labels=labels
            )

        def resolve(task: Task) -> str:
            image = config.docker_image or _image_for(task)
            if not image:
                raise NoImageError(f"task {task.instance_id}: no Docker image")
            return image

        cache = ImageCache(
            engine, budget_bytes=settings.image_budget_bytes, pull=settings.pull, ahead=settings.prefetch, host=host
        )
        return WarmPool(
            start,
            remove_container,
            size=settings.pool_size,
            host=host,
            per_host_limit=limit,
            cache=cache,
            resolve=resolve,
            labels=labels,
        )

    def factory() -> WarmPool | MultiHostPool:
        if hosts:

            def host_pool(address: str, limit: int) -> WarmPool:
                import docker

                # DOCKER_TLS_VERIFY and DOCKER_CERT_PATH apply to every host, as the docker CLI reads them
                engine = docker.from_env(timeout=120, environment={**os.environ, "DOCKER_HOST": address})
                return make_pool(engine, address, limit, {LABEL_DOCKER_HOST: address})

            return MultiHostPool(hosts, host_pool)
        from swerepair.envs.sandbox.docker.client import docker_client

        engine = client
        if engine is None and settings.host:
            import docker

            engine = docker.DockerClient(base_url=settings.host)
        return make_pool(engine or docker_client(), host, settings.per_host_limit)

    return shared_pool(key, factory)
