"""Images per task, the warm container pool and the image disk budget.

The pure logic runs against fakes of the engine (always); the tests marked ``docker`` run the same
against the real engine with small images built here from the shared base test image.
"""

from __future__ import annotations

import contextlib
import io
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from swerepair.core import SandboxError, Task
from swerepair.envs.sandbox.docker.images import NoImageError, image_for, normalize_image
from swerepair.envs.sandbox.docker.pool import (
    POOL_LABEL,
    HostSlots,
    ImageCache,
    ImagePullError,
    PoolConfig,
    WarmPool,
    host_slots,
)

from docker_kit import base_image, needs_docker

docker_errors = pytest.importorskip("docker.errors")


def needs_docker_marks(fn: Any) -> Any:
    for mark in needs_docker:
        fn = mark(fn)
    return fn


# -- fakes --------------------------------------------------------------------------------------
class FakeImage:
    def __init__(self, image_id: str, size: int) -> None:
        self.id = image_id
        self.attrs = {"Size": size}


class FakeImages:
    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine

    def get(self, name: str) -> FakeImage:
        image_id = self.engine.tags.get(normalize_image(name)) or (name if name in self.engine.sizes else None)
        if image_id is None:
            raise docker_errors.ImageNotFound(name)
        return FakeImage(image_id, self.engine.sizes[image_id])

    def pull(self, repo: str, tag: str) -> None:
        name = f"{repo}:{tag}"
        self.engine.pull_calls.append(name)
        time.sleep(self.engine.pull_s)
        if name not in self.engine.registry:
            raise docker_errors.APIError(f"pull access denied for {repo}")
        self.engine.add(name, self.engine.registry[name])

    def remove(self, name: str) -> None:
        name = normalize_image(name)
        image_id = self.engine.tags.get(name)
        if image_id is None:
            raise docker_errors.ImageNotFound(name)
        if image_id in {c["ImageID"] for c in self.engine.containers}:
            raise docker_errors.APIError(f"conflict: unable to remove {name}: image is being used")
        del self.engine.tags[name]
        if image_id not in self.engine.tags.values():
            del self.engine.sizes[image_id]
        self.engine.removed.append(name)


class FakeAPI:
    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine

    def containers(self, all: bool = False) -> list[dict[str, str]]:
        return list(self.engine.containers)


class FakeEngine:
    """Images (tag -> id, id -> size), containers, a registry to pull from."""

    def __init__(self, pull_s: float = 0.0) -> None:
        self.tags: dict[str, str] = {}
        self.sizes: dict[str, int] = {}
        self.registry: dict[str, int] = {}
        self.containers: list[dict[str, str]] = []
        self.pull_calls: list[str] = []
        self.removed: list[str] = []
        self.pull_s = pull_s
        self.images = FakeImages(self)
        self.api = FakeAPI(self)

    def add(self, name: str, size: int) -> None:
        name = normalize_image(name)
        self.tags[name] = f"sha256:{name}"
        self.sizes[f"sha256:{name}"] = size


class FakeContainer:
    def __init__(self, image: str, labels: dict[str, str]) -> None:
        self.image, self.labels = image, labels
        self.removed = False


class Starter:
    """``start``/``remove`` for a pool: records containers; starting takes `start_s`."""

    def __init__(self, engine: FakeEngine | None = None, start_s: float = 0.0) -> None:
        self.engine, self.start_s = engine, start_s
        self.live: list[FakeContainer] = []
        self.started = 0
        self.lock = threading.Lock()

    def start(self, image: str, labels: dict[str, str]) -> FakeContainer:
        time.sleep(self.start_s)
        container = FakeContainer(image, labels)
        with self.lock:
            self.started += 1
            self.live.append(container)
            if self.engine is not None:
                self.engine.containers.append({"Id": str(id(container)), "ImageID": self.engine.tags[image]})
        return container

    def remove(self, container: FakeContainer) -> None:
        with self.lock:
            container.removed = True
            self.live.remove(container)
            if self.engine is not None:
                self.engine.containers = [c for c in self.engine.containers if c["Id"] != str(id(container))]


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.01)


