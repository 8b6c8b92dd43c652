"""The Docker engine, as the Docker sandbox and its pool use it: a client, hardened containers,
labels that say whose a container is, and the removal of containers a dead process left behind.

Stable API (other modules build on it):

- `docker_client()`: a `docker.DockerClient` from the environment (``DOCKER_HOST``,
  ``DOCKER_TLS_VERIFY``, ``DOCKER_CERT_PATH``), so a remote engine or rootless podman's
  Docker-compatible socket works unchanged; one client per process.
- `LABEL` and the label keys (`LABEL_SESSION`, `LABEL_PID`, `LABEL_PID_START`, `LABEL_HOST`,
  `LABEL_BOOT`, `LABEL_CREATED`, `LABEL_ROLE`): every container swerepair starts carries them.
- `start_container(client, image, *, limits, runtime, role, workdir)`: a running container with
  every hardening option of the sandbox (see its docstring).
- `remove_container(container)`: force-remove it and its anonymous volumes; never raises.
- `reap_orphans(client)`: remove the containers whose owner process on this host is gone.

Errors of the engine (unreachable, crashed, refusing) are raised as `SandboxError`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from swerepair.core import SandboxError
from swerepair.envs.sandbox.process import ResourceLimits

if TYPE_CHECKING:  # docker is an optional dependency (pip install 'swerepair[docker]')
    import docker
    from docker.models.containers import Container

__all__ = [
    "INIT_SCRIPT",
    "LABEL",
    "LABEL_BOOT",
    "LABEL_CREATED",
    "LABEL_HOST",
    "LABEL_PID",
    "LABEL_PID_START",
    "LABEL_ROLE",
    "LABEL_SESSION",
    "PIDS_RESERVE",
    "ROOT_CAPABILITIES",
    "SESSION_ID",
    "TOOLS_DIR",
    "container_labels",
    "docker_available",
    "docker_client",
    "engine_errors",
    "reap_orphans",
    "remove_container",
    "start_container",
]

log = logging.getLogger(__name__)

#: Every swerepair container has this label (value ``"1"``); the keys below hang off it.
LABEL = "swerepair"
LABEL_SESSION = f"{LABEL}.session"  #: a random id per process that started it
LABEL_PID = f"{LABEL}.owner-pid"  #: pid of that process on its host
LABEL_PID_START = f"{LABEL}.owner-start"  #: its start time (clock ticks since boot), against pid reuse
LABEL_HOST = f"{LABEL}.host"  #: hostname of that process's machine
LABEL_BOOT = f"{LABEL}.boot-id"  #: that machine's boot id (a reboot orphans every container)
LABEL_CREATED = f"{LABEL}.created"  #: Unix time of creation
LABEL_ROLE = f"{LABEL}.role"  #: ``agent`` or ``verifier`` (or what the caller says)

#: This process's session id (new in a forked child: see `_session`).
SESSION_ID = uuid.uuid4().hex

#: A root-owned tmpfs inside each container for swerepair's own files: the restricted bin,
#: the command wrapper, the diff base. The agent can read it, not write it.
TOOLS_DIR = "/opt/swerepair"

#: The only capabilities the container's bounding set keeps, for its root set-up and command
#: wrapper: hand the workspace to the agent's uid (CHOWN), read and diff whatever the agent left
#: (DAC_OVERRIDE), kill the agent's leftovers (KILL), and switch to the agent's uid with an
#: empty bounding set (SETUID, SETGID, SETPCAP). The agent's processes hold none of them: the
#: wrapper starts them with ``setpriv --bounding-set=-all --inh-caps=-all --no-new-privs``.
ROOT_CAPABILITIES = ("CHOWN", "DAC_OVERRIDE", "KILL", "SETUID", "SETGID", "SETPCAP")

#: Processes beyond `ResourceLimits.max_processes` that the container may hold: its init, the
#: root wrapper of a command and its timer, and the set-up scripts.
PIDS_RESERVE = 16

#: The container's PID 1: sleeps forever and reaps every zombie reparented to it (a shell's
#: ``wait`` reaps any child), with nothing but /bin/sh; SIGKILL is its only way out.
INIT_SCRIPT = "trap '' TERM INT HUP; while :; do sleep 3600 & wait; done"

_client_lock = threading.Lock()
_clients: dict[int, Any] = {}
_session_pid = os.getpid()


def engine_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean the engine failed (not the command): Docker API errors,
    connection errors, timeouts."""
    import docker.errors
    import requests.exceptions

    return (docker.errors.DockerException, requests.exceptions.RequestException, ConnectionError, TimeoutError)


