"""Docker-free environments: build time and disk, cold and from the shared store; reset and step
latency in a built environment beside the host-interpreter case, in the bubblewrap sandbox.

The task set is made here: a repository whose tests import ``requests`` (with urllib3, idna,
certifi and charset-normalizer) and pytest, at two versions that pin different ``requests``
releases, so the second environment shares most of its files with the first through the store.

Measured, in one run:

- build ``cold``: the first environment with an empty store (every package downloaded);
- build ``second version``: the other version's environment, the store holding the first's;
- build ``from the store``: the first environment again after removing it, the store kept;
- for each: seconds, the environment's apparent size, and what it holds alone (files not
  hard-linked with the store);
- reset and step p50/p90 (``shell true`` and ``python -c pass``) in bubblewrap, with the built
  environment and with the host's interpreter (``SandboxConfig(environments=None)``), same task.

Needs the package index that pip is configured with, uv, and bubblewrap.

Run:  .venv/bin/python benchmarks/pyenvs.py [--json] [--n N]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

from env_step import pct, timed  # benchmarks/env_step.py: the same percentiles and timer

from swerepair.envs import SweRepairEnv
from swerepair.envs.pyenvs import BuildOptions, plan_environments
from swerepair.envs.pyenvs.build import build_environment
from swerepair.envs.sandbox import SandboxConfig, bwrap_available
from swerepair.envs.tasks import load_tasks

PINS = {"1.0": "2.31.0", "2.0": "2.32.3"}
GIT = {"GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@b"}


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, **GIT}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout


def make_tasks(root: Path) -> Path:
    """Two versions of a small package over requests, one task row each."""
    repo = root / "fetcher"
    (repo / "src" / "fetcher").mkdir(parents=True)
    (repo / "tests").mkdir()
    git(repo, "init", "-q", "-b", "main")
    rows = []
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    for n, (version, pin) in enumerate(PINS.items(), 1):
        (repo / "pyproject.toml").write_text(
            '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
            f'[project]\nname = "fetcher"\nversion = "{version}"\ndependencies = ["requests"]\n'
        )
        (repo / "src/fetcher/__init__.py").write_text("import requests\n\n\ndef agent():\n    return 'x'\n")
        (repo / "tests/test_fetcher.py").write_text(
            f"import requests\n\n\ndef test_pin():\n    assert requests.__version__ == {pin!r}\n"
        )
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", version)
        rows.append(
            {
                "instance_id": f"bench__fetcher-{n}",
                "repo": "bench/fetcher",
                "base_commit": git(repo, "rev-parse", "HEAD").strip(),
                "version": version,
                "problem_statement": "agent() returns 'x'.",
                "patch": "",
                "test_patch": "",
                "FAIL_TO_PASS": ["tests/test_fetcher.py::test_pin"],
                "PASS_TO_PASS": [],
                "repo_source": str(repo),
                "install_config": {
                    "python": python,
                    "pip_packages": [f"requests=={pin}", "pytest==8.3.3"],
                    "install": "python -m pip install -e .",
                    "test_cmd": "pytest -rA",
                    "log_parser": "parse_log_pytest",
                },
            }
        )
    path = root / "tasks.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def build(plan, root: Path) -> dict[str, float]:
    result = build_environment(plan, BuildOptions(root=root, installer="uv"))
    if result.status != "built":
        raise SystemExit(f"build failed: {result.reason}")
    rec = result.record
    steps = {s["step"]: s["seconds"] for s in rec["steps"]}
    return {
        "seconds": round(result.seconds, 2),
        "disk_mb": rec["disk_bytes"] / 1e6,
        "own_mb": rec["own_bytes"] / 1e6,
        "steps": steps,
    }


def latency(tasks_path: Path, task_id: str, environments: str | None, n: int) -> dict[str, dict[str, float]]:
    config = SandboxConfig(environments=environments)
    env = SweRepairEnv(
        tasks=str(tasks_path),
        sandbox="bubblewrap",
        sandbox_config=config,
        max_tool_calls=10_000,
        max_context_tokens=10**9,
        max_wall_s=1e9,
    )
    for _ in range(2):
        env.reset(options={"task_id": task_id})
    resets = timed(lambda: env.reset(options={"task_id": task_id}), n)
    out = {"reset_ms": pct(resets)}
    for name, cmd in (("step_true_ms", "true"), ("step_python_ms", "python -c pass")):
        action = f'<tool_call>{{"name": "shell", "arguments": {{"cmd": "{cmd}"}}}}</tool_call>'
        env.reset(options={"task_id": task_id})
        for _ in range(3):
            env.step(action)
        out[name] = pct(timed(lambda a=action: env.step(a), n))
    env.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=30, help="samples of each latency (default 30)")
    ap.add_argument("--json", action="store_true", help="also print the figures as JSON on the last line")
    args = ap.parse_args()
    if args.n < 2:
        ap.error("--n must be at least 2")
    if not bwrap_available():
        print("bubblewrap cannot create namespaces here: nothing to measure", file=sys.stderr)
        return 2
    logging.getLogger("swerepair").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory(prefix="swerepair-bench-envs-") as tmp:
        root = Path(tmp)
        os.environ["SWEREPAIR_CACHE"] = str(root / "cache")
        tasks_path = make_tasks(root)
        plans = plan_environments(load_tasks(tasks_path))[0]
        envs = root / "envs"
        result: dict = {"builds": {}}
        result["builds"]["cold"] = build(plans[0], envs)
        result["builds"]["second version"] = build(plans[1], envs)
        shutil.rmtree(envs / plans[0].key)
        result["builds"]["from the store"] = build(plans[0], envs)
        store_mb = sum(f.stat().st_size for f in (envs / "store").rglob("*") if f.is_file() and not f.is_symlink())
        result["store_mb"] = round(store_mb / 1e6, 1)
        task_id = plans[0].tasks[0]
        result["built environment"] = latency(tasks_path, task_id, str(envs), args.n)
        result["host interpreter"] = latency(tasks_path, task_id, None, args.n)
    result["n"] = args.n
    result["machine"] = {"cpu_count": os.cpu_count(), "python": platform.python_version()}

    print(f"{'build':16s} {'seconds':>8s} {'disk MB':>8s} {'own MB':>7s}  steps (s)")
    for name, b in result["builds"].items():
        steps = ", ".join(f"{k} {v:.1f}" for k, v in b["steps"].items())
        print(f"{name:16s} {b['seconds']:8.2f} {b['disk_mb']:8.1f} {b['own_mb']:7.2f}  {steps}")
    print(f"shared store: {result['store_mb']} MB\n")
    head = ("reset p50", "p90", "true p50", "p90", "python p50", "p90")
    print(f"{'interpreter':18s} " + " ".join(f"{h:>10s}" for h in head))
    for name in ("built environment", "host interpreter"):
        r = result[name]
        cells = [r[m][q] for m in ("reset_ms", "step_true_ms", "step_python_ms") for q in ("p50", "p90")]
        print(f"{name:18s} " + " ".join(f"{c:10.2f}" for c in cells))
    print(f"\n(ms; n={args.n}; {result['machine']['cpu_count']} CPUs, Python {result['machine']['python']})")
    if args.json:
        print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