@pytest.fixture
def host() -> Iterator[str]:
    """A host name of its own per test, so that the per-host limits of tests never meet."""
    yield f"unix:///fake/{time.monotonic_ns()}.sock"


# -- images -------------------------------------------------------------------------------------
def _task(iid: str, repo: str = "o/n", **extra: Any) -> Task:
    return Task(iid, repo, "c", "", "", "", (), (), extra=extra)


def test_image_rules_in_order() -> None:
    # the explicit column beats the dataset's column, which beats the dataset's rule
    t = _task("django__django-1", image="mine:1", image_name="theirs:2", dataset="SWE-bench")
    assert image_for(t) == "mine:1"
    assert image_for(_task("a__b.12345678.x", image_name="theirs:2", dataset="SWE-smith")) == "theirs:2"
    swebench = "swebench/sweb.eval.x86_64.django_1776_django-1:latest"
    assert image_for(_task("Django__Django-1", dataset="swe-bench")) == swebench
    assert image_for(_task("a__b-1", dataset="SWE-Gym/SWE-Gym-Lite")) == "xingyaoww/sweb.eval.x86_64.a_s_b-1:latest"


def test_no_rule_names_the_task() -> None:
    with pytest.raises(NoImageError, match="task weird-id"):
        image_for(_task("weird-id"))
    with pytest.raises(NoImageError, match=r"task x__y-1 \(dataset my/own\).*my/own"):
        image_for(_task("x__y-1", dataset="my/own"))
    assert image_for(_task("weird-id"), default="base:1") == "base:1"


# -- host slots -----------------------------------------------------------------------------------
def test_host_slots_limit_and_wait() -> None:
    slots = HostSlots(2)
    assert slots.try_take() and slots.try_take()
    assert not slots.try_take()
    assert not slots.take(timeout=0.05)
    threading.Timer(0.1, slots.give).start()
    assert slots.take(timeout=5)
    assert slots.used == 2


def test_host_slots_are_shared_per_host(host: str) -> None:
    assert host_slots(host, 3) is host_slots(host, 3)
    assert host_slots(host, 5).limit == 5
    assert host_slots(host + "-other", 3) is not host_slots(host, 3)


# -- image cache (fake engine) -------------------------------------------------------------------
def test_ensure_pulls_a_missing_image_and_counts() -> None:
    engine = FakeEngine()
    engine.registry["task/a:latest"] = 100
    engine.add("task/b", 50)
    cache = ImageCache(engine)
    cache.ensure("task/a")
    cache.ensure("task/b:latest")
    assert engine.pull_calls == ["task/a:latest"]
    stats = cache.stats()
    assert stats["docker/pulls"] == 1 and stats["docker/image_hits"] == 1
    assert stats["docker/pulled_bytes"] == 100 and stats["docker/cache_bytes"] == 150


def test_a_failed_pull_is_reported_with_the_image() -> None:
    cache = ImageCache(FakeEngine())
    with pytest.raises(ImagePullError, match=r"task/missing:latest.*pulling it failed.*pull access denied"):
        cache.ensure("task/missing")
    assert isinstance(ImagePullError("x"), SandboxError)  # a failed episode, not a crash
    assert cache.stats()["docker/pull_failures"] == 1
    off = ImageCache(FakeEngine(), pull=False)
    with pytest.raises(ImagePullError, match="pulling is off"):
        off.ensure("task/missing")


def test_lru_eviction_beyond_the_budget() -> None:
    engine = FakeEngine()
    for name in "abcd":
        engine.add(f"task/{name}", 100)
    engine.add("base/not-a-task", 1000)
    cache = ImageCache(engine, budget_bytes=250)
    for name in "abc":  # a, b, c used in this order: 300 bytes > 250
        cache.ensure(f"task/{name}")
    assert engine.removed == ["task/a:latest"]
    cache.ensure("task/b")  # b is now the most recent: c is the least
    cache.ensure("task/d")
    assert engine.removed == ["task/a:latest", "task/c:latest"]
    assert set(cache.images()) == {"task/b:latest", "task/d:latest"}
    assert "base/not-a-task:latest" in engine.tags  # never counted nor removed
    stats = cache.stats()
    assert stats["docker/evictions"] == 2 and stats["docker/evicted_bytes"] == 200
    assert stats["docker/cache_bytes"] == 200


