"""The Docker sandbox: one hardened container per episode, from the task's image.

What is covered (the guarantees of the bubblewrap sandbox, docs/security.md, held by a
container instead of namespaces made per command; see docs/docker.md):

- **Identity and privileges.** Every command of the agent runs as an unprivileged uid
  (`SandboxConfig.sandbox_uid`, 65534) with an empty capability bounding set and
  ``no_new_privs``: a root wrapper inside the container (`_RUN_WRAPPER`) starts it with
  ``setpriv --reuid --regid --clear-groups --inh-caps=-all --bounding-set=-all
  --no-new-privs``. The container itself keeps only `client.ROOT_CAPABILITIES` (for that
  wrapper and the set-up) and ``no-new-privileges``, under Docker's default seccomp profile.
- **Filesystem.** The image's root filesystem is read-only. The repository is at `workdir`:
  where the image has it (``/testbed`` of a SWE-bench image, whose ``WORKDIR`` says so), or,
  for an image without it, the task's checkout copied in once at start (one tar stream). The
  workdir is an anonymous volume owned by the agent's uid, except ``.git`` (root's, not
  writable by the agent) and the workdir itself (root's, mode 1777: the agent can create
  entries but cannot rename ``.git`` away). ``/tmp`` and ``/dev/shm`` are size-capped tmpfs,
  emptied after every command; ``/opt/swerepair`` (the restricted bin, the wrapper) is a
  root-owned tmpfs.
- **Network.** ``--network none``: the loopback interface only.
- **Processes.** The container's own PID namespace. After each command (or at its timeout)
  the root wrapper kills every process but itself and the container's init
  (``kill -9 -1``): nothing the agent started outlives the call, so no agent code runs while
  the host reads the workspace or takes the diff.
- **Resources.** Memory (no swap), process count and CPU for the whole container (its
  cgroup); CPU seconds, address space, file size and open files per process; a disk budget
  for the workspace (checked every 0.1 s while a command runs and when it ends); tmpfs
  sizes; wall-clock timeout; output cap.
- **Host-side operations.** Files go in and out one at a time through the engine's archive
  API: a path is resolved component by component, symlinks followed only while they stay in
  the workspace and out of ``.git`` (as `hostfs.resolve_inside`); only regular files are read
  or replaced, up to `hostfs.MAX_FILE_BYTES`. A write replaces the directory entry (the
  engine unlinks and recreates it), so it never writes through a hard link. The diff is taken
  by a root script inside the container with the safe git settings of `WorkspaceSandbox.diff`.
- **Clean-up.** Containers carry swerepair's labels and are removed on `close()`, at
  interpreter exit and when the sandbox object is collected; containers left by a killed
  process are removed when the next process makes its first Docker sandbox
  (`client.reap_orphans`).

What is not covered:

- Kernel exploits: a container shares the host kernel. ``runtime="runsc"`` runs the container
  under gVisor when the engine has that runtime (docs/docker.md says how to register it).
- The engine is root (rootless podman through ``DOCKER_HOST`` is not): whoever can reach its
  socket is root on that machine. The agent never can (it has no network and no socket).
- The disk budget is sampled every 0.1 s: a command can overshoot it by what it writes in a
  tenth of a second and one `du` (each file capped by the per-file size limit).
"""

from __future__ import annotations

import base64
import contextlib
import io
import itertools
import json
import logging
import os
import posixpath
import select
import shlex
import socket
import stat
import tarfile
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from swerepair.core import ExecResult, SandboxError, Task
from swerepair.envs.sandbox.base import (
    _DIFF_EXCLUDES,
    _SAFE_GIT,
    DIFF_LIMIT_BYTES,
    SandboxConfig,
    bash_command,
)
from swerepair.envs.sandbox.docker.client import (
    TOOLS_DIR,
    docker_client,
    engine_errors,
    reap_orphans,
    remove_container,
    start_container,
)
from swerepair.envs.sandbox.hostfs import MAX_FILE_BYTES
from swerepair.envs.sandbox.rbin import _GIT_WRAPPER, _SED_WRAPPER, GIT_READONLY_SUBCOMMANDS

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container

__all__ = ["CONDA_ENV", "DEFAULT_WORKDIR", "RBIN", "DockerSandbox"]

log = logging.getLogger(__name__)

#: Where the repository goes in images that do not have it.
DEFAULT_WORKDIR = "/workspace"
#: The restricted shell's PATH inside the container.
RBIN = f"{TOOLS_DIR}/bin"
#: SWE-bench images' conda environment: first on PATH where it exists (the harness activates it).
CONDA_ENV = "/opt/miniconda3/envs/testbed"

