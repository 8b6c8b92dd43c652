"""Sandboxes on several Docker hosts: a hosts list, a cap per host, least-loaded placement.

A user names several engines (``DOCKER_HOST``'s forms: ``unix:///var/run/docker.sock``,
``tcp://10.0.0.2:2376``, ``ssh://user@host``), each with its own cap of sandboxes at once
(``"tcp://10.0.0.2:2375=32"``; a host without ``=N`` gets `PoolConfig.per_host_limit`), by
`PoolConfig.hosts`, ``docker={"hosts": [...]}``, `TrainConfig.docker_hosts` (``--docker-hosts``)
or the environment variable `ENV_HOSTS` (``SWEREPAIR_DOCKER_HOSTS``, comma-separated). Then:

- **Placement.** Each new sandbox goes to the live host with the fewest sandboxes in use relative
  to its cap (in use: handed out and not yet released, by every pool of the process); ties go to
  a host with a warm container of the image, then to the host named first (`HostBalancer`).
- **Caps.** A host never has more sandboxes in use than its cap; when every live host is full,
  the reset waits for a release (up to the pool's acquire timeout, then a `SandboxError`). The
  warm containers of a host count against the same cap (`pool.host_slots`).
- **Hosts that fail.** A host whose engine does not answer (connection refused, a socket gone,
  an engine stopped) when a sandbox is acquired or set up on it is marked down: the episode that
  hit it fails (``sandbox_error``: an infrastructure failure, never a 0 reward), and new
  sandboxes go to the other hosts. A down host is tried again (a ping) after `RETRY_S` seconds.
  When no host answers, the reset fails at once with `NoHostError` naming each host and why.
- **Images.** Each host has its own `ImageCache`: a task's image is made present on the host
  chosen (pulled there if missing); where it cannot be, the error names the image and the host.
- **Records.** Each reset's ``info["docker"]["host"]`` names the host that served it; the pool's
  `stats` count the hosts (``docker/hosts``, ``docker/hosts_live``); `MultiHostPool.hosts`
  reports each host's cap, use, sandboxes served and state.

What it is not: a scheduler across processes. Each training process (rank) counts only its own
sandboxes against the caps, so N processes sharing hosts should each get 1/N of a host's capacity.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from swerepair.core import SandboxError

if TYPE_CHECKING:
    from swerepair.envs.sandbox.docker.pool import WarmPool

__all__ = [
    "ENV_HOSTS",
    "LABEL_DOCKER_HOST",
    "RETRY_S",
    "HostBalancer",
    "HostSpec",
    "MultiHostPool",
    "NoHostError",
    "hosts_from_env",
    "parse_hosts",
    "probe_host",
]

log = logging.getLogger(__name__)

#: The environment variable naming several Docker hosts, comma-separated (``host`` or ``host=N``).
ENV_HOSTS = "SWEREPAIR_DOCKER_HOSTS"
#: The label each container of a several-hosts pool carries: the host it was started on.
LABEL_DOCKER_HOST = "swerepair.docker-host"
#: Seconds before a host marked down is tried again.
RETRY_S = 30.0


class NoHostError(SandboxError):
    """No Docker host of the list answers (or none has room within the timeout)."""


@dataclass(frozen=True)
class HostSpec:
    """One Docker host of a list and its cap of sandboxes at once."""

    host: str
    limit: int


def parse_hosts(spec: Any, default_limit: int = 16) -> tuple[HostSpec, ...]:
    """The hosts of `spec`: a comma-separated string, a sequence of ``"host"`` / ``"host=N"``
    strings (or ``(host, N)`` pairs), or a mapping ``{host: N}``; a host without a cap gets
    `default_limit`. Raises `ValueError` for an empty host, a cap below 1, or a host named twice.

    >>> parse_hosts("unix:///var/run/docker.sock, tcp://10.0.0.2:2375=32", default_limit=8)
    (HostSpec(host='unix:///var/run/docker.sock', limit=8), HostSpec(host='tcp://10.0.0.2:2375', limit=32))
    >>> parse_hosts({"ssh://me@b": 4})
    (HostSpec(host='ssh://me@b', limit=4),)
    """
    if spec is None:
        return ()
    if isinstance(spec, str):
        items: list[Any] = [part.strip() for part in spec.split(",") if part.strip()]
    elif isinstance(spec, Mapping):
        items = list(spec.items())
    else:
        items = list(spec)
    out: list[HostSpec] = []
    for item in items:
        if isinstance(item, HostSpec):
            host, limit = item.host, item.limit
        elif isinstance(item, str):
            host, sep, cap = item.strip().rpartition("=")
            if not sep or not cap.strip().isdigit():  # no cap (an '=' inside a URL stays)
                host, limit = item.strip(), default_limit
            else:
                host, limit = host.strip(), int(cap)
        else:
            host, limit = item
            host, limit = str(host).strip(), default_limit if limit is None else int(limit)
        if not host:
            raise ValueError(f"docker hosts: an empty host in {spec!r}")
        if limit < 1:
            raise ValueError(f"docker hosts: the cap of {host} must be >= 1, got {limit}")
        if any(h.host == host for h in out):
            raise ValueError(f"docker hosts: {host} is named twice")
        out.append(HostSpec(host, limit))
    return tuple(out)


def hosts_from_env(default_limit: int = 16) -> tuple[HostSpec, ...]:
    """The hosts of ``$SWEREPAIR_DOCKER_HOSTS`` (`ENV_HOSTS`); empty when it is unset."""
    return parse_hosts(os.environ.get(ENV_HOSTS, ""), default_limit)


def probe_host(host: str, timeout: float = 10.0) -> str | None:
    """``None`` when the engine at `host` answers a ping, else why not (one line)."""
    try:
        import docker

        client = docker.from_env(timeout=int(max(1, timeout)), environment={**os.environ, "DOCKER_HOST": host})
        try:
            client.ping()
        finally:
            with contextlib.suppress(Exception):
                client.close()
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:500]
    return None


# -- placement (no Docker API: unit-tested alone) --------------------------------------------------
@dataclass
class _HostState:
    host: str
    limit: int
    in_use: int = 0
    served: int = 0
    down: str | None = None  # why it is down; None: live
    down_at: float = 0.0


_STATES: dict[tuple[int, str], _HostState] = {}  # by process and host: every pool of the process shares it
_CHANGED = threading.Condition()


def _state(host: str, limit: int) -> _HostState:
    key = (os.getpid(), host)
    with _CHANGED:
        state = _STATES.get(key)
        if state is None:
            state = _STATES[key] = _HostState(host, limit)
        elif state.limit != limit:
            state.limit = limit  # the latest cap asked for wins, as `pool.host_slots`
            _CHANGED.notify_all()
        return state


class HostBalancer:
    """Least-loaded placement over `hosts`, with caps and hosts marked down (thread-safe).

    The counts are the process's, per host: two balancers naming one host (an agent pool and a
    verifier pool, say) share its cap. `probe(host)` says why a host does not answer (``None``: it
    does); it is called without any lock held.
    """

    def __init__(
        self,
        hosts: Sequence[HostSpec],
        *,
        probe: Callable[[str], str | None] = probe_host,
        retry_s: float = RETRY_S,
    ) -> None:
        if not hosts:
            raise ValueError("HostBalancer needs at least one host")
        self.specs = tuple(hosts)
        self._states = [_state(h.host, h.limit) for h in self.specs]
        self.probe = probe
        self.retry_s = retry_s

    def _due(self, now: float) -> list[_HostState]:
        """Down hosts to ping again: those past their retry time, or all when none is live."""
        down = [s for s in self._states if s.down is not None]
        if len(down) == len(self._states):
            return down
        return [s for s in down if now - s.down_at >= self.retry_s]

    def _reprobe(self, states: Iterable[_HostState]) -> None:
        for state in states:
            reason = self.probe(state.host)
            with _CHANGED:
                if reason is None:
                    if state.down is not None:
                        log.warning("Docker host %s answers again", state.host)
                    state.down = None
                else:
                    state.down, state.down_at = reason, time.monotonic()
                _CHANGED.notify_all()

    def acquire(self, timeout: float | None = None, prefer: Callable[[str], bool] | None = None) -> str:
        """Take one sandbox's place on the live host with the fewest in use relative to its cap
        (ties: a host `prefer` says yes to, then the first named) and return the host; give it
        back with `release`. Waits while every live host is full, up to `timeout` seconds
        (``None``: for ever). Raises `NoHostError` when no host answers, or none had room in time."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with _CHANGED:
                due = self._due(time.monotonic())
            if due:
                self._reprobe(due)
            with _CHANGED:
                live = [(k, s) for k, s in enumerate(self._states) if s.down is None]
                if not live:
                    reasons = "; ".join(f"{s.host}: {s.down}" for s in self._states)
                    raise NoHostError(f"no Docker host answers ({reasons})")
                free = [(k, s) for k, s in live if s.in_use < s.limit]
                if free:
                    preferred = {s.host for _, s in free if prefer is not None and _safe(prefer, s.host)}
                    _, best = min(free, key=lambda ks: (ks[1].in_use / ks[1].limit, ks[1].host not in preferred, ks[0]))
                    best.in_use += 1
                    best.served += 1
                    return best.host
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    use = ", ".join(f"{s.host} {s.in_use}/{s.limit}" for _, s in live)
                    raise NoHostError(f"no free sandbox place on any live Docker host within {timeout:.0f}s ({use})")
                _CHANGED.wait(1.0 if left is None else min(left, 1.0))  # 1 s: to ping down hosts again

    def release(self, host: str) -> None:
        """Give back the place a sandbox took on `host`."""
        with _CHANGED:
            for state in self._states:
                if state.host == host:
                    state.in_use = max(0, state.in_use - 1)
            _CHANGED.notify_all()

    def mark_down(self, host: str, reason: str) -> None:
        """`host` does not answer: no new sandbox goes there until it answers a ping again."""
        with _CHANGED:
            for state in self._states:
                if state.host == host:
                    if state.down is None:
                        log.error("Docker host %s is down, skipped for new sandboxes: %s", host, reason)
                    state.down, state.down_at = reason, time.monotonic()
            _CHANGED.notify_all()

    def check(self, host: str) -> str | None:
        """Ping `host`; mark it down (and return why) if it does not answer."""
        reason = self.probe(host)
        if reason is not None:
            self.mark_down(host, reason)
        return reason

    def hosts(self) -> list[dict[str, Any]]:
        """Each host: ``host``, ``limit``, ``in_use``, ``served`` (sandboxes placed there by this
        process), ``live`` and ``down`` (why not, or ``None``)."""
        with _CHANGED:
            return [
                {"host": s.host, "limit": s.limit, "in_use": s.in_use, "served": s.served, "live": s.down is None,
                 "down": s.down}
                for s in self._states
            ]  # fmt: skip


