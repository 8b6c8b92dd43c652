"""Building one Docker-free environment: a virtual environment from PyPI, the repository installed
against the sandbox's workspace path, a lock file, and a record of what happened.

Layout under the root (default ``<cache>/envs``)::

    store/                      uv's cache: the shared package store (files hard-linked into envs)
    <owner__name>/<version>-<hash>/
        venv/                   the environment (read-only inside the sandbox)
        env.json                the record: status, Python, installer, steps, sizes, notes
        build.log               every command and its output
        requirements.txt        from the spec's ``packages``
        pip_packages.txt        the spec's ``pip_packages``
        lock.txt                ``pip freeze`` of the result: rebuilds the same set (``lock=True``)
    <owner__name>/<version>-<hash>.lock   held by the builder (fcntl), so two builders never race

The steps follow the harness's environment set-up: the interpreter at the spec's Python version
(`swerepair.envs.pyenvs.pythons`), ``packages``, then ``pip_packages``, then ``pre_install`` and
``install`` in the repository. The install runs in a bubblewrap view of the host in which the
representative checkout sits at the sandbox's workspace path (``/workspace``) with the network
on, so that an editable install points at ``/workspace`` and serves every episode of the
repository version, whatever its base commit. setuptools' editable installs are made in
``compat`` mode (a path in a ``.pth`` file, not a static import map), so that packages a later
commit adds are found too.

A build is resumable: a finished environment (``status: ok`` in its record) is kept; a partial
one (no record, or a crash mid-way) is wiped and built again; a failed one is tried again.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swerepair.core import cache_root
from swerepair.envs.pyenvs.plan import (
    EnvPlan,
    environment_python,
    read_requirements,
    requirement_lines,
)
from swerepair.envs.pyenvs.pythons import FoundPython, find_python, find_uv

__all__ = [
    "RECORD",
    "BuildError",
    "BuildOptions",
    "BuildResult",
    "build_environment",
    "classify_failure",
    "default_root",
    "disk_usage",
    "read_record",
    "resolve_installer",
    "venv_python",
]

log = logging.getLogger(__name__)

#: The record's file name in an environment's directory.
RECORD = "env.json"
#: The record's format version.
RECORD_VERSION = 1
INSTALLERS = ("auto", "uv", "pip")


def default_root() -> Path:
    """Where environments live by default: ``<cache>/envs`` (`swerepair.core.cache_root`)."""
    return cache_root() / "envs"


def venv_python(env_dir: Path) -> Path:
    """The interpreter of the environment in `env_dir`."""
    return env_dir / "venv" / "bin" / "python"


@dataclass(frozen=True)
class BuildOptions:
    """How `build_environment` builds.

    Attributes:
        root: the environments' root (default `default_root`).
        installer: ``uv`` (hard links from the shared store), ``pip`` (copies), or ``auto``
            (uv where it is installed).
        lock: install each environment from its existing ``lock.txt`` (exact versions, no
            resolution) instead of from the spec.
        force: rebuild environments that are already built.
        timeout_s: the longest one step may run.
        wait: wait for another builder of the same environment (else report it as busy).
    """

    root: Path = field(default_factory=default_root)
    installer: str = "auto"
    lock: bool = False
    force: bool = False
    timeout_s: float = 1800.0
    wait: bool = True


@dataclass
class BuildResult:
    """What happened to one environment.

    Attributes:
        key: the environment (`swerepair.envs.pyenvs.plan.env_key`).
        status: ``built``, ``cached`` (built before), ``failed``, ``blocked`` (needs Docker:
            see `reason`) or ``busy`` (another builder holds it and `BuildOptions.wait` is off).
        reason: why it failed or is blocked, in one line.
        seconds: wall time of this build.
        record: the environment's record (``env.json``), when there is one.
    """

    key: str
    status: str
    reason: str = ""
    seconds: float = 0.0
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in ("built", "cached")


class BuildError(RuntimeError):
    """A step failed: `step` names it, `reason` says why in one line."""

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"{step}: {reason}")
        self.step, self.reason = step, reason


# -- failure reasons -----------------------------------------------------------------------------
_REASONS: tuple[tuple[str, str], ...] = (
    (r"fatal error: ([\w./+-]+\.h): No such file", "needs system headers ({0}): a system library"),
    (r"(?:unable to execute|command) '?(gcc|g\+\+|cc|gfortran|c\+\+)'?(?: failed|: No such file)", "needs a compiler"),
    (r"error: (?:Microsoft Visual C\+\+|command '.*gcc' failed)", "needs a compiler"),
    (r"No matching distribution found for ([^\s]+)", "no matching distribution on the index: {0}"),
    (r"Because ([^\s]+) was not found in the package registry", "not on the index: {0}"),
    (r"there is no version of ([^\s]+)", "no such version on the index: {0}"),
    (r"requires a different Python|Requires-Python|current Python version .* does not satisfy", "needs another Python"),
    (r"Could not find a version that satisfies the requirement ([^\s]+)", "no matching distribution on the index: {0}"),
    (r"ModuleNotFoundError: No module named '([\w.]+)'", "a module is missing during the build: {0}"),
)


def classify_failure(output: str, step: str = "") -> str:
    """One line saying why a step failed, from its output."""
    for pattern, text in _REASONS:
        match = re.search(pattern, output)
        if match:
            return text.format(*(g for g in match.groups() if g is not None)) if match.groups() else text
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if re.search(r"\berror\b", line, re.IGNORECASE)]
    last = (errors or lines or ["no output"])[-1]
    return f"{step + ' failed: ' if step else ''}{last[:300]}"


# -- helpers ---------------------------------------------------------------------------------------
def disk_usage(path: Path) -> tuple[int, int]:
    """``(apparent, own)`` bytes under `path`: every file's size, and the part held by files with a
    single link (what removing `path` frees; hard-linked files are shared with the store)."""
    apparent = own = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            apparent += st.st_size
            if st.st_nlink <= 1:
                own += st.st_size
    return apparent, own


def read_record(env_dir: Path) -> dict[str, Any] | None:
    """The record of the environment in `env_dir`, or None (not built, or mid-build)."""
    try:
        data = json.loads((env_dir / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_record(env_dir: Path, record: Mapping[str, Any]) -> None:
    tmp = env_dir / f".{RECORD}.tmp"
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, env_dir / RECORD)


@functools.lru_cache(maxsize=1)
def _pip_config() -> dict[str, str]:
    """pip's effective settings (``pip config list``, read once), so that uv uses the same indexes."""
    try:
        out = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    found: dict[str, str] = {}
    for line in out.splitlines():
        match = re.match(r"[^.]*\.([\w-]+)='(.*)'$", line.strip())
        if match:
            found[match.group(1)] = match.group(2)
    return found