def test_images_in_use_or_expected_are_kept() -> None:
    engine = FakeEngine()
    for name in "abcd":
        engine.add(f"task/{name}", 100)
    starter = Starter(engine)
    cache = ImageCache(engine, budget_bytes=150)
    cache.ensure("task/a")
    starter.start("task/a:latest", {})  # a container of a (the least recently used) is alive
    cache.ensure("task/b")  # over budget: a is in use, b was just used -> nothing removable
    assert engine.removed == []
    with cache._lock:
        cache._expected.extend(["task/c:latest"])
    cache.ensure("task/c", consume=False)  # c is expected next: kept; b goes
    assert engine.removed == ["task/b:latest"]
    starter.remove(starter.live[0])
    cache.ensure("task/d")
    assert engine.removed == ["task/b:latest", "task/a:latest"]


def test_prefetch_pulls_in_order_within_the_budget() -> None:
    engine = FakeEngine(pull_s=0.02)
    for name in "abcde":
        engine.registry[f"task/{name}:latest"] = 100
    cache = ImageCache(engine, budget_bytes=300)
    try:
        cache.prefetch(["task/a", "task/b", "task/c", "task/d", "task/e"])
        wait_for(lambda: len(engine.pull_calls) >= 3)
        time.sleep(0.2)
        # three fill the budget, all expected: the prefetch waits for room
        assert engine.pull_calls == ["task/a:latest", "task/b:latest", "task/c:latest"]
        assert cache.ensure("task/a") < 0.1  # already there: a hit
        wait_for(lambda: len(engine.pull_calls) >= 4)  # a is used, so it may go: d comes
        assert engine.pull_calls[3] == "task/d:latest" and "task/a:latest" in engine.removed
    finally:
        cache.close()


def test_prefetch_failures_are_counted_and_reported_again() -> None:
    engine = FakeEngine()
    engine.registry["task/b:latest"] = 10
    cache = ImageCache(engine)
    try:
        cache.prefetch(["task/nowhere", "task/b"])
        wait_for(lambda: "task/b:latest" in engine.tags)
        assert cache.stats()["docker/pull_failures"] == 1
        assert "task/nowhere:latest" in (cache.last_error or "")
        with pytest.raises(ImagePullError, match="task/nowhere"):
            cache.ensure("task/nowhere")
    finally:
        cache.close()


# -- warm pool (fake starter) ---------------------------------------------------------------------
def test_expect_then_acquire_is_a_warm_hit(host: str) -> None:
    starter = Starter(start_s=0.2)
    with WarmPool(starter.start, starter.remove, size=2, host=host) as pool:
        pool.expect(["img/a", "img/b", "img/a"])
        wait_for(lambda: pool.warm() == {"img/a:latest": 1, "img/b:latest": 1})
        began = time.monotonic()
        c = pool.acquire("img/a")
        hit_s = time.monotonic() - began
        assert c.image == "img/a:latest" and c.labels[POOL_LABEL] == pool.id
        assert hit_s < 0.1
        # the window moved on: [b, a] -> another container of a is started
        wait_for(lambda: pool.warm() == {"img/a:latest": 1, "img/b:latest": 1})
        began = time.monotonic()
        cold = pool.acquire("img/c")  # not expected: a miss, started now
        assert time.monotonic() - began >= 0.2 and cold.image == "img/c:latest"
        pool.release(c)
        pool.release(cold)
        pool.release(cold)  # twice is harmless
        assert c.removed and cold.removed
        stats = pool.stats()
        assert stats["docker/pool_hits"] == 1 and stats["docker/pool_misses"] == 1
        assert stats["docker/reset_wait_s"] >= 0.2
    assert starter.live == []  # close removed the warm ones


