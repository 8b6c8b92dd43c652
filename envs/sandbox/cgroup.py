"""A cgroup per sandbox: memory, process count and CPU limits for a command's whole process tree.

Resource limits set with setrlimit apply per process: a command that forks 500 children each
under the address-space limit still takes the machine's memory. A cgroup bounds the tree. The
sandbox creates **one cgroup of its own** for its lifetime, below the cgroup this process is
already in (never changing that cgroup or any other), and every command joins it before
bubblewrap starts. On close, whatever is left in it is killed and it is removed.

Where it can be created:
- **cgroup v1** (each controller its own hierarchy): a child of this process's cgroup in the
  ``memory``, ``pids`` and ``cpu`` hierarchies, when they are writable (root, usually);
- **cgroup v2**: a child of a *delegated* cgroup whose ``cgroup.subtree_control`` already
  enables the controllers: ``$SWEREPAIR_CGROUP_PARENT`` if set, else this process's own cgroup
  when it already delegates (a systemd ``Delegate=yes`` unit, ``systemd-run --scope``). The
  package never enables controllers on a cgroup it did not create.

Where neither works, `create_cgroup` returns ``None`` and the sandbox says so once in the log;
the per-process limits and the command's timeout still hold.

Cgroups left by a killed process (their name holds its pid) are removed the next time a sandbox
creates one.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Cgroup", "CgroupSpec", "create_cgroup"]

log = logging.getLogger(__name__)

_PREFIX = "swerepair-sbx-"
_counter = itertools.count()


@dataclass(frozen=True)
class CgroupSpec:
    """Limits for a sandbox's whole process tree.

    Attributes:
        memory_bytes: memory (RSS, page cache and tmpfs pages) of all its processes together.
        max_processes: processes and threads alive at once.
        cpus: CPU time per wall second (1.0 = one core); 0 for no CPU limit (and no join of
            the cpu hierarchy on cgroup v1, one write less per command).
    """

    memory_bytes: int
    max_processes: int
    cpus: float


@dataclass
class Cgroup:
    """A cgroup this package created. `procs_files` are the files a process writes its pid to
    to join it (one per v1 hierarchy, one for v2)."""

    dirs: list[Path]
    procs_files: list[Path]
    version: int

    def memory_events(self) -> dict[str, int]:
        """What the memory limit did: ``oom_kill`` (processes killed for it) and, where the
        kernel keeps them, ``max`` / ``failcnt`` (times the limit was reached)."""
        out: dict[str, int] = {}
        for d in self.dirs:
            for name in ("memory.events", "memory.oom_control"):
                with contextlib.suppress(OSError, ValueError):
                    for line in (d / name).read_text().splitlines():
                        k, v = line.split()
                        out[k] = int(v)
            with contextlib.suppress(OSError, ValueError):
                out["failcnt"] = int((d / "memory.failcnt").read_text())
        return out

    def close(self) -> None:
        """Kill what is left inside and remove the cgroup. Safe to call twice."""
        for d in self.dirs:
            _remove(d)
        self.dirs = []


def _pids(d: Path) -> list[int]:
    try:
        return [int(p) for p in (d / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def _remove(d: Path) -> None:
    if not d.exists():
        return
    with contextlib.suppress(OSError):
        (d / "cgroup.kill").write_text("1")
    for _ in range(50):
        for pid in _pids(d):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        try:
            d.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.02)
    log.warning("could not remove cgroup %s", d)


def _own_cgroups() -> dict[str, str]:
    """controller (or "" for v2) -> this process's cgroup path, from /proc/self/cgroup."""
    out: dict[str, str] = {}
    try:
        text = Path("/proc/self/cgroup").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        for c in controllers.split(",") if controllers else [""]:
            out[c] = path
    return out


def _mounts() -> dict[str, Path]:
    """controller (or "" for v2) -> where its hierarchy is mounted."""
    out: dict[str, Path] = {}
    try:
        text = Path("/proc/self/mountinfo").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if len(fields) < 5 or len(rfields) < 3:
            continue
        fstype, options = rfields[0], rfields[2].split(",")
        if fstype == "cgroup2":
            out.setdefault("", Path(fields[4]))
        elif fstype == "cgroup":
            for opt in options:
                out.setdefault(opt, Path(fields[4]))
    return out