def _uv_environment(store: Path) -> dict[str, str]:
    """uv's environment: the shared store as its cache, hard links, and pip's indexes."""
    env = {"UV_CACHE_DIR": str(store), "UV_LINK_MODE": "hardlink", "UV_PYTHON_DOWNLOADS": "never"}
    if not any(k in os.environ for k in ("UV_INDEX_URL", "UV_DEFAULT_INDEX", "UV_EXTRA_INDEX_URL", "UV_INDEX")):
        pip = dict(_pip_config())
        if pip.get("index-url"):
            env["UV_DEFAULT_INDEX"] = pip["index-url"]
        if pip.get("extra-index-url"):
            env["UV_EXTRA_INDEX_URL"] = pip["extra-index-url"]
            env["UV_INDEX_STRATEGY"] = "unsafe-best-match"  # as pip: the best version of any index
        if pip.get("find-links") and "UV_FIND_LINKS" not in os.environ:
            env["UV_FIND_LINKS"] = pip["find-links"]
    cert = os.environ.get("PIP_CERT")
    if cert and "SSL_CERT_FILE" not in os.environ:
        env["SSL_CERT_FILE"] = cert
    return env


def _install_view(checkout: Path, workdir: str) -> list[str]:
    """bubblewrap arguments for the host as it is (network on) with `checkout` at `workdir`."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise BuildError("install", "bubblewrap (bwrap) is needed to install the repository at the workspace path")
    argv = [bwrap, "--die-with-parent", "--tmpfs", "/", "--dev", "/dev", "--proc", "/proc"]
    for entry in sorted(os.listdir("/")):
        path = "/" + entry
        if entry in ("proc", "dev") or path == workdir:
            continue
        if os.path.islink(path):
            argv += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            argv += ["--ro-bind" if entry == "sys" else "--bind", path, path]
    return [*argv, "--bind", str(checkout), workdir, "--chdir", workdir]


class _Steps:
    """Runs a build's commands, each logged to ``build.log`` with its output and duration."""

    def __init__(self, log_path: Path, timeout: float) -> None:
        self.log_path, self.timeout = log_path, timeout
        self.done: list[dict[str, Any]] = []

    def run(
        self,
        step: str,
        argv: Sequence[str],
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        stdout_only: bool = False,
    ) -> str:
        """Run one command; its output (with `stdout_only`, its standard output alone; the log
        gets both either way). `BuildError` when it fails."""
        started = time.monotonic()
        with self.log_path.open("a", encoding="utf-8") as out:
            out.write(f"\n### {step}\n$ {shlex.join(argv)}\n")
            out.flush()
            try:
                proc = subprocess.run(
                    list(argv),
                    cwd=cwd,
                    env={**os.environ, **(env or {})},
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE if stdout_only else subprocess.STDOUT,
                    text=True,
                    errors="replace",
                    timeout=self.timeout,
                    stdin=subprocess.DEVNULL,
                )
            except subprocess.TimeoutExpired as exc:
                out.write(f"(timed out after {self.timeout:.0f}s)\n")
                raise BuildError(step, f"timed out after {self.timeout:.0f}s") from exc
            except OSError as exc:
                raise BuildError(step, f"cannot run {argv[0]}: {exc}") from exc
            out.write(proc.stdout + (proc.stderr or ""))
            seconds = time.monotonic() - started
            out.write(f"(exit {proc.returncode}, {seconds:.1f}s)\n")
        self.done.append({"step": step, "seconds": round(seconds, 2), "exit": proc.returncode})
        if proc.returncode != 0:
            raise BuildError(step, classify_failure(proc.stdout + (proc.stderr or ""), step))
        return proc.stdout