_PYBIN = f"{TOOLS_DIR}/pybin"  # `python` for images that only have `python3`
_RUN = f"{TOOLS_DIR}/run"
_DIFF = f"{TOOLS_DIR}/diff"
_STATUS = "SWEREPAIR-STATUS "
#: Seconds the host waits beyond a command's timeout for the in-container wrapper to report.
_GRACE_S = 20.0
_FALLBACK_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Go's os.FileMode type bits, as the engine's path stat reports them.
_GO_DIR, _GO_SYMLINK, _GO_DEVICE = 1 << 31, 1 << 27, 1 << 26
_GO_FIFO, _GO_SOCKET, _GO_CHARDEV, _GO_IRREGULAR = 1 << 25, 1 << 24, 1 << 21, 1 << 19
_GO_TYPE = _GO_DIR | _GO_SYMLINK | _GO_DEVICE | _GO_FIFO | _GO_SOCKET | _GO_CHARDEV | _GO_IRREGULAR | (1 << 30)

_reaped: set[str] = set()  # the engines (by address) whose orphans were looked for
_reap_lock = threading.Lock()
_ids = itertools.count()

# -- scripts run inside the container ----------------------------------------------------------

# The root wrapper of every agent command: argv = TIMEOUT CPU_SECONDS -- COMMAND...
# It starts the command as the agent's uid without any capability, a timer and (with a disk
# budget) a watcher; when the first of them ends it kills every process but itself and the
# container's init, empties /tmp and /dev/shm, and reports on stderr, which the agent cannot
# reach (its stderr is its stdout).
_RUN_WRAPPER = r"""#!/bin/bash
T=$1; CPU=$2; shift 3
reason=
trap 'reason=disk' USR1
(
  ulimit -t "$CPU"; ulimit -v @AS_KB@; ulimit -f @FSIZE_KB@; ulimit -n @NOFILE@
  umask 022
  exec 2>&1
  exec @SETPRIV@ --reuid=@UID@ --regid=@UID@ --clear-groups --inh-caps=-all --bounding-set=-all \
    --no-new-privs -- "$@"
) <&0 &
agent=$!
@SLEEP@ "$T" </dev/null >/dev/null 2>&1 &
timer=$!
if [ @BUDGET_KB@ -gt 0 ]; then
  (
    while @SLEEP@ 0.1; do
      used=$(@DU@ -sxk @WORKDIR@ 2>/dev/null) || continue
      if [ $(( ${used%%[!0-9]*} - $(<@TOOLS@/base-kb) )) -gt @BUDGET_KB@ ]; then kill -USR1 $$; exit 0; fi
    done
  ) </dev/null >/dev/null 2>&1 &
fi
wait -n
rc=$?
timed_out=0
if [ -z "$reason" ] && ! kill -0 "$timer" 2>/dev/null; then timed_out=1; fi
trap '' USR1
kill -9 -1 2>/dev/null
shopt -s dotglob nullglob
leftovers=(/tmp/* /dev/shm/*)
[ ${#leftovers[@]} -eq 0 ] || @RM@ -rf -- "${leftovers[@]}" 2>/dev/null
if [ -z "$reason" ] && [ @BUDGET_KB@ -gt 0 ]; then
  used=$(@DU@ -sxk @WORKDIR@ 2>/dev/null)
  if [ $(( ${used%%[!0-9]*} - $(<@TOOLS@/base-kb) )) -gt @BUDGET_KB@ ]; then reason=disk; fi
fi
echo "SWEREPAIR-STATUS $rc $timed_out ${reason:-none}" >&2
"""

# The diff: WorkspaceSandbox.diff's throwaway index, as root, against the tree the workspace
# had at start (the base commit, plus whatever the image's own set-up left in the checkout).
_DIFF_SCRIPT = (
    "set -ef; cd @WORKDIR@; t=$(mktemp -d); trap 'rm -rf \"$t\"' EXIT; "
    'cp .git/index "$t/index"; mkdir "$t/objects"; '
    'export GIT_INDEX_FILE="$t/index" GIT_OBJECT_DIRECTORY="$t/objects" '
    'GIT_ALTERNATE_OBJECT_DIRECTORIES="$PWD/.git/objects"; '
    f"g='git {_SAFE_GIT}'; "
    f"$g add -A -- . {_DIFF_EXCLUDES}; "
    f"$g diff --cached --no-color --no-ext-diff --no-textconv --no-renames $(<{TOOLS_DIR}/base-tree)"
)