def test_containers_are_never_reused(host: str) -> None:
    starter = Starter()
    with WarmPool(starter.start, starter.remove, size=1, host=host) as pool:
        pool.expect(["img/a"] * 3)
        seen = []
        for _ in range(3):
            wait_for(lambda: pool.warm())
            c = pool.acquire("img/a")
            seen.append(c)
            pool.release(c)
        assert len({id(c) for c in seen}) == 3 and all(c.removed for c in seen)
        assert pool.stats()["docker/pool_hits"] == 3


def test_the_per_host_limit_counts_warm_and_leased(host: str) -> None:
    starter = Starter()
    with WarmPool(starter.start, starter.remove, size=3, host=host, per_host_limit=2) as pool:
        pool.expect(["img/a", "img/b", "img/c"])
        wait_for(lambda: sum(pool.warm().values()) == 2)
        time.sleep(0.1)
        assert sum(pool.warm().values()) == 2 and len(starter.live) == 2
        held = [pool.acquire("img/a"), pool.acquire("img/b")]  # hits; the pool may not start c
        time.sleep(0.1)
        assert len(starter.live) == 2
        with pytest.raises(SandboxError, match="no free container slot"):
            pool.acquire("img/z", timeout=0.1)
        threading.Timer(0.2, pool.release, args=(held[0],)).start()
        late = pool.acquire("img/z", timeout=5)  # waits for the slot
        assert late.image == "img/z:latest" and len(starter.live) <= 2
        pool.release(late)
        pool.release(held[1])


def test_a_cold_start_takes_the_slot_of_a_warm_container_wanted_last(host: str) -> None:
    starter = Starter()
    with WarmPool(starter.start, starter.remove, size=2, host=host, per_host_limit=2) as pool:
        pool.expect(["img/a", "img/b"])
        wait_for(lambda: sum(pool.warm().values()) == 2)
        c = pool.acquire("img/x", timeout=1)
        assert c.image == "img/x:latest"
        assert pool.warm() == {"img/a:latest": 1}  # b (wanted last) gave its slot
        pool.release(c)


def test_expect_drops_containers_no_longer_wanted(host: str) -> None:
    starter = Starter()
    with WarmPool(starter.start, starter.remove, size=2, host=host) as pool:
        pool.expect(["img/a", "img/b"])
        wait_for(lambda: sum(pool.warm().values()) == 2)
        pool.expect(["img/c"])
        wait_for(lambda: pool.warm() == {"img/c:latest": 1})
        assert {c.image for c in starter.live} == {"img/c:latest"}


def test_a_pool_of_size_zero_starts_every_container_cold(host: str) -> None:
    starter = Starter()
    with WarmPool(starter.start, starter.remove, size=0, host=host) as pool:
        pool.expect(["img/a"])
        c = pool.acquire("img/a")
        assert pool.stats()["docker/pool_misses"] == 1
        pool.release(c)
    assert starter.live == []


def test_expect_resolves_tasks(host: str) -> None:
    starter = Starter()
    tasks = {"t1": _task("django__django-1", dataset="SWE-bench")}
    with WarmPool(starter.start, starter.remove, size=0, host=host) as pool:
        assert pool.expect([tasks["t1"]]) == ["swebench/sweb.eval.x86_64.django_1776_django-1:latest"]
    local = _task("local-1")
    resolve = lambda t: image_for(t, default="b")  # noqa: E731
    with WarmPool(starter.start, starter.remove, size=0, host=host, resolve=resolve) as pool:
        assert pool.expect([local, "img/x"]) == ["b:latest", "img/x:latest"]
        with pytest.raises(TypeError, match="image names or tasks"):
            pool.expect([1])