@contextlib.contextmanager
def _locked(lock_path: Path, wait: bool) -> Iterator[bool]:
    """Hold `lock_path` exclusively; yields False when it is held and `wait` is off."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                yield False
                return
            log.info("waiting for another builder of %s", lock_path.stem)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def resolve_installer(name: str) -> tuple[str, str | None]:
    if name not in INSTALLERS:
        raise ValueError(f"unknown installer {name!r}; choose one of {INSTALLERS}")
    uv = find_uv()
    if name == "uv" and uv is None:
        raise ValueError("installer 'uv' asked for, but uv is not installed (pip install uv)")
    if name == "pip" or uv is None:
        return "pip", None
    return "uv", uv


# -- the build -------------------------------------------------------------------------------------
def build_environment(plan: EnvPlan, options: BuildOptions | None = None) -> BuildResult:
    """Build `plan`'s environment under ``options.root`` (see the module docstring)."""
    options = options or BuildOptions()
    env_dir = options.root / plan.key
    started = time.monotonic()
    with _locked(env_dir.with_name(env_dir.name + ".lock"), options.wait) as held:
        if not held:
            return BuildResult(plan.key, "busy", "another process is building it")
        record = read_record(env_dir)
        if record and record.get("status") == "ok" and not options.force:
            return BuildResult(plan.key, "cached", record=record)
        lock_text = None
        if options.lock:
            if not (env_dir / "lock.txt").is_file():
                return BuildResult(plan.key, "failed", f"no {env_dir / 'lock.txt'} to rebuild from")
            lock_text = (env_dir / "lock.txt").read_text(encoding="utf-8")
        shutil.rmtree(env_dir, ignore_errors=True)
        env_dir.mkdir(parents=True)
        result = _build(plan, options, env_dir, lock_text)
        result.seconds = time.monotonic() - started
        result.record["seconds"] = round(result.seconds, 2)
        _write_record(env_dir, result.record)
        return result


