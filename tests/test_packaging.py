"""`pip install .` (not editable) into a fresh venv gives a working package."""

from __future__ import annotations

import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import gymnasium as gym, os, swerepair
from swerepair.agents.policies.scripted import gold_turns
assert "site-packages" in swerepair.__file__, swerepair.__file__
pkg = os.path.dirname(swerepair.__file__)
assert not os.path.exists(os.path.join(pkg, "tests")) and not os.path.exists(os.path.join(pkg, "benchmarks"))
assert not os.path.exists(os.path.join(pkg, "envs", "bundled", "projects")), "task sources must not install"
env = gym.make("SweRepair-v0")
obs, info = env.reset(options={"task_id": "swerepair__intervals-3"})
for turn in gold_turns(env.unwrapped.task.patch):
    obs, reward, terminated, truncated, info = env.step(turn)
assert terminated and reward == 1.0, (reward, info)
import importlib.util
assert importlib.util.find_spec("torch") is None, "the environment alone must not pull in torch"
print("OK")
"""


@pytest.mark.slow
def test_non_editable_install_in_a_fresh_venv(tmp_path: Path) -> None:
    if not (ROOT / "pyproject.toml").exists():
        pytest.skip("not running from a source checkout")
    venv.create(tmp_path / "v", with_pip=True)
    py = tmp_path / "v" / "bin" / "python"
    install = subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "-c", str(ROOT / "constraints" / "cpu.txt"), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    run = subprocess.run([str(py), "-c", SCRIPT], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0 and run.stdout.strip().endswith("OK"), run.stderr[-3000:]
    cli = subprocess.run([str(tmp_path / "v" / "bin" / "swerepair"), "tasks", "list"], capture_output=True, text=True)
    assert cli.returncode == 0 and len(cli.stdout.splitlines()) >= 12