# Set-up, as root, once per container. Prints one JSON line with what it found.
_SETUP = r"""
set -euf
W=@WORKDIR@; U=@UID@; TOOLS=@TOOLS@
export HOME=/tmp GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null LANG=C.UTF-8
export PATH="@PATH@"
g="git @SAFE_GIT@"
need() { command -v "$1" >/dev/null 2>&1 || { echo "SWEREPAIR-SETUP-ERROR the image has no $1 ($2)"; exit 3; }; }
need bash "the shell of the agent's commands"
need git "the patch is git diff"
need setpriv "util-linux: drops root for the agent's commands"
need du "the disk budget"
cd "$W"
[ -d .git ] || { echo "SWEREPAIR-SETUP-ERROR $W is not a git repository"; exit 3; }
head=$($g rev-parse HEAD)
if [ "$head" != "@BASE@" ] && [ -n "@BASE@" ]; then
  $g checkout -q -f "@BASE@" || { echo "SWEREPAIR-SETUP-ERROR cannot check out @BASE@ in $W"; exit 3; }
fi
# a task whose bug is a diff on the image's checkout (SWE-smith: extra["setup_patch"], on stdin):
# applied, unless the checkout already shows it; part of the base the diff compares with
if [ "@SETUP@" = 1 ]; then
  p=$(mktemp); cat > "$p"
  if ! $g apply --check -R "$p" >/dev/null 2>&1; then
    $g apply --whitespace=nowarn "$p" || { echo "SWEREPAIR-SETUP-ERROR the task's setup patch does not apply"; exit 3; }
  fi
  rm -f "$p"
fi
# the agent owns the checkout; root owns .git and the workdir itself (1777: no renaming .git)
find "$W" -mindepth 1 -maxdepth 1 ! -name .git -exec chown -R -h "$U:$U" {} +
chown -R -h 0:0 .git && chmod -R go-w .git
chown 0:0 "$W" && chmod 1777 "$W"
# the snapshot the diff compares with, and a fresh index (a copied checkout's stat data is stale)
$g update-index -q --refresh >/dev/null 2>&1 || true
t=$(mktemp -d); cp .git/index "$t/index"
GIT_INDEX_FILE="$t/index" $g add -A -- . @EXCLUDES@
GIT_INDEX_FILE="$t/index" $g write-tree > "$TOOLS/base-tree"
rm -rf "$t"
kb=$(du -sxk "$W"); echo "${kb%%[!0-9]*}" > "$TOOLS/base-kb"
# the restricted bin
mkdir -p "$TOOLS/bin" "$TOOLS/pybin"
py=
for c in @CONDA@/bin/python python python3; do
  if p=$(command -v "$c" 2>/dev/null) && [ -x "$p" ]; then py=$p; break; fi
done
for prog in @PROGRAMS@; do
  if p=$(command -v "$prog" 2>/dev/null); then ln -s "$p" "$TOOLS/bin/$prog"; fi
done
cat > "$TOOLS/bin/git" <<'SWEREPAIR_EOF'
@GIT_WRAPPER@SWEREPAIR_EOF
cat > "$TOOLS/bin/sed" <<'SWEREPAIR_EOF'
@SED_WRAPPER@SWEREPAIR_EOF
sed -i "s#@@GIT@@#$(command -v git)#" "$TOOLS/bin/git"
sed -i "s#@@SED@@#$(command -v sed)#" "$TOOLS/bin/sed"
if [ -n "$py" ]; then
  printf '#!/bin/sh\nexec %s "$@"\n' "$py" > "$TOOLS/bin/python"
  cp "$TOOLS/bin/python" "$TOOLS/bin/python3"
  printf '#!/bin/sh\nexec %s -m pytest -p no:cacheprovider "$@"\n' "$py" > "$TOOLS/bin/pytest"
  ln -s "$py" "$TOOLS/pybin/python"
  chmod 755 "$TOOLS/bin/python" "$TOOLS/bin/python3" "$TOOLS/bin/pytest"
fi
cat > "$TOOLS/run" <<'SWEREPAIR_EOF'
@RUN_WRAPPER@SWEREPAIR_EOF
sed -i -e "s#@@SETPRIV@@#$(command -v setpriv)#" -e "s#@@SLEEP@@#$(command -v sleep)#" \
  -e "s#@@DU@@#$(command -v du)#" -e "s#@@RM@@#$(command -v rm)#" "$TOOLS/run"
cat > "$TOOLS/diff" <<'SWEREPAIR_EOF'
@DIFF_SCRIPT@
SWEREPAIR_EOF
chmod 755 "$TOOLS/bin/git" "$TOOLS/bin/sed" "$TOOLS/run" "$TOOLS/diff"
printf 'SWEREPAIR-SETUP {"python": "%s", "conda": %s}\n' "$py" "$([ -d @CONDA@ ] && echo true || echo false)"
"""


def _stat_kind(mode: int) -> str:
    if mode & _GO_DIR:
        return "a directory"
    if mode & _GO_FIFO:
        return "a FIFO"
    if mode & _GO_SOCKET:
        return "a socket"
    if mode & (_GO_DEVICE | _GO_CHARDEV):
        return "a device"
    if mode & _GO_SYMLINK:
        return "a symbolic link"
    return "not a regular file"


def _raw_socket(sock: Any) -> socket.socket:
    return getattr(sock, "_sock", sock)