def _safe(fn: Callable[[str], bool], host: str) -> bool:
    try:
        return bool(fn(host))
    except Exception:
        return False


def spread(items: Sequence[Any], weights: Sequence[int]) -> list[list[Any]]:
    """`items` dealt over len(`weights`) lists in proportion to the weights, in order (smooth
    weighted round robin: each next item to the list furthest behind its share).

    >>> spread(list("abcdef"), [2, 1])
    [['a', 'c', 'd', 'f'], ['b', 'e']]
    """
    out: list[list[Any]] = [[] for _ in weights]
    if not weights:
        return out
    total = sum(weights)
    current = [0] * len(weights)
    for item in items:
        current = [c + w for c, w in zip(current, weights, strict=True)]
        k = max(range(len(weights)), key=lambda i: (current[i], -i))
        current[k] -= total
        out[k].append(item)
    return out


# -- the pool over several hosts ---------------------------------------------------------------------
class MultiHostPool:
    """One `WarmPool` per Docker host behind one ``acquire``/``release``, placed by `HostBalancer`.

    Args:
        hosts: the hosts and their caps.
        make_pool: ``make_pool(host, limit) -> WarmPool`` for one host (with its own engine client
            and image cache); called the first time a host is used, so a host that does not
            answer at start is only marked down. Raising means the host cannot be used now.
        probe: ``probe(host) -> None or why not`` (default: a ping, `probe_host`).
        acquire_timeout_s: how long `acquire` waits for a place on a live host.
        retry_s: seconds before a host marked down is pinged again.

    Same methods as `WarmPool` where the env and trainer use them: `expect` (the resets dealt
    over the live hosts in proportion to their caps), `acquire`, `release`, `stats`, `close`.
    """

    def __init__(
        self,
        hosts: Sequence[HostSpec],
        make_pool: Callable[[str, int], WarmPool],
        *,
        probe: Callable[[str], str | None] = probe_host,
        acquire_timeout_s: float = 600.0,
        retry_s: float = RETRY_S,
    ) -> None:
        self.specs = tuple(hosts)
        self.balancer = HostBalancer(self.specs, probe=probe, retry_s=retry_s)
        self.make_pool = make_pool
        self.acquire_timeout_s = acquire_timeout_s
        self.pid = os.getpid()
        self.cache = None  # each host has its own (`pool_of(host).cache`)
        self._pools: OrderedDict[str, WarmPool] = OrderedDict()
        self._lock = threading.RLock()
        self._leased: dict[int, str] = {}  # id(container) -> host
        self._expected: list[Any] = []
        self._closed = False

    def pool_of(self, host: str) -> WarmPool:
        """The pool of `host`, made now if it was not (raises what making it raises)."""
        with self._lock:
            if self._closed:
                raise SandboxError("the warm pool is closed")
            pool = self._pools.get(host)
            if pool is None:
                limit = next(s.limit for s in self.specs if s.host == host)
                pool = self._pools[host] = self.make_pool(host, limit)
                share = self._shares().get(host)
                if share:
                    with contextlib.suppress(Exception):
                        pool.expect(share)
            return pool

    def _shares(self) -> dict[str, list[Any]]:
        live = [h for h in self.balancer.hosts() if h["live"]]
        dealt = spread(self._expected, [h["limit"] for h in live])
        return {h["host"]: items for h, items in zip(live, dealt, strict=True)}

    def expect(self, items: Iterable[Any]) -> list[Any]:
        """The resets that come next, dealt over the live hosts in proportion to their caps: each
        host's pool starts containers ahead and pulls images for its share."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the pool is closed")
            self._expected = list(items)
            shares = self._shares()
        out: list[Any] = []
        for host, share in shares.items():
            try:
                pool = self.pool_of(host)
            except Exception as exc:
                self.balancer.mark_down(host, f"{type(exc).__name__}: {exc}")
                continue
            out += pool.expect(share)
        return out

    def _warm_for(self, image: str) -> Callable[[str], bool]:
        from swerepair.envs.sandbox.docker.images import normalize_image

        name = normalize_image(image)

        def has_warm(host: str) -> bool:
            pool = self._pools.get(host)
            return pool is not None and pool.warm().get(name, 0) > 0

        return has_warm

    def acquire(self, image: str, *, timeout: float | None = None, info: dict[str, Any] | None = None) -> Any:
        """A container of `image` on the least-loaded live host (see `HostBalancer.acquire`).
        `info` receives ``host`` besides `WarmPool.acquire`'s ``image``, ``pool_hit`` and
        ``reset_wait_s``. A failure on the host chosen is raised as a `SandboxError` naming it,
        and the host is marked down if its engine does not answer a ping."""
        began = time.monotonic()
        timeout = self.acquire_timeout_s if timeout is None else timeout
        host = self.balancer.acquire(timeout, prefer=self._warm_for(image))
        if info is not None:
            info["host"] = host
        try:
            pool = self.pool_of(host)
            left = max(0.0, began + timeout - time.monotonic())
            container = pool.acquire(image, timeout=left, info=info)
        except BaseException as exc:
            self.balancer.release(host)
            if not isinstance(exc, Exception):
                raise
            down = self.balancer.check(host)
            where = f"Docker host {host}" + (" (down)" if down else "")
            error_type = type(exc) if isinstance(exc, SandboxError) else SandboxError
            error = error_type(f"{where}: {exc}")
            error.docker_host = host  # type: ignore[attr-defined]
            raise error from exc
        with self._lock:
            self._leased[id(container)] = host
        return container

    def host_of(self, container: Any) -> str | None:
        """The host a leased container runs on."""
        with self._lock:
            return self._leased.get(id(container))

    def engine_of(self, container: Any) -> Any:
        """The Docker client of the host a leased container runs on (``None`` if unknown)."""
        host = self.host_of(container)
        pool = self._pools.get(host) if host is not None else None
        return pool.cache.client if pool is not None and pool.cache is not None else None

    def suspect(self, container: Any) -> None:
        """Setting up `container` failed: ping its host and mark it down if it does not answer."""
        host = self.host_of(container)
        if host is not None:
            self.balancer.check(host)

    def release(self, container: Any) -> None:
        """The episode is over: the container's host pool removes it, and its place is free."""
        with self._lock:
            host = self._leased.pop(id(container), None)
        if host is None:
            return
        try:
            self._pools[host].release(container)
        finally:
            self.balancer.release(host)

    def hosts(self) -> list[dict[str, Any]]:
        """`HostBalancer.hosts`: each host's cap, use, sandboxes served and state."""
        return self.balancer.hosts()

    def _summed(self, figures: Callable[[WarmPool], Mapping[str, Any]]) -> Counter[str]:
        """`figures` of every host's pool, added key by key."""
        total: Counter[str] = Counter()
        with self._lock:
            pools = list(self._pools.values())
        for pool in pools:
            total.update(figures(pool))
        return total

    def warm(self) -> dict[str, int]:
        """Warm containers per image, all hosts together."""
        return dict(self._summed(lambda pool: pool.warm()))

    def stats(self) -> dict[str, float]:
        """The hosts' `WarmPool.stats` summed, with ``docker/hosts`` and ``docker/hosts_live``."""
        total = self._summed(lambda pool: pool.stats())
        hosts = self.balancer.hosts()
        total["docker/hosts"] = len(hosts)
        total["docker/hosts_live"] = sum(1 for h in hosts if h["live"])
        return {k: float(v) for k, v in total.items()}

    def close(self) -> None:
        """Close every host's pool (their containers are removed). Idempotent."""
        with self._lock:
            self._closed = True
            pools = list(self._pools.values())
            leased = list(self._leased.values())
            self._leased.clear()
        for host in leased:
            self.balancer.release(host)
        for pool in pools:
            pool.close()

    def __enter__(self) -> MultiHostPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