def test_the_pool_pulls_through_its_cache_and_reports_both(host: str) -> None:
    engine = FakeEngine(pull_s=0.05)
    engine.registry.update({"img/a:latest": 10, "img/b:latest": 20})
    starter = Starter(engine)
    cache = ImageCache(engine, budget_bytes=1000)
    with WarmPool(starter.start, starter.remove, size=1, host=host, cache=cache) as pool:
        pool.expect(["img/a", "img/b"])
        wait_for(lambda: pool.warm() == {"img/a:latest": 1} and "img/b:latest" in engine.tags)
        pool.release(pool.acquire("img/a"))
        pool.release(pool.acquire("img/b"))
        with pytest.raises(ImagePullError, match="img/nowhere"):
            pool.acquire("img/nowhere")
        stats = pool.stats()
    assert stats["docker/pulls"] == 2 and stats["docker/pull_failures"] == 1
    assert stats["docker/cache_bytes"] == 30
    assert engine.pull_calls.count("img/a:latest") == 1
    assert host_slots(host, 16).used == 0  # a failed start gave its slot back


def test_pool_config_from_a_docker_dict() -> None:
    config = PoolConfig.from_mapping({"pool_size": 0, "per_host_limit": 4, "image_budget_gb": 1.5, "runtime": "runsc"})
    assert (config.pool_size, config.per_host_limit, config.image_budget_bytes) == (0, 4, 1_500_000_000)
    with pytest.raises(ValueError, match="per_host_limit"):
        PoolConfig(per_host_limit=0)


# -- the real engine ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def engine() -> Any:
    from swerepair.envs.sandbox.docker.client import docker_client

    return docker_client()


@pytest.fixture(scope="module")
def task_images(engine: Any) -> Iterator[list[str]]:
    """Four small task images, each FROM the base test image with a layer of its own (1 MB of
    its own bytes), removed at the end."""
    base = base_image()
    names = []
    for n in range(4):
        name = f"swerepair-test/pool-{n}:latest"
        dockerfile = f"FROM {base}\nRUN head -c 1000000 /dev/urandom > /n && echo {n} >> /n\n"
        engine.images.build(
            fileobj=io.BytesIO(dockerfile.encode()), tag=name, network_mode="none", rm=True, forcerm=True
        )
        names.append(name)
    yield names
    for name in names:
        with contextlib.suppress(Exception):
            engine.images.remove(name, force=True)


def _real_pool(engine: Any, **kwargs: Any) -> WarmPool:
    from swerepair.envs.sandbox.docker.client import remove_container, start_container
    from swerepair.envs.sandbox.process import ResourceLimits

    def start(image: str, labels: dict[str, str]) -> Any:
        return start_container(engine, image, limits=ResourceLimits(), role="test", labels=labels)

    return WarmPool(start, remove_container, **kwargs)


def _pool_containers(engine: Any, pool: WarmPool) -> list[Any]:
    return engine.containers.list(all=True, filters={"label": f"{POOL_LABEL}={pool.id}"})


@needs_docker_marks
def test_engine_prefetched_container_is_a_faster_hit(engine: Any, task_images: list[str], host: str) -> None:
    a, b = task_images[:2]
    with _real_pool(engine, size=1, host=host, cache=ImageCache(engine)) as pool:
        began = time.monotonic()
        cold = pool.acquire(b)  # nothing expected: started now
        cold_s = time.monotonic() - began
        pool.release(cold)
        pool.expect([a])
        wait_for(lambda: pool.warm() == {a: 1}, timeout=60)
        began = time.monotonic()
        warm = pool.acquire(a)
        warm_s = time.monotonic() - began
        try:
            assert a in engine.images.get(warm.attrs["Image"]).tags
            assert warm.labels[POOL_LABEL] == pool.id
            warm.reload()
            assert warm.status == "running"
            assert warm_s < cold_s, (warm_s, cold_s)
        finally:
            pool.release(warm)
        stats = pool.stats()
        assert stats["docker/pool_hits"] == 1 and stats["docker/pool_misses"] == 1
        assert stats["docker/containers_started"] == 2 and stats["docker/image_hits"] >= 1
        print(f"\ncold acquire {cold_s:.3f}s, warm acquire {warm_s:.4f}s")
    assert _pool_containers(engine, pool) == []


