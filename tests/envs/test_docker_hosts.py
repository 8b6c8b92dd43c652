"""Sandboxes on several Docker hosts: parsing the list, least-loaded placement under caps, hosts
that fail, and (marked ``docker``) the same against the real engine reached at two addresses.

The engine answers at its own socket and, in these tests, at a second unix socket that a thread
here forwards to it (`SocketForwarder`), so two "hosts" need no second machine nor a second
dockerd. A dead host is a socket path nobody listens on, or a closed TCP port of 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from swerepair.core import SandboxError
from swerepair.envs.sandbox.docker.hosts import (
    ENV_HOSTS,
    LABEL_DOCKER_HOST,
    HostBalancer,
    HostSpec,
    MultiHostPool,
    NoHostError,
    parse_hosts,
    spread,
)
from swerepair.envs.sandbox.docker.pool import PoolConfig, WarmPool

from docker_kit import base_image, needs_docker


def needs_docker_marks(fn: Any) -> Any:
    for mark in needs_docker:
        fn = mark(fn)
    return fn


def _name(tag: str) -> str:
    """A host name of its own (the process's per-host counts never meet across tests)."""
    return f"unix:///fake/{tag}-{uuid.uuid4().hex[:8]}.sock"


# -- the hosts list ---------------------------------------------------------------------------------
def test_parse_hosts_forms_and_errors() -> None:
    assert parse_hosts("a, b=3,", default_limit=2) == (HostSpec("a", 2), HostSpec("b", 3))
    assert parse_hosts(["a=1", ("b", 4), ("c", None)], default_limit=5) == (
        HostSpec("a", 1),
        HostSpec("b", 4),
        HostSpec("c", 5),
    )
    assert parse_hosts({"tcp://10.0.0.2:2375": 8}) == (HostSpec("tcp://10.0.0.2:2375", 8),)
    assert parse_hosts("ssh://u@h?x=y") == (HostSpec("ssh://u@h?x=y", 16),)  # '=' not followed by a number
    assert parse_hosts(None) == parse_hosts("") == ()
    with pytest.raises(ValueError, match="named twice"):
        parse_hosts("a,a=2")
    with pytest.raises(ValueError, match=">= 1"):
        parse_hosts("a=0")


def test_pool_config_and_train_config_carry_the_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    from swerepair.envs.env import _with_docker
    from swerepair.envs.sandbox import SandboxConfig
    from swerepair.trainers.config import ConfigError, TrainConfig, load_config
    from swerepair.trainers.episodes import docker_sandbox_config

    assert PoolConfig(hosts="a, b=3").hosts == ("a", "b=3")
    assert PoolConfig(hosts={"a": 2}).hosts == ("a=2",)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="named twice"):
        PoolConfig(hosts=("a", "a"))
    config = _with_docker(SandboxConfig(), {"hosts": ["x", "y=2"], "per_host_limit": 3})
    assert config.docker_pool is not None and config.docker_pool.hosts == ("x", "y=2")
    train = TrainConfig(sandbox="docker", docker_hosts=["x", "y=2"], docker_per_host_limit=3)
    assert docker_sandbox_config(train).docker_pool.hosts == ("x", "y=2")
    assert load_config(overrides={"docker_hosts": "x,y=2"}).docker_hosts == ["x", "y=2"]  # --docker-hosts x,y=2
    with pytest.raises(ConfigError, match="docker_hosts"):
        load_config(overrides={"docker_hosts": "x,x"})
    monkeypatch.setenv(ENV_HOSTS, "p, q=5")
    from swerepair.envs.sandbox.docker.hosts import hosts_from_env

    assert hosts_from_env(7) == (HostSpec("p", 7), HostSpec("q", 5))


def test_spread_deals_in_proportion_to_the_caps() -> None:
    assert spread(list(range(6)), [1, 1]) == [[0, 2, 4], [1, 3, 5]]
    assert spread(list(range(9)), [2, 1]) == [[0, 2, 3, 5, 6, 8], [1, 4, 7]]
    assert spread([], [3]) == [[]]