class DockerSandbox:
    """The `swerepair.core.Sandbox` protocol in one container of `image` (module docstring).

    Args:
        image: the image to run: one with the repository at `workdir` (a SWE-bench,
            SWE-Gym or SWE-smith image), or any image with bash, git and util-linux into
            which `checkout` is copied.
        base_commit: the commit the agent starts from. An image's checkout that is elsewhere
            is checked out there first; ``""`` takes the image's checkout as it is.
        setup_patch: a diff applied to that checkout at the start, unless it already shows it,
            and part of the base the diff compares with (SWE-smith's bug, which its images
            do not hold: ``task.extra["setup_patch"]``, see `swerepair.envs.sources`).
        checkout: a host git checkout at `base_commit` (`prepare_checkout`), copied in when
            the image has no repository at `workdir`; or a callable returning one, called only
            then. ``None``: the image must have the repository.
        config: limits (`ResourceLimits`), the restricted shell's programs and the agent's
            uid (`sandbox_uid`); its ``python`` is unused (the image's interpreter runs).
        workdir: the repository's path inside; default: the image's ``WORKDIR`` when it has
            one (``/testbed`` for SWE-bench images), else `DEFAULT_WORKDIR`.
        runtime: an OCI runtime registered with the engine, e.g. ``"runsc"`` (gVisor).
        role: the container's ``swerepair.role`` label (``agent``, ``verifier``).
        client: a Docker client (default: `client.docker_client()`, from the environment).

    Raises `SandboxError` if the engine cannot be reached or the container cannot be set up.
    Commands run one at a time (a lock serialises them).
    """

    workdir: str

    def __init__(
        self,
        image: str,
        *,
        base_commit: str = "",
        checkout: Path | Callable[[], Path] | None = None,
        config: SandboxConfig | None = None,
        workdir: str | None = None,
        runtime: str | None = None,
        role: str = "agent",
        client: docker.DockerClient | None = None,
        container: Container | None = None,
        release: Callable[[Container], None] | None = None,
        setup_patch: str = "",
    ) -> None:
        self.config = config or SandboxConfig()
        self.image = image
        self.base_commit = base_commit
        self.setup_patch = setup_patch
        self.runtime = runtime
        self.uid = self.config.sandbox_uid
        if self.uid == 0:
            raise SandboxError("sandbox_uid must not be 0: the agent would be root in the container")
        self._closed = False
        self._lock = threading.RLock()
        self.client = client or docker_client()
        self._api = self.client.api
        _reap_once(self.client)
        try:
            image_config = (self.client.images.get(image).attrs or {}).get("Config") or {}
        except engine_errors() as exc:
            raise SandboxError(f"docker image {image}: {exc}") from exc
        self.workdir = workdir or (image_config.get("WorkingDir") or "").rstrip("/") or DEFAULT_WORKDIR
        image_env = dict(e.split("=", 1) for e in image_config.get("Env") or [] if "=" in e)
        self._image_path = image_env.get("PATH") or _FALLBACK_PATH
        if container is not None and (container.attrs.get("Config") or {}).get("WorkingDir") != self.workdir:
            (release or remove_container)(container)  # a pooled container started for another workdir
            container = None
        if container is None:
            self.container: Container = start_container(
                self.client, image, limits=self.config.limits, runtime=runtime, role=role, workdir=self.workdir
            )
            self._finalizer = weakref.finalize(self, remove_container, self.container)
        else:  # started ahead by the warm pool (pool.py), which removes it when it is released
            self.container = container
            self._finalizer = weakref.finalize(self, release or remove_container, container)
        try:
            self._setup(checkout)
        except BaseException:
            self.close()
            raise

    @classmethod
    def for_task(
        cls,
        task: Task,
        image: str | None = None,
        config: SandboxConfig | None = None,
        *,
        runtime: str | None = None,
        workdir: str | None = None,
        role: str = "agent",
        client: docker.DockerClient | None = None,
    ) -> DockerSandbox:
        """A sandbox for `task`: its image (`image`, else ``config.docker_image``, else
        `images.image_for_task(task)`, else ``task.extra["image"]``, else
        ``$SWEREPAIR_DOCKER_IMAGE``), its container from the process's warm pool, the repository
        at ``task.base_commit`` (copied from the task's checkout if the image lacks it)."""
        image = image or (config.docker_image if config is not None else None) or _image_for(task)
        if not image:
            raise SandboxError(
                f"task {task.instance_id}: no Docker image (pass image=..., set the task's 'image' or "
                "$SWEREPAIR_DOCKER_IMAGE)"
            )

        def checkout() -> Path:
            from swerepair.envs.sandbox.workspace import prepare_checkout

            return prepare_checkout(task)

        # the container comes from the process's warm pool (started ahead, or now), its image
        # through the pool's image cache (pulled if missing, kept within the disk budget)
        from swerepair.envs.sandbox.docker.pool import sandbox_pool

        pool = sandbox_pool(config or SandboxConfig(), runtime=runtime, workdir=workdir, role=role, client=client)
        lease: dict[str, Any] = {}
        try:
            container = pool.acquire(image, info=lease)
        except engine_errors() as exc:
            raise SandboxError(f"docker could not start a container of {image}: {exc}") from exc
        engine_of = getattr(pool, "engine_of", None)  # several hosts: the engine the container is on
        engine = engine_of(container) if engine_of is not None else None
        try:
            sandbox = cls(
                image,
                base_commit=task.base_commit,
                checkout=checkout if task.repo_source is not None else None,
                config=config,
                workdir=workdir,
                runtime=runtime,
                role=role,
                client=client or engine or (pool.cache.client if pool.cache is not None else None),
                container=container,
                release=pool.release,
                setup_patch=str(task.extra.get("setup_patch") or ""),
            )
        except BaseException:
            suspect = getattr(pool, "suspect", None)  # several hosts: mark the host down if it is gone
            if suspect is not None:
                suspect(container)
            pool.release(container)
            raise
        sandbox.docker_stats = lambda: {**lease, **pool.stats()}  # the env's info["docker"]
        return sandbox

    # -- set-up ------------------------------------------------------------------------------
    def _setup(self, checkout: Path | Callable[[], Path] | None) -> None:
        if self._stat(f"{self.workdir}/.git") is None:
            if checkout is None:
                raise SandboxError(f"image {self.image} has no repository at {self.workdir} and no checkout was given")
            self._copy_in(checkout() if callable(checkout) else checkout)
        limits = self.config.limits
        budget_kb = limits.disk_bytes // 1024 if limits.disk_bytes else 0
        subs = {
            "@AS_KB@": str(max(limits.address_space_bytes // 1024, 1)) if limits.address_space_bytes else "unlimited",
            "@FSIZE_KB@": str(max(limits.file_size_bytes // 1024, 1)) if limits.file_size_bytes else "unlimited",
            "@NOFILE@": str(limits.open_files),
            "@UID@": str(self.uid),
            "@BUDGET_KB@": str(budget_kb),
            "@SETPRIV@": "@@SETPRIV@@",
            "@SLEEP@": "@@SLEEP@@",
            "@DU@": "@@DU@@",
            "@RM@": "@@RM@@",
        }
        run_wrapper = _RUN_WRAPPER
        for key, value in subs.items():
            run_wrapper = run_wrapper.replace(key, value)
        allowed = " ".join(GIT_READONLY_SUBCOMMANDS)
        script = _SETUP
        for key, value in {
            "@RUN_WRAPPER@": run_wrapper,
            "@DIFF_SCRIPT@": _DIFF_SCRIPT,
            "@GIT_WRAPPER@": _GIT_WRAPPER.format(allowed=allowed, git="@@GIT@@"),
            "@SED_WRAPPER@": _SED_WRAPPER.format(sed="@@SED@@"),
            "@PROGRAMS@": " ".join(shlex.quote(p) for p in self.config.programs),
            "@SAFE_GIT@": _SAFE_GIT,
            "@EXCLUDES@": _DIFF_EXCLUDES,
            "@BASE@": self.base_commit,
            "@SETUP@": "1" if self.setup_patch.strip() else "0",
            "@PATH@": f"{CONDA_ENV}/bin:{self._image_path}",
            "@CONDA@": CONDA_ENV,
            "@WORKDIR@": shlex.quote(self.workdir),
            "@TOOLS@": TOOLS_DIR,
            "@UID@": str(self.uid),
        }.items():
            script = script.replace(key, value)
        out, _total, _err, code = self._exec(
            ["/bin/sh", "-c", script], user="0", timeout=600.0, max_output=1 << 20, stdin=self.setup_patch or None
        )
        text = out.decode("utf-8", "replace")
        if code != 0 or "SWEREPAIR-SETUP " not in text:
            problem = next((ln for ln in text.splitlines() if ln.startswith("SWEREPAIR-SETUP-ERROR")), text[-2000:])
            raise SandboxError(f"setting up the container of {self.image} failed (exit {code}): {problem}")
        found = json.loads(text.split("SWEREPAIR-SETUP ", 1)[1].splitlines()[0])
        self.python = found["python"] or None
        conda = f"{CONDA_ENV}/bin:" if found["conda"] else ""
        self._path = f"{conda}{self._image_path}:{_PYBIN}"

    def _copy_in(self, checkout: Path) -> None:
        """Send the host checkout in as one tar stream: the agent's uid owns the files, root
        owns ``.git``; only directories, regular files and symlinks travel."""
        buf = io.BytesIO()
        root = Path(checkout)
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames.sort()
                for name in sorted(dirnames) + sorted(filenames):
                    path = os.path.join(dirpath, name)
                    rel = os.path.relpath(path, root)
                    st = os.lstat(path)
                    if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
                        continue
                    info = tar.gettarinfo(path, arcname=rel)
                    owner = 0 if rel == ".git" or rel.startswith(".git/") else self.uid
                    info.uid = info.gid = owner
                    info.uname = info.gname = ""
                    if info.isreg():
                        with open(path, "rb") as f:
                            tar.addfile(info, f)
                    else:
                        tar.addfile(info)
        try:
            ok = self.container.put_archive(self.workdir, buf.getvalue())
        except engine_errors() as exc:
            raise SandboxError(f"cannot copy the checkout into the container: {exc}") from exc
        if not ok:
            raise SandboxError("the engine refused the checkout's archive")

    # -- running -----------------------------------------------------------------------------
    def _exec(
        self,
        argv: list[str],
        *,
        user: str,
        timeout: float,
        max_output: int,
        env: dict[str, str] | None = None,
        stdin: str | None = None,
    ) -> tuple[bytes, int, bytes, int | None]:
        """Run `argv` in the container; return (first `max_output` bytes of stdout, stdout
        bytes in all, stderr, exit code or None if it did not end within `timeout`)."""
        if self._closed:
            raise SandboxError("sandbox is closed")
        try:
            exec_id = self._api.exec_create(
                self.container.id,
                argv,
                stdout=True,
                stderr=True,
                stdin=stdin is not None,
                tty=False,
                user=user,
                environment=env,
                workdir=self.workdir,
            )["Id"]
            sock = self._api.exec_start(exec_id, socket=True)
        except engine_errors() as exc:
            raise SandboxError(f"docker exec failed: {exc}") from exc
        raw = _raw_socket(sock)
        kept, total, err = bytearray(), 0, bytearray()
        finished = False
        try:
            if stdin is not None:
                with contextlib.suppress(OSError):
                    raw.sendall(stdin.encode("utf-8"))
                with contextlib.suppress(OSError):
                    raw.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + timeout
            pending = b""
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                ready, _, _ = select.select([raw], [], [], min(left, 1.0))
                if not ready:
                    continue
                try:
                    chunk = raw.recv(1 << 16)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    chunk = b""
                if not chunk:
                    finished = True
                    break
                pending += chunk
                while len(pending) >= 8:
                    size = int.from_bytes(pending[4:8], "big")
                    if len(pending) < 8 + size:
                        break
                    kind, payload = pending[0], pending[8 : 8 + size]
                    pending = pending[8 + size :]
                    if kind == 2:
                        if len(err) < 1 << 20:
                            err += payload
                    else:
                        total += len(payload)
                        room = max_output - len(kept)
                        if room > 0:
                            kept += payload[:room]
        finally:
            with contextlib.suppress(Exception):
                sock.close()
            with contextlib.suppress(Exception):
                raw.close()
        if not finished:
            return bytes(kept), total, bytes(err), None
        code: int | None = None
        try:
            for _ in range(200):
                info = self._api.exec_inspect(exec_id)
                if not info.get("Running"):
                    code = info.get("ExitCode")
                    break
                time.sleep(0.01)
        except engine_errors() as exc:
            raise SandboxError(f"docker exec inspect failed: {exc}") from exc
        return bytes(kept), total, bytes(err), code

    def run(
        self,
        cmd: str,
        timeout: float,
        *,
        restricted: bool = False,
        stdin: str | None = None,
        max_output_bytes: int | None = None,
    ) -> ExecResult:
        """See `swerepair.core.Sandbox.run`; `max_output_bytes` overrides the configured capture
        limit for this command."""
        if self._closed:
            raise SandboxError("sandbox is closed")
        inner, env = bash_command(cmd, restricted=restricted, path=RBIN if restricted else self._path)
        limit = max_output_bytes if max_output_bytes is not None else self.config.limits.max_output_bytes
        limits = self.config.limits
        cpu = limits.cpu_seconds if limits.cpu_seconds is not None else int(timeout) + 5
        argv = ["/bin/bash", _RUN, f"{max(timeout, 0.001):.3f}", str(cpu), "--", *inner]
        with self._lock:
            start = time.monotonic()
            out, total, err, code = self._exec(
                argv, user="0", timeout=timeout + _GRACE_S, max_output=limit, env=env, stdin=stdin
            )
            duration = time.monotonic() - start
            status = [ln for ln in err.decode("utf-8", "replace").splitlines() if ln.startswith(_STATUS)]
            if code is None or not status:
                self._recover(code, err)
                return ExecResult(
                    output=out.decode("utf-8", "replace"),
                    exit_code=-9,
                    timed_out=code is None,
                    truncated=total > len(out),
                    duration_s=duration,
                    output_bytes=total,
                    killed_reason=None if code is None else "the sandbox's command wrapper was killed",
                )
        rc_text, timed_text, reason_text = status[-1][len(_STATUS) :].split()
        timed_out = timed_text == "1"
        truncated = total > len(out)
        killed_reason = None
        if reason_text == "disk":
            killed_reason = f"the workspace grew past its disk budget of {limits.disk_bytes} bytes"
            out += f"\n[killed: {killed_reason}]".encode()
        exit_code = -9 if (timed_out or killed_reason) else int(rc_text)
        return ExecResult(
            output=out.decode("utf-8", "replace"),
            exit_code=exit_code,
            timed_out=timed_out,
            truncated=truncated,
            duration_s=duration,
            output_bytes=total,
            killed_reason=killed_reason,
        )

    def _recover(self, code: int | None, err: bytes) -> None:
        """The wrapper did not report (the engine lost the exec, or it ran past every limit):
        kill every process of the container but its init, as root; raise `SandboxError` if
        even that fails."""
        log.warning("docker sandbox: the command wrapper did not report (exit %s): %s", code, err[-500:])
        try:
            _, _, _, killed = self._exec(["/bin/sh", "-c", "kill -9 -1"], user="0", timeout=30.0, max_output=1024)
        except SandboxError:
            killed = None
        if killed is None:
            raise SandboxError(f"the container {self.container.short_id} no longer runs commands")

    # -- files -------------------------------------------------------------------------------
    def _stat(self, path: str) -> dict[str, Any] | None:
        """The engine's stat of `path` (the last component not followed), None if absent."""
        try:
            resp = self._api.head(self._api._url("/containers/{0}/archive", self.container.id), params={"path": path})
        except engine_errors() as exc:
            raise SandboxError(f"docker stat failed: {exc}") from exc
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise ValueError(f"{path}: cannot be looked up (engine status {resp.status_code})")
        header = resp.headers.get("X-Docker-Container-Path-Stat")
        if not header:
            raise SandboxError("the engine returned no path stat")
        return json.loads(base64.b64decode(header))

    def _inside(self, path: str, shown: str) -> str:
        """`path` (absolute, normalised) relative to the workdir; ValueError outside or in .git."""
        root = self.workdir.rstrip("/") or "/"
        if path != root and not path.startswith(root.rstrip("/") + "/"):
            raise ValueError(f"{shown}: resolves outside the workspace")
        rel = posixpath.relpath(path, root)
        if rel == ".git" or rel.startswith(".git/"):
            raise ValueError(f"{shown}: the .git directory is off limits")
        return rel

    def _resolve(self, path: str) -> tuple[str, dict[str, Any] | None, list[str]]:
        """Resolve a workspace path as `hostfs.resolve_inside` does (symlinks followed only
        inside the workspace, never into .git). Returns (the deepest existing path, its stat,
        the components below it that do not exist)."""
        if not path or "\x00" in path:
            raise ValueError("empty or invalid path")
        root = self.workdir.rstrip("/") or "/"
        if posixpath.isabs(path):
            if not path.startswith(root + "/"):
                raise ValueError(f"{path}: outside the workspace {self.workdir}")
            path = path[len(root) + 1 :]
        parts = [p for p in path.split("/") if p not in ("", ".")]
        current: str = root
        st: dict[str, Any] | None = {"mode": _GO_DIR}
        hops = 0
        for i, part in enumerate(parts):
            if part == "..":
                current = posixpath.dirname(current)
                self._inside(current, path)
                st = self._stat(current)
                continue
            if st is None or not st["mode"] & _GO_DIR:
                raise ValueError(f"{path}: {posixpath.relpath(current, root)} is not a directory")
            candidate = posixpath.join(current, part)
            self._inside(candidate, path)
            cst = self._stat(candidate)
            if cst is None:
                if ".." in parts[i:]:
                    raise ValueError(f"{path}: goes through a missing directory")
                return candidate, None, parts[i + 1 :]
            while cst is not None and cst["mode"] & _GO_SYMLINK:
                hops += 1
                if hops > 40:
                    raise ValueError(f"{path}: too many levels of symbolic links")
                target = posixpath.normpath(cst.get("linkTarget") or "/")
                self._inside(target, path)
                candidate, cst = target, self._stat(target)
                if cst is None:
                    raise ValueError(f"{path}: a dangling symbolic link")
            current, st = candidate, cst
        self._inside(current, path)
        return current, st, []

    def read_file(self, path: str) -> str:
        """See `swerepair.core.Sandbox.read_file`. Only regular files are read (never a FIFO,
        socket or device), at most `MAX_FILE_BYTES`; anything else raises `ValueError`."""
        with self._lock:
            if self._closed:
                raise SandboxError("sandbox is closed")
            target, st, _ = self._resolve(path)
            if st is None:
                raise FileNotFoundError(f"{path}: no such file")
            name = posixpath.basename(target)
            if st["mode"] & _GO_DIR:
                raise IsADirectoryError(f"{path}: is a directory")
            if st["mode"] & _GO_TYPE:
                raise ValueError(f"{name}: is {_stat_kind(st['mode'])}, not a regular file")
            if st["size"] > MAX_FILE_BYTES:
                raise ValueError(f"{name}: {st['size']} bytes, over the {MAX_FILE_BYTES}-byte limit")
            try:
                stream, _ = self.container.get_archive(target)
                data = b"".join(stream)
            except engine_errors() as exc:
                raise SandboxError(f"docker could not read {path}: {exc}") from exc
            with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                member = tar.next()
                if member is None or not member.isreg():
                    raise ValueError(f"{name}: not a regular file")
                if member.size > MAX_FILE_BYTES:
                    raise ValueError(f"{name}: over the {MAX_FILE_BYTES}-byte limit")
                f = tar.extractfile(member)
                assert f is not None
                return f.read().decode("utf-8", errors="replace")

    def write_file(self, path: str, text: str) -> None:
        """See `swerepair.core.Sandbox.write_file`. Replaces only regular files, never through
        a symlink that leaves the workspace; new files and directories belong to the agent."""
        data = text.encode("utf-8")
        with self._lock:
            if self._closed:
                raise SandboxError("sandbox is closed")
            target, st, missing = self._resolve(path)
            if len(data) > MAX_FILE_BYTES:
                name = posixpath.basename(target)
                raise ValueError(f"{name}: {len(data)} bytes, over the {MAX_FILE_BYTES}-byte limit")
            mode = 0o644
            if st is not None:
                if st["mode"] & _GO_TYPE:
                    raise ValueError(f"{posixpath.basename(target)}: is {_stat_kind(st['mode'])}, not a regular file")
                mode = st["mode"] & 0o777
                parent, names = posixpath.dirname(target), [posixpath.basename(target)]
            else:  # target is the first missing component; `missing` the ones below it
                parent, names = posixpath.dirname(target), [posixpath.basename(target), *missing]
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
                for depth in range(1, len(names)):
                    info = tarfile.TarInfo("/".join(names[:depth]))
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    info.uid = info.gid = self.uid
                    info.mtime = int(time.time())
                    tar.addfile(info)
                info = tarfile.TarInfo("/".join(names))
                info.size, info.mode = len(data), mode
                info.uid = info.gid = self.uid
                # a second ahead: git compares whole seconds, and the engine may give the new file
                # the old one's inode; a same-size edit in the second of the set-up's index refresh
                # would otherwise look unchanged to the diff
                info.mtime = int(time.time()) + 1
                tar.addfile(info, io.BytesIO(data))
            try:
                ok = self.container.put_archive(parent, buf.getvalue())
            except engine_errors() as exc:
                raise SandboxError(f"docker could not write {path}: {exc}") from exc
            if not ok:
                raise SandboxError(f"docker refused to write {path}")

    # -- patch -------------------------------------------------------------------------------
    def diff(self) -> str:
        """`git diff` of the workspace against its state at start (for a copied checkout: the
        base commit), untracked files included, as root inside the container: the
        throwaway-index script of `WorkspaceSandbox.diff` with the same safe git settings."""
        with self._lock:
            env = {
                "PATH": self._path,
                "HOME": "/tmp",
                "LANG": "C.UTF-8",
                "GIT_CONFIG_NOSYSTEM": "1",
                "GIT_CONFIG_GLOBAL": "/dev/null",
            }
            out, _, err, code = self._exec(
                ["/bin/bash", _DIFF], user="0", timeout=120.0, max_output=DIFF_LIMIT_BYTES, env=env
            )
        if code != 0:
            raise SandboxError(f"git diff failed (exit {code}): {(err or out).decode('utf-8', 'replace')[-2000:]}")
        return out.decode("utf-8", errors="replace")

    # -- lifecycle ---------------------------------------------------------------------------
    def close(self) -> None:
        """Remove the container and its volume. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        finalizer = getattr(self, "_finalizer", None)
        if finalizer is not None:
            finalizer()

    def __enter__(self) -> DockerSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        cid = getattr(getattr(self, "container", None), "short_id", "?")
        return f"DockerSandbox(image={self.image!r}, container={cid}, workdir={self.workdir!r})"


def _reap_once(client: docker.DockerClient) -> None:
    """Remove orphaned containers once per process and engine, when its first Docker sandbox is made."""
    engine = str(getattr(getattr(client, "api", None), "base_url", ""))
    with _reap_lock:
        if engine in _reaped:
            return
        _reaped.add(engine)
    try:
        reap_orphans(client)
    except SandboxError as exc:
        log.warning("could not look for orphaned containers: %s", exc)


def _image_for(task: Task) -> str | None:
    try:
        from swerepair.envs.sandbox.docker import images
    except ImportError:
        images = None  # type: ignore[assignment]
    find = getattr(images, "image_for_task", None) if images is not None else None
    if find is not None:
        with contextlib.suppress(KeyError, LookupError):
            found = find(task)
            if found:
                return str(found)
    return task.extra.get("image") or task.extra.get("docker_image") or os.environ.get("SWEREPAIR_DOCKER_IMAGE")