@needs_docker_marks
def test_engine_close_removes_the_pool_containers(engine: Any, task_images: list[str], host: str) -> None:
    pool = _real_pool(engine, size=2, host=host)
    try:
        pool.expect(task_images[:2])
        wait_for(lambda: sum(pool.warm().values()) == 2, timeout=60)
        leased = pool.acquire(task_images[0])
        assert len(_pool_containers(engine, pool)) == 2
    finally:
        pool.close()
    assert _pool_containers(engine, pool) == []
    with pytest.raises(docker_errors.NotFound):
        leased.reload()


@needs_docker_marks
def test_engine_lru_eviction_keeps_images_in_use(engine: Any, task_images: list[str]) -> None:
    # retag the built images under names of their own (removing them here leaves the fixture's)
    names = []
    for k, source in enumerate(task_images):
        name = f"swerepair-test/lru-{k}:latest"
        engine.images.get(source).tag(name)
        names.append(name)
    size = max(int(engine.images.get(n).attrs["Size"]) for n in names)
    cache = ImageCache(engine, budget_bytes=int(2.5 * size))  # two fit, not three
    in_use = None
    try:
        cache.ensure(names[0])
        cache.ensure(names[1])
        cache.ensure(names[2])  # lru-0 goes
        assert cache.images() == names[1:3]
        with pytest.raises(docker_errors.ImageNotFound):
            engine.images.get(names[0])
        in_use = engine.containers.create(names[1], command=["true"], network_mode="none")  # stopped, still a user
        cache.ensure(names[3])  # lru-1 is least recently used but in use: lru-2 goes
        assert set(cache.images()) == {names[1], names[3]}
        engine.images.get(names[1])
        with pytest.raises(docker_errors.ImageNotFound):
            engine.images.get(names[2])
        stats = cache.stats()
        assert stats["docker/evictions"] == 2 and stats["docker/image_hits"] == 4
        assert stats["docker/cache_bytes"] == sum(int(engine.images.get(n).attrs["Size"]) for n in cache.images())
        assert engine.images.get(task_images[0])  # another tag of the same image: still there
    finally:
        if in_use is not None:
            in_use.remove(force=True)
        for name in names:
            with contextlib.suppress(Exception):
                engine.images.remove(name)


@needs_docker_marks
def test_engine_a_missing_image_is_really_pulled_and_the_failure_reported(engine: Any, host: str) -> None:
    missing = f"swerepair-test/never-published-{time.monotonic_ns()}:latest"
    with _real_pool(engine, size=0, host=host, cache=ImageCache(engine)) as pool:
        with pytest.raises(ImagePullError, match=f"{missing}.*pulling it failed"):
            pool.acquire(missing)
        assert pool.stats()["docker/pull_failures"] == 1


# -- the process's pools, the env and the trainer ----------------------------------------------------
def test_shared_pools_adopt_what_was_expected_and_sum_their_stats(host: str) -> None:
    from swerepair.envs.sandbox.docker.pool import close_shared_pools, shared_expect, shared_pool, shared_stats

    starter = Starter()
    close_shared_pools()
    try:
        shared_expect(["img/a", "img/b"])  # before any pool: kept for the first one
        pool = shared_pool(("test", host), lambda: WarmPool(starter.start, starter.remove, size=1, host=host))
        assert shared_pool(("test", host), lambda: pytest.fail("made twice")) is pool
        wait_for(lambda: pool.warm() == {"img/a:latest": 1})
        pool.release(pool.acquire("img/a"))
        other = shared_pool(("test", host, 2), lambda: WarmPool(starter.start, starter.remove, size=0, host=host))
        other.release(other.acquire("img/z"))
        stats = shared_stats()
        assert stats["docker/pool_hits"] == 1 and stats["docker/pool_misses"] == 1
    finally:
        close_shared_pools()
    assert starter.live == [] and shared_stats() == {}