# -- placement ----------------------------------------------------------------------------------------
def test_least_loaded_relative_to_the_cap_ties_by_order() -> None:
    a, b = _name("a"), _name("b")
    balancer = HostBalancer([HostSpec(a, 2), HostSpec(b, 4)], probe=lambda h: None)
    # a 0/2 vs b 0/4: tie -> a; then a 1/2=.5 vs b 0 -> b; b .25 -> b; a .5 = b .5 -> a; ...
    placed = [balancer.acquire(timeout=0) for _ in range(6)]
    assert placed == [a, b, b, a, b, b]
    assert [h["in_use"] for h in balancer.hosts()] == [2, 4]
    with pytest.raises(NoHostError, match="no free sandbox place"):
        balancer.acquire(timeout=0)
    balancer.release(b)
    assert balancer.acquire(timeout=0) == b


def test_a_tie_goes_to_a_host_with_a_warm_container() -> None:
    a, b = _name("a"), _name("b")
    balancer = HostBalancer([HostSpec(a, 2), HostSpec(b, 2)], probe=lambda h: None)
    assert balancer.acquire(timeout=0, prefer=lambda h: h == b) == b
    assert balancer.acquire(timeout=0, prefer=lambda h: h == b) == a  # b is busier now


def test_the_caps_hold_under_concurrent_acquisition() -> None:
    hosts = [HostSpec(_name("a"), 2), HostSpec(_name("b"), 3)]
    balancer = HostBalancer(hosts, probe=lambda h: None)
    caps = {h.host: h.limit for h in hosts}
    held: Counter[str] = Counter()
    most: Counter[str] = Counter()
    served: Counter[str] = Counter()
    lock = threading.Lock()

    def episode() -> None:
        host = balancer.acquire(timeout=60)
        with lock:
            held[host] += 1
            most[host] = max(most[host], held[host])
            served[host] += 1
        time.sleep(0.01)
        with lock:
            held[host] -= 1
        balancer.release(host)

    threads = [threading.Thread(target=episode) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(most[h] <= caps[h] for h in caps), most
    assert set(served) == set(caps) and sum(served.values()) == 40
    assert [h["in_use"] for h in balancer.hosts()] == [0, 0]


def test_a_full_set_of_hosts_waits_for_a_release() -> None:
    a = _name("a")
    balancer = HostBalancer([HostSpec(a, 1)], probe=lambda h: None)
    balancer.acquire(timeout=0)
    got: list[str] = []
    waiter = threading.Thread(target=lambda: got.append(balancer.acquire(timeout=60)))
    waiter.start()
    time.sleep(0.05)
    assert got == []  # still waiting: never over the cap
    balancer.release(a)
    waiter.join()
    assert got == [a]


def test_a_down_host_is_skipped_retried_and_all_down_is_a_clear_error() -> None:
    a, b = _name("a"), _name("b")
    dead = {a}
    balancer = HostBalancer(
        [HostSpec(a, 4), HostSpec(b, 4)], probe=lambda h: "refused" if h in dead else None, retry_s=3600
    )
    assert balancer.check(a) == "refused"
    assert [balancer.acquire(timeout=0) for _ in range(3)] == [b, b, b]
    dead.clear()  # a answers again, but is not pinged before its retry time while b serves
    assert balancer.acquire(timeout=0) == b
    balancer.retry_s = 0.0
    assert balancer.acquire(timeout=0) == a
    dead.update({a, b})
    balancer.mark_down(a, "refused")
    balancer.mark_down(b, "engine gone")
    with pytest.raises(NoHostError, match=f"no Docker host answers.*{a}: refused.*{b}: refused"):
        balancer.acquire(timeout=60)  # no wait: every host is pinged once, then the error


# -- the pool over hosts, against fake engines ----------------------------------------------------------
class FakeHosts:
    """``make_pool`` and ``probe`` of a `MultiHostPool` over fake engines; hosts in `dead` refuse."""

    def __init__(self) -> None:
        self.dead: set[str] = set()
        self.removed: list[Any] = []

    def make_pool(self, host: str, limit: int) -> WarmPool:
        if host in self.dead:
            raise ConnectionRefusedError(f"cannot connect to {host}")

        def start(image: str, labels: Any) -> Any:
            if host in self.dead:
                raise ConnectionRefusedError(f"cannot connect to {host}")
            return {"image": image, "host": host, "labels": dict(labels)}

        return WarmPool(start, self.removed.append, size=0, host=host, per_host_limit=limit)

    def probe(self, host: str) -> str | None:
        return "connection refused" if host in self.dead else None


def test_multi_host_pool_records_the_host_and_fails_the_dead_one() -> None:
    a, b = _name("a"), _name("b")
    fake = FakeHosts()
    with MultiHostPool([HostSpec(a, 2), HostSpec(b, 2)], fake.make_pool, probe=fake.probe) as pool:
        info: dict[str, Any] = {}
        first = pool.acquire("img:1", info=info)
        assert info["host"] == a == first["host"] and info["pool_hit"] is False
        second = pool.acquire("img:1", info=info)
        assert info["host"] == b == second["host"]
        pool.release(first)
        pool.release(second)
        assert fake.removed == [first, second]
        fake.dead.add(a)  # the engine at a goes away
        with pytest.raises(SandboxError, match=f"Docker host {a}") as caught:
            pool.acquire("img:1", info=info)  # a was first in line: this episode fails
        assert caught.value.docker_host == a  # type: ignore[attr-defined]
        assert [h["live"] for h in pool.hosts()] == [False, True]
        assert [pool.acquire("img:1", info=info)["host"] for _ in range(2)] == [b, b]  # a is skipped
        assert pool.stats()["docker/hosts_live"] == 1.0
        fake.dead.add(b)
        pool.balancer.mark_down(b, "connection refused")
        with pytest.raises(NoHostError, match="no Docker host answers"):
            pool.acquire("img:1")


def test_multi_host_pool_expect_deals_the_resets_over_the_hosts() -> None:
    a, b = _name("a"), _name("b")
    fake = FakeHosts()
    with MultiHostPool([HostSpec(a, 2), HostSpec(b, 1)], fake.make_pool, probe=fake.probe) as pool:
        pool.expect(["i:1", "i:2", "i:3"])
        assert list(pool.pool_of(a)._upcoming) == ["i:1", "i:3"]
        assert list(pool.pool_of(b)._upcoming) == ["i:2"]


def test_shared_stats_count_the_shared_hosts_once() -> None:
    from swerepair.envs.sandbox.docker.pool import close_shared_pools, shared_pool, shared_stats

    a, b = _name("a"), _name("b")
    fake = FakeHosts()
    close_shared_pools()
    try:
        for role in ("agent", "verifier"):  # two pools over the same two hosts
            pool = shared_pool(
                ("test-hosts", role, a),
                lambda: MultiHostPool([HostSpec(a, 1), HostSpec(b, 1)], fake.make_pool, probe=fake.probe),
            )
            pool.release(pool.acquire("img:1"))
        stats = shared_stats()
        assert stats["docker/hosts"] == 2 and stats["docker/hosts_live"] == 2
        assert stats["docker/pool_misses"] == 2  # counters add up over the pools
    finally:
        close_shared_pools()


# -- the real engine at two addresses -------------------------------------------------------------------
class SocketForwarder:
    """A unix socket at `path` whose every connection is forwarded, byte for byte both ways, to
    the unix socket `target` (the engine's): a second address of the same engine."""

    def __init__(self, path: Path, target: str) -> None:
        self.path, self.target = path, target
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(64)
        self._conns: list[socket.socket] = []
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.target)
            self._conns += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._stop = True
        self.server.close()
        with contextlib.suppress(OSError):
            self.path.unlink()
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.close()