def _sweep_orphans(parent: Path) -> None:
    with contextlib.suppress(OSError):
        for d in parent.iterdir():
            if not d.name.startswith(_PREFIX) or not d.is_dir():
                continue
            try:
                pid = int(d.name[len(_PREFIX) :].split("-")[0])
            except ValueError:
                continue
            if pid != os.getpid() and not Path(f"/proc/{pid}").exists():
                _remove(d)


def _write(path: Path, value: str) -> None:
    path.write_text(value)


def _make_child(parent: Path) -> Path:
    _sweep_orphans(parent)
    d = parent / f"{_PREFIX}{os.getpid()}-{next(_counter)}"
    d.mkdir()
    return d


def _v1(spec: CgroupSpec, owner: tuple[int, int] | None) -> Cgroup | None:
    own, mounts = _own_cgroups(), _mounts()
    wanted = ("memory", "pids", "cpu") if spec.cpus > 0 else ("memory", "pids")
    if not set(wanted) <= set(mounts) or not set(wanted) <= set(own):
        return None
    made: list[Path] = []
    try:
        for controller in wanted:
            parent = mounts[controller] / own[controller].lstrip("/")
            d = _make_child(parent)
            made.append(d)
            if controller == "memory":
                _write(d / "memory.limit_in_bytes", str(spec.memory_bytes))
                with contextlib.suppress(OSError):  # absent without swap accounting
                    _write(d / "memory.memsw.limit_in_bytes", str(spec.memory_bytes))
            elif controller == "pids":
                _write(d / "pids.max", str(spec.max_processes))
            else:
                period = 100_000
                _write(d / "cpu.cfs_period_us", str(period))
                _write(d / "cpu.cfs_quota_us", str(max(1000, int(spec.cpus * period))))
            if owner is not None:
                for name in ("cgroup.procs", "tasks"):
                    os.chown(d / name, *owner)
    except OSError as exc:
        log.debug("cgroup v1 unavailable: %s", exc)
        for d in made:
            _remove(d)
        return None
    return Cgroup(dirs=made, procs_files=[d / "cgroup.procs" for d in made], version=1)


def _v2(spec: CgroupSpec, owner: tuple[int, int] | None) -> Cgroup | None:
    mounts = _mounts()
    if "" not in mounts:
        return None
    explicit = os.environ.get("SWEREPAIR_CGROUP_PARENT")
    parent = Path(explicit) if explicit else mounts[""] / _own_cgroups().get("", "/").lstrip("/")
    try:
        enabled = set((parent / "cgroup.subtree_control").read_text().split())
    except OSError:
        return None
    if not ({"memory", "pids", "cpu"} if spec.cpus > 0 else {"memory", "pids"}) <= enabled:
        return None
    d: Path | None = None
    try:
        d = _make_child(parent)
        _write(d / "memory.max", str(spec.memory_bytes))
        with contextlib.suppress(OSError):
            _write(d / "memory.swap.max", "0")
        _write(d / "pids.max", str(spec.max_processes))
        if spec.cpus > 0:
            _write(d / "cpu.max", f"{max(1000, int(spec.cpus * 100_000))} 100000")
        if owner is not None:
            os.chown(d / "cgroup.procs", *owner)
    except OSError as exc:
        log.debug("cgroup v2 unavailable under %s: %s", parent, exc)
        if d is not None:
            _remove(d)
        return None
    return Cgroup(dirs=[d], procs_files=[d / "cgroup.procs"], version=2)


def create_cgroup(spec: CgroupSpec, owner: tuple[int, int] | None = None) -> Cgroup | None:
    """A new cgroup with `spec`'s limits, joinable by `owner` (uid, gid) if given; ``None``
    where this machine does not let this process create one (see the module docstring)."""
    if os.environ.get("SWEREPAIR_NO_CGROUP"):
        return None
    return _v2(spec, owner) or _v1(spec, owner)