def test_gym_make_docker_settings_reach_the_sandbox_config() -> None:
    import gymnasium as gym

    from swerepair.envs.sandbox import SandboxConfig

    base = SandboxConfig(docker_pool=PoolConfig(pool_size=5, image_budget_bytes=7))
    env = gym.make(
        "SweRepair-v0",
        sandbox="docker",
        sandbox_config=base,
        docker={"image": "img:1", "runtime": "runsc", "per_host_limit": 3, "image_budget_gb": 1},
    ).unwrapped
    config = env.sandbox_config
    assert (config.docker_image, config.docker_runtime) == ("img:1", "runsc")
    assert config.docker_pool == PoolConfig(pool_size=5, per_host_limit=3, image_budget_bytes=10**9)
    with pytest.raises(TypeError, match="pool_sise"):
        gym.make("SweRepair-v0", sandbox="docker", docker={"pool_sise": 1})


def test_train_config_reaches_the_sandbox_config() -> None:
    from swerepair.trainers.config import ConfigError, load_config
    from swerepair.trainers.episodes import docker_sandbox_config

    config = load_config(
        overrides=["--sandbox", "docker", "--docker-pool-size", "4", "--docker-image-budget-gb", "2.5"]
    )
    pool = docker_sandbox_config(config).docker_pool
    assert (pool.pool_size, pool.per_host_limit, pool.image_budget_bytes) == (4, 16, 2_500_000_000)
    with pytest.raises(ConfigError, match="docker_per_host_limit"):
        load_config(overrides={"docker_per_host_limit": 0})


@needs_docker_marks
def test_engine_env_reports_the_pool_in_info(engine: Any) -> None:
    import gymnasium as gym

    from swerepair.envs.sandbox.docker.pool import close_shared_pools, shared_expect, shared_stats
    from swerepair.envs.tasks import load_tasks

    tasks = load_tasks("bundled")[:2]
    close_shared_pools()
    env = gym.make("SweRepair-v0", tasks=tasks, sandbox="docker", docker={"image": base_image(), "pool_size": 1})
    try:
        began = time.monotonic()
        _, info = env.reset(options={"task_id": tasks[0].instance_id})
        cold_s = time.monotonic() - began
        assert not info["failed"] and info["docker"]["pool_hit"] is False
        assert info["docker"]["docker/pool_misses"] == 1
        shared_expect([tasks[1]])
        wait_for(lambda: shared_stats()["docker/pool_warm"] == 1, timeout=60)
        began = time.monotonic()
        _, info = env.reset(options={"task_id": tasks[1].instance_id})
        pooled_s = time.monotonic() - began
        assert info["docker"]["pool_hit"] is True and info["docker"]["docker/pool_hits"] == 1
        assert info["docker"]["image"] == normalize_image(base_image())
        print(f"\nenv reset: cold {cold_s:.3f}s, pooled {pooled_s:.3f}s")
        env.step({"role": "assistant", "content": "", "tool_calls": []})
        env.unwrapped.sandbox.write_file("fix.txt", "x\n")
        *_, info = env.step("done")
        assert info["exit_reason"] == "agent_stopped" and info["docker"]["docker/pool_leased"] == 1
    finally:
        env.close()
        close_shared_pools()
    from swerepair.envs.sandbox.docker.client import LABEL_SESSION, SESSION_ID

    mine = engine.containers.list(all=True, filters={"label": [POOL_LABEL, f"{LABEL_SESSION}={SESSION_ID}"]})
    assert mine == []


@needs_docker_marks
def test_engine_training_logs_the_pool_metrics(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch")
    from swerepair.trainers import GRPOTrainer
    from swerepair.trainers.metrics import read_metrics

    from helpers import tiny_run_config

    monkeypatch.setenv("SWEREPAIR_DOCKER_IMAGE", base_image())  # the bundled tasks name no image
    config = tiny_run_config(tmp_path, sandbox="docker", docker_pool_size=2)
    with GRPOTrainer(config) as trainer:
        trainer.train()
    records = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2]
    last = records[-1]
    assert last["docker/pool_hits"] + last["docker/pool_misses"] == 8  # 2 steps x 2 tasks x 2 episodes
    assert last["docker/pool_hits"] >= 4  # step 2's containers were started during step 1
    assert last["episodes/failed/sandbox_error"] == 0
    assert {"docker/pulls", "docker/evictions", "docker/cache_bytes", "docker/reset_wait_s"} <= set(last)
