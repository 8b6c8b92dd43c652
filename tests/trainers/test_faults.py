"""Faults survived by `GRPOTrainer`: each fault is injected into a real two-step run of the tiny
random Qwen3 on CPU, and the episodes it hits are failed (``info["failed"]``), dropped from their
group (never scored 0), counted in the step's metrics (``episodes/dropped`` and, per reason,
``episodes/failed/<exit_reason>``); the step completes and the next one runs. A hanging command or
tool is no failure: the episode reads an error and goes on.

The faults, and where they strike:

1. a sandbox killed mid-episode: its workspace deleted between two turns;
2. a command that sleeps past the tool timeout, and a tool function that never returns;
3. the inference server (``swerepair serve`` in another process) killed during a rollout and
   started again on the same port;
4. a verifier whose test run times out (an overloaded machine);
5. a task whose repository is missing: refused at start, and failing its episodes when it
   disappears during training;
6. ENOSPC while a workspace is prepared.

Env-level counterparts, including a bwrap process killed from another thread and a really full
tmpfs, are in tests/envs/test_env_faults.py.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from swerepair.agents import Scaffold, Tool, nano_agent  # noqa: E402
from swerepair.agents.inference.http import free_port  # noqa: E402
from swerepair.agents.policies.scripted import hermes_call  # noqa: E402
from swerepair.core import Task  # noqa: E402
from swerepair.envs.env import SweRepairEnv  # noqa: E402
from swerepair.envs.sandbox import make_sandbox  # noqa: E402
from swerepair.envs.sandbox import workspace as workspace_module  # noqa: E402
from swerepair.rewards import RewardOutcome, TestsPass, functional_similarity  # noqa: E402
from swerepair.trainers.config import ConfigError, TrainConfig  # noqa: E402
from swerepair.trainers.grpo import GRPOTrainer  # noqa: E402
from swerepair.trainers.metrics import FAILURE_REASONS, read_metrics  # noqa: E402

from helpers import TOY_FILES, make_repo, tiny_run_config, token_reward  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::swerepair.envs.sandbox.LocalSandboxWarning")


@pytest.fixture(scope="module", autouse=True)
def _tiny_model_built(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Build tiny-qwen3 once, in the tests' private cache, before the first test's clock starts."""
    from swerepair.agents.inference.tiny_qwen3 import tiny_qwen3_path

    with pytest.MonkeyPatch.context() as mp:  # conftest's private cache, which is set per test
        mp.setenv("SWEREPAIR_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        tiny_qwen3_path()


def make_config(root: Path, **changes: Any) -> TrainConfig:
    """Two LoRA steps of 2 tasks x 2 episodes in one micro-batch; every step updates if any
    episode is kept."""
    return tiny_run_config(root, **{"micro_batch_size": 4, "drop_zero_variance": False, **changes})


def with_env(trainer: GRPOTrainer, **changes: Any) -> None:
    """Rebuild the trainer's env factory with some arguments changed (a sandbox factory, a reward)."""
    trainer.make_env = functools.partial(SweRepairEnv, **{**trainer.make_env.keywords, **changes})


def failed_counts(record: dict[str, Any]) -> dict[str, float]:
    return {k.removeprefix("episodes/failed/"): v for k, v in record.items() if k.startswith("episodes/failed/") and v}


def assert_counted(record: dict[str, Any], failed: dict[str, int], total: int) -> None:
    """`failed` episodes ({reason: n}) were dropped and counted; the rest kept and trained on."""
    n = sum(failed.values())
    assert failed_counts(record) == {k: float(v) for k, v in failed.items()}
    assert all(f"episodes/failed/{reason}" in record for reason in FAILURE_REASONS)  # continuous series
    assert record["episodes/dropped"] == n and record["episodes/kept"] == total - n
    assert record["episodes/failed_fraction"] == n / total
    assert record["train/updated"] == (1.0 if n < total else 0.0)
    if n < total:
        assert record["train/episodes"] == total - n


def episodes_of(run_dir: Path, step: int) -> list[dict[str, Any]]:
    path = run_dir / "episodes" / f"step-{step:06d}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def assert_dropped_not_scored(run_dir: Path, step: int, reason: str) -> list[dict[str, Any]]:
    """Every episode of the step is on record; the failed ones carry no advantage and no reward."""
    rows = episodes_of(run_dir, step)
    record = next(r for r in read_metrics(run_dir / "metrics.jsonl") if r["step"] == step)
    assert len(rows) == record["episodes/kept"] + record["episodes/dropped"]  # nothing lost
    failed = [r for r in rows if r["info"]["failed"]]
    for row in failed:
        assert row["info"]["exit_reason"] == reason and row["info"]["failure"]
        assert row["advantage"] is None and row["reward"] == 0.0 and row["info"]["reward_components"] == {}
        assert "env_reward" not in row["info"]  # the episode reward never saw it
    for row in rows:
        if not row["info"]["failed"]:
            assert isinstance(row["advantage"], float)
    return failed


def train_and_read(trainer: GRPOTrainer) -> list[dict[str, Any]]:
    records = trainer.train()
    trainer.close()
    assert [r["step"] for r in read_metrics(trainer.run_dir / "metrics.jsonl")] == [1, 2]
    assert (trainer.run_dir / "checkpoints" / "step-000002").is_dir()
    return records


# -- 1. a sandbox killed mid-episode -------------------------------------------------------------------
def test_sandbox_killed_mid_episode(tmp_path: Path) -> None:
    """Two of step 1's four workspaces are deleted between the first and the second turn."""
    config = make_config(tmp_path, max_tool_calls=2)
    trainer = GRPOTrainer(config, episode_reward=token_reward)
    made: list[Any] = []
    lock = threading.Lock()

    def sandbox(task: Task) -> Any:
        sb = make_sandbox(config.sandbox, task)
        with lock:
            made.append(sb)
        return sb

    with_env(trainer, sandbox=sandbox)
    act_on, turns = trainer.policy.act_on, [0]

    def act_on_killing(builders: Any) -> Any:
        turns[0] += 1
        if trainer.step == 1 and turns[0] == 2:  # after the first turn, before the second
            for sb in made[:2]:
                shutil.rmtree(sb.episode_dir)
        return act_on(builders)

    trainer.policy.act_on = act_on_killing  # type: ignore[method-assign]
    first, second = train_and_read(trainer)
    assert_counted(first, {"sandbox_error": 2}, total=4)
    assert_counted(second, {}, total=4)
    assert len(assert_dropped_not_scored(trainer.run_dir, 1, "sandbox_error")) == 2


# -- 2. a tool that hangs ------------------------------------------------------------------------------
def force_completion(trainer: GRPOTrainer, text: str) -> None:
    """Make the sampler write `text`, then end the turn, in every episode; the logprobs stay those
    of the forced ids under the model (the tiny model never writes a tool call by itself)."""
    backend = trainer.backend
    tokenizer = trainer.policy_model.tokenizer
    script = [*tokenizer.encode(text, add_special_tokens=False), backend.stop_ids[0]]
    assert len(script) <= trainer.config.max_new_tokens
    sample, generate = backend._sample, backend.generate
    position = [0]

    def forced_sample(logits: Any) -> Any:
        ids, _ = sample(logits)
        k = position[0]
        position[0] += 1
        if k < len(script):
            ids = torch.full_like(ids, script[k])
        logp = torch.log_softmax(logits.float() / backend.temperature, dim=-1)
        return ids, logp.gather(-1, ids[:, None]).squeeze(-1)

    def forced_generate(prompts: Any) -> Any:
        position[0] = 0
        return generate(prompts)

    backend._sample = forced_sample
    backend.generate = forced_generate


@pytest.mark.parametrize("hang", ["command", "tool"])
def test_hanging_commands_and_tools_are_observations(tmp_path: Path, hang: str) -> None:
    """Every episode's one turn calls ``shell``: a command that sleeps ten minutes (killed at the
    1 s tool timeout), or, with a scaffold whose ``shell`` function blocks for good, a tool
    abandoned at its 1 s deadline. No episode fails; the timeouts are counted."""
    config = make_config(tmp_path, max_new_tokens=48, tool_timeout_s=1.0)
    trainer = GRPOTrainer(config, episode_reward=token_reward)
    release = threading.Event()
    if hang == "tool":

        def blocked(sandbox: Any, ctx: Any, args: Any) -> str:
            release.wait()
            return "never read"

        shell = nano_agent().tools["shell"]
        tools = [Tool("shell", shell.description, shell.parameters, blocked), nano_agent().tools["apply_patch"]]
        scaffold = Scaffold.from_tools("nano-agent", nano_agent().system_prompt, tools)
        with_env(trainer, scaffold=scaffold, tool_deadline_s=1.0)
    # the command would sleep for ten minutes, the tool blocks until the test ends: the run finishing
    # at all shows that neither held it up
    force_completion(trainer, hermes_call("shell", {"cmd": 'python -c "import time; time.sleep(600)"'}))
    try:
        records = train_and_read(trainer)
    finally:
        release.set()
    for record in records:
        assert_counted(record, {}, total=4)
        assert record["tools/timeouts_per_episode"] == 1.0 and record["tools/shell_calls_per_episode"] == 1.0
        assert record["tools/error_rate"] == (1.0 if hang == "tool" else 0.0)
        assert record["exit/tool_call_budget"] == 1.0
    expected = "did not finish within 1s" if hang == "tool" else "[command timed out after 1"
    for row in episodes_of(trainer.run_dir, 2):
        assert expected in row["messages"][-1]["content"]


# -- 3. the inference server restarting mid-rollout --------------------------------------------------------
def start_server(port: int) -> subprocess.Popen[bytes]:
    """``swerepair serve`` over tiny-qwen3 on `port`, in its own process (not waited for)."""
    command = [sys.executable, "-m", "swerepair.cli", "serve", "--model", "tiny-qwen3", "--port", str(port)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, "the server exited"
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return
        except OSError:
            assert time.monotonic() < deadline, f"{url} did not start"
            time.sleep(0.1)


def get(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def test_inference_server_restarted_mid_rollout(tmp_path: Path) -> None:
    """The server is SIGKILLed while step 1's first turns are being generated and a new one is
    started on the same port: the episodes whose turns were lost fail (policy_error), the step
    completes without an update, the trainer waits for the new server, joins it and pushes its
    weights, and step 2 is generated there with them."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    servers = [start_server(port)]
    try:
        wait_healthy(url, servers[0])
        config = make_config(tmp_path, servers=[url], weight_bucket_mb=1, tasks_per_step=1, max_tool_calls=2)
        trainer = GRPOTrainer(config, episode_reward=token_reward)
        generate = trainer.backend.generate

        def restart() -> None:
            stop(servers[0])
            servers.append(start_server(port))

        def generate_during_a_restart(prompts: Any) -> Any:
            if trainer.step == 1 and len(servers) == 1:
                threading.Timer(0.02, restart).start()  # while the requests are in flight
            return generate(prompts)

        trainer.backend.generate = generate_during_a_restart  # type: ignore[method-assign]
        first, second = train_and_read(trainer)
        assert len(servers) == 2 and servers[0].poll() is not None and servers[1].poll() is None
        assert_counted(first, {"policy_error": 2}, total=2)
        assert first["servers/reconnects"] == 1.0
        for row in assert_dropped_not_scored(trainer.run_dir, 1, "policy_error"):
            assert row["info"]["failure"].startswith("policy: GenerationError: POST")
        assert_counted(second, {}, total=2)
        assert second["servers/reconnects"] == 0.0 and second["policy/version_lag_max"] == 0.0
        # step 2 was generated by the new server with the weights pushed after step 1
        rows = episodes_of(trainer.run_dir, 2)
        assert {v for row in rows for v in row["info"]["policy_versions"]} == {1}
        status = get(f"{url}/weights/status")
        assert status["version"] == 2 and status["error"] is None
    finally:
        for proc in servers:
            stop(proc)


# -- 4. a verifier timeout --------------------------------------------------------------------------------
class OverloadedVerifier:
    """A real sandbox on a machine too busy to run the tests in time: the trusted test runner's
    command first sleeps past its timeout, and the sandbox kills it there for real."""

    def __init__(self, task: Task) -> None:
        self.inner = make_sandbox("auto", task)
        self.workdir = self.inner.workdir

    def run(self, cmd: str, timeout: float, **kwargs: Any) -> Any:
        if cmd.startswith("exec ") and " -I -B -c " in cmd:  # the verifier's test command
            cmd = f'python -c "import time; time.sleep({timeout + 5})"; {cmd}'
        return self.inner.run(cmd, timeout, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class OneOverloadedVerifier:
    """The reward: `tests_pass` on an overloaded verifier for the task `slow`, the patch similarity
    for the others (so that one group fails and the other trains; a mix, not the fault)."""

    name = "tests_pass"

    def __init__(self, slow: str) -> None:
        self.slow = slow
        self.tests_pass = TestsPass(OverloadedVerifier, timeout=1.0)

    def evaluate(self, patch: str, task: Any) -> RewardOutcome:
        if task.instance_id == self.slow:
            return self.tests_pass.evaluate(patch, task)
        value = functional_similarity(patch, task)
        return RewardOutcome(value, {"functional_similarity": value})

    def __call__(self, patch: str, task: Any) -> float:
        outcome = self.evaluate(patch, task)
        assert outcome.value is not None
        return outcome.value


def test_verifier_timeout(tmp_path: Path) -> None:
    ids = ["swerepair__intervals-1", "swerepair__unitconv-2"]
    config = make_config(tmp_path, task_ids=ids)
    trainer = GRPOTrainer(config, episode_reward=token_reward)
    with_env(trainer, reward=OneOverloadedVerifier(ids[0]))
    records = train_and_read(trainer)
    for step, record in enumerate(records, 1):
        assert_counted(record, {"reward_error": 2}, total=4)
        for row in assert_dropped_not_scored(trainer.run_dir, step, "reward_error"):
            assert row["instance_id"] == ids[0]
            assert "timed out, and so did the control run" in row["info"]["failure"]


# -- 5. a task whose repository is missing -------------------------------------------------------------------
def write_tasks(path: Path, toy_task: Task, sources: dict[str, Path]) -> None:
    """A JSONL task set of toy tasks, one per repository in `sources` (name -> checkout)."""
    rows = []
    for name, root in sources.items():
        sha = make_repo(root, TOY_FILES) if not root.exists() else None
        rows.append(
            {
                "instance_id": f"toy__{name}-1",
                "repo": f"toy/{name}",
                "base_commit": sha or "0" * 40,
                "problem_statement": f"{toy_task.problem_statement} (in {name})",
                "patch": toy_task.patch,
                "test_patch": toy_task.test_patch,
                "FAIL_TO_PASS": list(toy_task.FAIL_TO_PASS),
                "PASS_TO_PASS": list(toy_task.PASS_TO_PASS),
                "repo_source": str(root),
            }
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_a_task_set_pointing_nowhere_is_refused_at_start(tmp_path: Path, toy_task: Task) -> None:
    tasks = tmp_path / "tasks.jsonl"
    write_tasks(tasks, toy_task, {"here": tmp_path / "here"})
    rows = [json.loads(line) for line in tasks.read_text().splitlines()]
    rows.append({**rows[0], "instance_id": "toy__nowhere-1", "repo_source": str(tmp_path / "nowhere")})
    tasks.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"1 task\(s\) .* does not exist \(first: toy__nowhere-1: .*nowhere\)"):
        GRPOTrainer(make_config(tmp_path, tasks=str(tasks)))
    # leaving it out with task_ids is the way round
    GRPOTrainer(make_config(tmp_path, tasks=str(tasks), task_ids=["toy__here-1"], overwrite=True)).close()


def test_a_repository_vanishing_during_training(tmp_path: Path, toy_task: Task) -> None:
    """The task set is checked at start; then one repository is deleted: its episodes fail in
    every step (repository_error), the other task trains."""
    tasks = tmp_path / "tasks.jsonl"
    write_tasks(tasks, toy_task, {"stays": tmp_path / "stays", "goes": tmp_path / "goes"})
    trainer = GRPOTrainer(make_config(tmp_path, tasks=str(tasks)), episode_reward=token_reward)
    shutil.rmtree(tmp_path / "goes")
    records = train_and_read(trainer)
    for step, record in enumerate(records, 1):
        assert_counted(record, {"repository_error": 2}, total=4)
        for row in assert_dropped_not_scored(trainer.run_dir, step, "repository_error"):
            assert row["instance_id"] == "toy__goes-1" and "does not exist" in row["info"]["failure"]
            assert row["messages"] == [] and row["tokens"] == []


# -- 6. a full disk while preparing a workspace ----------------------------------------------------------------
def test_enospc_while_preparing_workspaces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first two workspace copies of step 1 hit ENOSPC (injected into ``shutil.copytree`` as
    the workspace module calls it, a mock: tests/envs/test_env_faults.py fills a real tmpfs)."""
    trainer = GRPOTrainer(make_config(tmp_path), episode_reward=token_reward)
    copytree, failures, lock = shutil.copytree, [2], threading.Lock()

    def copytree_on_a_full_disk(src: Any, dst: Any, *args: Any, **kwargs: Any) -> Any:
        with lock:
            full = trainer.step == 1 and Path(dst).parent.name.startswith("swerepair-ep-") and failures[0] > 0
            failures[0] -= full
        if full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
        return copytree(src, dst, *args, **kwargs)

    monkeypatch.setattr(workspace_module.shutil, "copytree", copytree_on_a_full_disk)
    first, second = train_and_read(trainer)
    assert_counted(first, {"sandbox_error": 2}, total=4)
    assert_counted(second, {}, total=4)
    for row in assert_dropped_not_scored(trainer.run_dir, 1, "sandbox_error"):
        assert "No space left on device" in row["info"]["failure"]


# -- the TRL backend: failed episodes reach TRL masked out ----------------------------------------------------
def test_trl_rollout_masks_episodes_that_failed_before_their_first_turn(tmp_path: Path, toy_task: Task) -> None:
    """A repository that vanished after the dataset was built: TRL still gets one row per prompt,
    the failed ones with no reward and nothing to train on (they have no generated token)."""
    pytest.importorskip("trl")
    pytest.importorskip("datasets")
    from types import SimpleNamespace

    from swerepair.agents.inference.models import load_model
    from swerepair.envs.tasks import load_tasks
    from swerepair.trainers.trl_backend import SweRepairRollout

    tasks = tmp_path / "tasks.jsonl"
    write_tasks(tasks, toy_task, {"stays": tmp_path / "stays", "goes": tmp_path / "goes"})
    model, tokenizer = load_model("tiny-qwen3")
    config = make_config(tmp_path, tasks=str(tasks), max_tool_calls=1)
    rollout = SweRepairRollout(config, load_tasks(str(tasks)), tokenizer, episode_reward=token_reward)
    prompts = [row["prompt"] for row in rollout.dataset()]
    shutil.rmtree(tmp_path / "goes")
    trainer = SimpleNamespace(
        accelerator=SimpleNamespace(unwrap_model=lambda m: m), model=model, state=SimpleNamespace(global_step=0)
    )
    out = rollout(prompts * 2, trainer)
    assert len(out["prompt_ids"]) == 4
    for k, info in enumerate(out["swerepair_info"]):
        failed = info["task_id"] == "toy__goes-1"
        assert info["failed"] is failed
        assert (out["swerepair_reward"][k] is None) is failed
        if failed:
            assert info["exit_reason"] == "repository_error"
            assert out["env_mask"][k] == [0] and len(out["completion_ids"][k]) == len(out["logprobs"][k]) == 1
            assert out["prompt_ids"][k]
        else:
            assert any(out["env_mask"][k]) and len(out["completion_ids"][k]) == len(out["logprobs"][k])