def _engine_socket() -> str:
    url = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not url.startswith("unix://"):
        pytest.skip(f"the second address forwards a unix socket; DOCKER_HOST is {url}")
    return url[len("unix://") :]


@pytest.fixture
def two_hosts(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The engine's own socket and a forwarded second one, as two Docker hosts."""
    engine = _engine_socket()
    path = Path(f"/tmp/swerepair-docker2-{uuid.uuid4().hex[:8]}.sock")  # short: a unix path has 108 bytes
    forwarder = SocketForwarder(path, engine)
    yield f"unix://{engine}", f"unix://{path}"
    forwarder.close()


def _closed_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def fresh_pools() -> Iterator[None]:
    from swerepair.envs.sandbox.docker.pool import close_shared_pools

    close_shared_pools()
    yield
    close_shared_pools()


def _docker_env(hosts: list[str], **docker: Any) -> Any:
    import gymnasium as gym

    from swerepair.envs.tasks import load_tasks

    tasks = load_tasks("bundled")[:1]
    settings = {"image": base_image(), "pool_size": 0, "hosts": hosts, **docker}
    return gym.make("SweRepair-v0", tasks=tasks, sandbox="docker", docker=settings)


def _held_on(engine: Any, host: str) -> int:
    return len(engine.containers.list(filters={"label": f"{LABEL_DOCKER_HOST}={host}"}))


@needs_docker_marks
def test_engine_episodes_spread_over_two_hosts_by_load(two_hosts: tuple[str, str], fresh_pools: None) -> None:
    from swerepair.envs.sandbox.docker.client import docker_client

    first, second = two_hosts
    hosts = [f"{first}=2", f"{second}=2"]
    envs = [_docker_env(hosts) for _ in range(4)]
    try:
        infos = [env.reset()[1] for env in envs]  # held: each env keeps its sandbox until closed
        assert not any(info["failed"] for info in infos), [info.get("failure") for info in infos]
        assert [info["docker"]["host"] for info in infos] == [first, second, first, second]
        engine = docker_client()
        assert _held_on(engine, first) == 2 and _held_on(engine, second) == 2
        # a command runs in the container on the second address: the sandbox talks to its own host
        out = envs[1].unwrapped.sandbox.run("echo hello", timeout=30)
        assert out.exit_code == 0 and "hello" in out.output
        envs[0].close()  # the first host has room again: the next reset goes there
        fifth = _docker_env(hosts)
        envs[0] = fifth
        assert fifth.reset()[1]["docker"]["host"] == first
    finally:
        for env in envs:
            env.close()


@needs_docker_marks
def test_engine_caps_hold_under_concurrent_acquisition(two_hosts: tuple[str, str], fresh_pools: None) -> None:
    from swerepair.envs.sandbox import SandboxConfig
    from swerepair.envs.sandbox.docker.client import docker_client
    from swerepair.envs.sandbox.docker.pool import sandbox_pool

    first, second = two_hosts
    caps = {first: 1, second: 2}
    config = SandboxConfig(docker_pool=PoolConfig(pool_size=0, hosts=(f"{first}=1", f"{second}=2")))
    pool = sandbox_pool(config, role="test")
    assert isinstance(pool, MultiHostPool)
    engine = docker_client()
    image = base_image()
    lock = threading.Lock()
    held: Counter[str] = Counter()
    most: Counter[str] = Counter()
    served: Counter[str] = Counter()
    errors: list[BaseException] = []

    def episode() -> None:
        try:
            info: dict[str, Any] = {}
            container = pool.acquire(image, info=info)
            host = info["host"]
            with lock:
                held[host] += 1
                most[host] = max(most[host], held[host], _held_on(engine, host))
                served[host] += 1
            time.sleep(0.05)
            with lock:
                held[host] -= 1
            pool.release(container)
        except BaseException as exc:
            errors.append(exc)

    before = [h["served"] for h in pool.hosts()]  # the process's counts: earlier tests used the engine's socket
    threads = [threading.Thread(target=episode) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert all(most[h] <= caps[h] for h in caps), most
    assert set(served) == set(caps) and sum(served.values()) == 8
    after = [h["served"] for h in pool.hosts()]
    assert [n - m for n, m in zip(after, before, strict=True)] == [served[first], served[second]]
    assert [h["in_use"] for h in pool.hosts()] == [0, 0]


@needs_docker_marks
def test_engine_a_dead_host_is_skipped_and_its_episode_fails(two_hosts: tuple[str, str], fresh_pools: None) -> None:
    first, _ = two_hosts
    bogus = f"unix:///tmp/swerepair-no-engine-{uuid.uuid4().hex[:8]}.sock"
    closed = f"tcp://127.0.0.1:{_closed_tcp_port()}"
    env = _docker_env([bogus, closed, first])
    try:
        for dead in (bogus, closed):  # each dead host fails the one episode placed on it
            _, info = env.reset()
            assert info["failed"] and dead in info["docker"]["host"]
            *_, info = env.step("done")
            assert info["failed"] and info["exit_reason"] == "sandbox_error" and dead in info["failure"]
        for _ in range(2):  # then only the live host serves
            _, info = env.reset()
            assert not info["failed"] and info["docker"]["host"] == first
            assert info["docker"]["docker/hosts"] == 3 and info["docker"]["docker/hosts_live"] == 1
    finally:
        env.close()


@needs_docker_marks
def test_engine_a_host_that_goes_away_mid_run(tmp_path: Path, fresh_pools: None) -> None:
    from swerepair.envs.sandbox.docker.client import docker_client, remove_container

    engine_socket = _engine_socket()
    path = Path(f"/tmp/swerepair-docker2-{uuid.uuid4().hex[:8]}.sock")
    forwarder = SocketForwarder(path, engine_socket)
    second, first = f"unix://{path}", f"unix://{engine_socket}"
    envs = [_docker_env([second, first]) for _ in range(2)]
    try:
        hosts = [env.reset()[1]["docker"]["host"] for env in envs]
        assert hosts == [second, first]
        forwarder.close()  # the engine at the second address goes away under a running episode
        with pytest.raises(SandboxError):
            envs[0].unwrapped.sandbox.run("true", timeout=30)
        *_, info = envs[0].step("done")
        assert info["failed"] and info["exit_reason"] == "sandbox_error"
        _, info = envs[0].reset()  # placed there again (least loaded), finds it down: fails, marks it
        assert info["failed"] and info["docker"]["host"] == second
        *_, info = envs[0].step("done")
        assert info["exit_reason"] == "sandbox_error" and f"Docker host {second}" in info["failure"]
        _, info = envs[0].reset()
        assert not info["failed"] and info["docker"]["host"] == first
        assert info["docker"]["docker/hosts_live"] == 1
    finally:
        for env in envs:
            env.close()
        forwarder.close()
        for container in docker_client().containers.list(all=True, filters={"label": f"{LABEL_DOCKER_HOST}={second}"}):
            remove_container(container)  # its host could not remove it: it went away


@needs_docker_marks
def test_engine_every_host_dead_is_a_clear_error(fresh_pools: None) -> None:
    bogus = f"unix:///tmp/swerepair-no-engine-{uuid.uuid4().hex[:8]}.sock"
    closed = f"tcp://127.0.0.1:{_closed_tcp_port()}"
    env = _docker_env([bogus, closed])
    try:
        for _ in range(3):  # the first two find a host dead; then no host answers at all
            _, info = env.reset()
            assert info["failed"]
        *_, info = env.step("done")
        assert info["exit_reason"] == "sandbox_error"
        assert "no Docker host answers" in info["failure"] and bogus in info["failure"] and closed in info["failure"]
    finally:
        env.close()