def _build(plan: EnvPlan, options: BuildOptions, env_dir: Path, lock_text: str | None) -> BuildResult:
    from swerepair.envs.sandbox.view import WORKDIR
    from swerepair.envs.sandbox.workspace import TaskRepositoryError, new_workspace, prepare_checkout

    installer, uv = resolve_installer(options.installer)
    store = options.root / "store"
    steps = _Steps(env_dir / "build.log", options.timeout_s)
    record: dict[str, Any] = {
        "format": RECORD_VERSION,
        "key": plan.key,
        "repo": plan.spec.repo,
        "version": plan.spec.version,
        "installer": installer,
        "from_lock": lock_text is not None,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "status": "failed",
    }
    scratch: Path | None = None
    try:
        try:
            checkout = prepare_checkout(plan.representative)
        except (TaskRepositoryError, OSError) as exc:
            raise BuildError("checkout", str(exc)) from exc
        scratch, repo = new_workspace(checkout)
        read_requirements(plan, repo)
        record.update(plan.summary())
        record["status"] = "failed"
        if plan.blockers:
            record["status"] = "blocked"
            return BuildResult(plan.key, "blocked", "; ".join(plan.blockers), record=record)
        python = find_python(environment_python(plan))
        record["python"] = {
            "path": python.path,
            "version": python.version,
            "source": python.source,
            "wanted": python.wanted,
        }
        if python.fallback:
            log.warning("%s: %s", plan.key, python.note())
            record["notes"] = [*record["notes"], python.note()]
        _make_environment(steps, env_dir, python, installer, uv, store, plan, lock_text)
        _install_repository(steps, env_dir, plan, repo, WORKDIR)
        record["lock"] = _freeze(steps, env_dir, installer, uv, store, python)
    except BuildError as exc:
        record.update(steps=steps.done, failed_step=exc.step, reason=exc.reason)
        return BuildResult(plan.key, "failed", f"{exc.step}: {exc.reason}", record=record)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    apparent, own = disk_usage(env_dir)
    record.update(status="ok", steps=steps.done, disk_bytes=apparent, own_bytes=own)
    return BuildResult(plan.key, "built", record=record)


def _make_environment(
    steps: _Steps,
    env_dir: Path,
    python: FoundPython,
    installer: str,
    uv: str | None,
    store: Path,
    plan: EnvPlan,
    lock_text: str | None,
) -> None:
    venv = env_dir / "venv"
    py = str(venv_python(env_dir))
    if installer == "uv":
        env = _uv_environment(store)
        steps.run("venv", [str(uv), "venv", "--seed", "--python", python.path, str(venv)], env=env)

        def install(step: str, requirements: Path, *extra: str) -> None:
            steps.run(step, [str(uv), "pip", "install", "--python", py, *extra, "-r", str(requirements)], env=env)
    else:
        steps.run("venv", [python.path, "-m", "venv", str(venv)])

        def install(step: str, requirements: Path, *extra: str) -> None:
            steps.run(step, [py, "-m", "pip", "install", "--no-input", *extra, "-r", str(requirements)])

    if lock_text is not None:
        lock = env_dir / "lock.txt"
        lock.write_text(lock_text, encoding="utf-8")
        install("lock", lock, "--no-deps")
        return
    for step, lines, name in (
        ("packages", plan.requirements, "requirements.txt"),
        ("pip_packages", plan.pip_packages, "pip_packages.txt"),
    ):
        path = env_dir / name
        path.write_text(requirement_lines(lines), encoding="utf-8")
        if lines:
            install(step, path)


def _install_repository(steps: _Steps, env_dir: Path, plan: EnvPlan, repo: Path, workdir: str) -> None:
    bin_dir = env_dir / "venv" / "bin"
    env = {
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "VIRTUAL_ENV": str(env_dir / "venv"),
        "PIP_CONFIG_SETTINGS": "editable_mode=compat",
        "PIP_NO_INPUT": "1",
    }
    env.update(plan.spec.env_vars)
    for command in plan.spec.pre_install:
        steps.run("pre_install", ["bash", "-c", command], cwd=repo, env=env)
    if plan.install.strip():
        steps.run("install", [*_install_view(repo, workdir), "bash", "-c", plan.install], env=env)


def _freeze(steps: _Steps, env_dir: Path, installer: str, uv: str | None, store: Path, python: FoundPython) -> str:
    py = str(venv_python(env_dir))
    if installer == "uv":
        argv = [str(uv), "pip", "freeze", "--python", py, "--exclude-editable"]
        out = steps.run("freeze", argv, env=_uv_environment(store), stdout_only=True)
    else:
        out = steps.run("freeze", [py, "-m", "pip", "freeze", "--exclude-editable"], stdout_only=True)
    pins = sorted((line for line in out.splitlines() if line.strip() and not line.startswith("#")), key=str.lower)
    header = f"# {env_dir.name}: Python {python.version}; `swerepair envs build --lock` rebuilds it\n"
    (env_dir / "lock.txt").write_text(header + requirement_lines(pins), encoding="utf-8")
    return "lock.txt"