def docker_client(timeout: float = 120.0) -> docker.DockerClient:
    """A client of the engine named by the environment (``DOCKER_HOST`` etc., as the docker CLI
    reads it), one per process (a forked child makes its own). Raises `SandboxError` if the
    Docker SDK is missing or the engine does not answer."""
    pid = os.getpid()
    with _client_lock:
        client = _clients.get(pid)
        if client is not None:
            return client
        try:
            import docker
        except ImportError as exc:
            raise SandboxError("the Docker sandbox needs the Docker SDK: pip install 'swerepair[docker]'") from exc
        try:
            client = docker.from_env(timeout=int(timeout))
            client.ping()
        except Exception as exc:
            where = os.environ.get("DOCKER_HOST", "the default socket")
            raise SandboxError(f"no Docker engine answers ({where}): {exc}") from exc
        _clients.clear()  # clients of a parent process are not reused after fork
        _clients[pid] = client
        return client


def docker_available() -> bool:
    """True when the Docker SDK is installed and an engine answers."""
    try:
        docker_client(timeout=10.0)
    except SandboxError:
        return False
    return True


# -- labels -----------------------------------------------------------------------------------
def _session() -> str:
    global SESSION_ID, _session_pid
    if os.getpid() != _session_pid:  # a forked child is another owner
        SESSION_ID, _session_pid = uuid.uuid4().hex, os.getpid()
    return SESSION_ID


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def _process_start(pid: int) -> str | None:
    """Start time of process `pid` in clock ticks since boot, or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[19]  # field 22 of the whole line


def container_labels(role: str) -> dict[str, str]:
    """The labels of a container this process starts in `role`."""
    pid = os.getpid()
    return {
        LABEL: "1",
        LABEL_SESSION: _session(),
        LABEL_PID: str(pid),
        LABEL_PID_START: _process_start(pid) or "",
        LABEL_HOST: socket.gethostname(),
        LABEL_BOOT: _boot_id(),
        LABEL_CREATED: str(int(time.time())),
        LABEL_ROLE: role,
    }


def _owner_gone(labels: dict[str, str], running: bool = True) -> bool:
    """Whether the labels name a process of this machine that no longer runs. Containers of
    other machines (a shared remote engine) are never judged; a machine of the same name with
    another boot id is this one rebooted only if the container no longer runs (a reboot stops
    it), else another machine."""
    if labels.get(LABEL_HOST) != socket.gethostname():
        return False
    boot = labels.get(LABEL_BOOT)
    if boot and _boot_id() and boot != _boot_id():
        return not running
    try:
        pid = int(labels.get(LABEL_PID, ""))
    except ValueError:
        return False
    start = _process_start(pid)
    if start is None:
        return True
    recorded = labels.get(LABEL_PID_START)
    return bool(recorded) and recorded != start  # the pid was reused by another process


# -- containers -------------------------------------------------------------------------------
def start_container(
    client: docker.DockerClient,
    image: str,
    *,
    limits: ResourceLimits,
    runtime: str | None = None,
    role: str = "agent",
    workdir: str = "/workspace",
    labels: Mapping[str, str] | None = None,
) -> Container:
    """Create and start a container of `image` hardened as the Docker sandbox needs it.

    - ``--network none``; hostname ``sandbox``; the image's entrypoint replaced by a reaping
      init (`INIT_SCRIPT`), as root (only the sandbox's own set-up and wrapper run as root).
    - Every capability dropped but `ROOT_CAPABILITIES` (``--cap-drop ALL --cap-add ...``),
      which only the sandbox's root wrapper uses: the agent's commands run with an empty
      bounding set. ``no-new-privileges``; Docker's default seccomp profile.
    - A read-only root filesystem. Writable: `workdir` (an anonymous volume, which the engine
      fills with what the image holds there: ``/testbed`` of a SWE-bench image, or nothing),
      ``/tmp`` and ``/dev/shm`` (tmpfs of `limits.tmp_bytes`), and `TOOLS_DIR` (a small
      root-owned tmpfs for the sandbox's scripts).
    - The memory (no swap beyond it), process (+ `PIDS_RESERVE`) and CPU limits of `limits`
      for the whole container, through its cgroup; open files and file size per process.
    - `runtime`: an OCI runtime registered with the engine, e.g. ``"runsc"`` (gVisor).
    - The labels of `container_labels(role)`, and `labels` (say, the warm pool's).

    Raises `SandboxError` if the engine refuses or fails.
    """
    import docker.types

    tmpfs_opts = "rw,exec,nosuid,nodev"
    kwargs: dict[str, Any] = {
        "command": ["/bin/sh", "-c", INIT_SCRIPT],
        "entrypoint": [],
        "detach": True,
        "user": "0:0",
        "hostname": "sandbox",
        "network_mode": "none",
        "cap_drop": ["ALL"],
        "cap_add": list(ROOT_CAPABILITIES),
        "security_opt": ["no-new-privileges:true"],
        "read_only": True,
        "tmpfs": {
            "/tmp": f"{tmpfs_opts},size={limits.tmp_bytes},mode=1777",
            TOOLS_DIR: f"{tmpfs_opts},size=16m,mode=755",
        },
        "shm_size": limits.tmp_bytes,
        "mounts": [docker.types.Mount(target=workdir, source=None, type="volume")],
        "working_dir": workdir,
        "labels": {**(labels or {}), **container_labels(role)},
        "ulimits": [
            docker.types.Ulimit(name="nofile", soft=limits.open_files, hard=limits.open_files),
            docker.types.Ulimit(name="fsize", soft=limits.file_size_bytes, hard=limits.file_size_bytes),
            docker.types.Ulimit(name="core", soft=0, hard=0),
        ],
        "stop_signal": "SIGKILL",
        "environment": {"LANG": "C.UTF-8"},
    }
    if limits.memory_bytes:
        kwargs["mem_limit"] = limits.memory_bytes
        kwargs["memswap_limit"] = limits.memory_bytes
    if limits.max_processes:
        kwargs["pids_limit"] = limits.max_processes + PIDS_RESERVE
    if limits.cpus:
        kwargs["nano_cpus"] = int(limits.cpus * 1e9)
    if runtime:
        kwargs["runtime"] = runtime
    container = None
    try:
        container = client.containers.create(image, **kwargs)
        container.start()
        return container
    except engine_errors() as exc:
        if container is not None:
            remove_container(container)
        raise SandboxError(f"docker could not start a container of {image}: {exc}") from exc


def remove_container(container: Container) -> None:
    """Force-remove `container` with its anonymous volumes; a container already gone is fine.
    Never raises (a failure is logged)."""
    import docker.errors

    try:
        container.remove(force=True, v=True)
    except docker.errors.NotFound:
        pass
    except Exception as exc:
        if "is already in progress" not in str(exc):
            log.warning("could not remove container %s: %s", getattr(container, "short_id", container), exc)


def reap_orphans(client: docker.DockerClient) -> list[str]:
    """Remove the swerepair containers whose owner process on this machine is gone (killed
    before it could clean up); return their names. Containers started from other machines are
    left alone. Raises `SandboxError` if the engine cannot list containers."""
    try:
        containers = client.containers.list(all=True, filters={"label": LABEL}, ignore_removed=True)
    except engine_errors() as exc:
        raise SandboxError(f"docker could not list containers: {exc}") from exc
    mine = _session()
    removed: list[str] = []
    for container in containers:
        labels = container.labels or {}
        if labels.get(LABEL_SESSION) == mine or not _owner_gone(labels, container.status == "running"):
            continue
        with contextlib.suppress(Exception):
            remove_container(container)
            removed.append(container.name)
    if removed:
        log.warning("removed %d container(s) left by dead processes: %s", len(removed), ", ".join(removed))
    return removed
