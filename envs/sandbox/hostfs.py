"""Host-side access to an episode's workspace that the agent cannot turn against the host.

Everything here runs in the trainer's process, with the trainer's privileges (often root), on a
directory the agent has had write access to. The agent may have left anything there: symlinks
to host files, FIFOs that block a reader forever, sockets, hard links, a file of gigabytes.
The rules:

- paths are resolved inside the workspace root and refused if they leave it (``..``, absolute
  symlinks, links into ``.git``);
- files are opened with ``O_NOFOLLOW | O_NONBLOCK`` and must be **regular files**: a FIFO,
  socket or device is refused without ever blocking, and a symlink swapped in is refused;
- a file is written only if it has one link (a hard link to a file elsewhere is refused), and
  reads and writes are size-capped;
- files and directories the host creates are handed to the sandbox's user, so the agent can
  edit what the env wrote for it.

No agent process runs while these functions do: every sandbox command's process tree is dead
before ``run`` returns (a PID namespace in bubblewrap), so there is no race to win.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Collection
from pathlib import Path

__all__ = ["MAX_FILE_BYTES", "chown_tree", "read_regular", "resolve_inside", "tree_bytes", "write_regular"]

#: The largest file the host reads or writes on the agent's behalf.
MAX_FILE_BYTES = 16 << 20

_OPEN_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)


def resolve_inside(root: Path, rel: str) -> Path:
    """The host path of workspace path `rel`; `ValueError` if it leaves `root` or enters ``.git``."""
    if not rel or "\x00" in rel:
        raise ValueError("empty or invalid path")
    real_root = os.path.realpath(root)
    target = os.path.realpath(os.path.join(real_root, rel))
    if os.path.commonpath([real_root, target]) != real_root:
        raise ValueError(f"{rel}: resolves outside the workspace")
    inside = os.path.relpath(target, real_root)
    if inside == ".git" or inside.startswith(".git" + os.sep):
        raise ValueError(f"{rel}: the .git directory is off limits")
    return Path(target)


def _describe(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def read_regular(path: Path, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of the regular file at `path` (no symlink followed, never blocking).

    Raises `FileNotFoundError`, `IsADirectoryError`, or `ValueError` for a special file, a
    symlink, or a file over `max_bytes`.
    """
    try:
        fd = os.open(path, os.O_RDONLY | _OPEN_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ValueError(f"{path.name}: is a symbolic link") from None
        if exc.errno == errno.ENXIO:  # a FIFO without writer opened non-blocking is fine; a socket is ENXIO
            raise ValueError(f"{path.name}: is a socket") from None
        raise
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{path.name}: is {_describe(st.st_mode)}, not a regular file")
        if st.st_size > max_bytes:
            raise ValueError(f"{path.name}: {st.st_size} bytes, over the {max_bytes}-byte limit")
        os.set_blocking(fd, True)
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            total += len(chunk)
            if total > max_bytes:
                raise ValueError(f"{path.name}: over the {max_bytes}-byte limit")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _make_parents(root: Path, target: Path, owner: tuple[int, int] | None) -> None:
    real_root = Path(os.path.realpath(root))
    missing: list[Path] = []
    parent = target.parent
    while parent != real_root and not parent.exists():
        missing.append(parent)
        parent = parent.parent
    if parent.is_symlink() or not parent.is_dir():
        raise ValueError(f"{os.path.relpath(parent, real_root)}: not a directory")
    for d in reversed(missing):
        os.mkdir(d, 0o755)
        if owner is not None:
            os.lchown(d, *owner)


def write_regular(
    root: Path,
    target: Path,
    data: bytes,
    owner: tuple[int, int] | None = None,
    max_bytes: int = MAX_FILE_BYTES,
) -> None:
    """Create or overwrite the regular file `target` inside `root` with `data`.

    An existing file must be a regular file with a single link; a new one (and any parent
    directory created for it) is given to `owner` (uid, gid) when set. Raises `ValueError`
    for what the agent may not make the host write through, `OSError` for the rest.
    """
    if len(data) > max_bytes:
        raise ValueError(f"{target.name}: {len(data)} bytes, over the {max_bytes}-byte limit")
    _make_parents(root, target, owner)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _OPEN_FLAGS, 0o644)
        created = True
    except FileExistsError:
        try:
            fd = os.open(target, os.O_WRONLY | _OPEN_FLAGS)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR):
                raise ValueError(f"{target.name}: not a regular file") from None
            raise
        created = False
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{target.name}: is {_describe(st.st_mode)}, not a regular file")
        if st.st_nlink != 1:
            raise ValueError(f"{target.name}: has {st.st_nlink} hard links; refusing to write through them")
        if created and owner is not None:
            os.fchown(fd, *owner)
        os.set_blocking(fd, True)
        os.ftruncate(fd, 0)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def chown_tree(root: Path, owner: tuple[int, int], skip: tuple[str, ...] = (".git",)) -> None:
    """Give `root` and everything below it (but not the top-level names in `skip`) to `owner`,
    without following symlinks."""
    os.lchown(root, *owner)
    for entry in os.scandir(root):
        if entry.name in skip:
            continue
        os.lchown(entry.path, *owner)
        if entry.is_dir(follow_symlinks=False):
            for dirpath, dirnames, filenames in os.walk(entry.path):
                for name in dirnames + filenames:
                    os.lchown(os.path.join(dirpath, name), *owner)


def tree_bytes(root: Path, stop_at: int | None = None, skip: Collection[str] = ()) -> int:
    """Disk space (allocated blocks) used below `root`, symlinks not followed, leaving out the
    entries of `root` itself named in `skip` (and all below them); stops counting once
    `stop_at` is passed."""
    total = 0
    top = str(root)
    stack = [top]
    while stack:
        path = stack.pop()
        try:
            entries = list(os.scandir(path))
        except OSError:
            continue
        for entry in entries:
            if skip and path == top and entry.name in skip:
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            total += st.st_blocks * 512
            if stop_at is not None and total > stop_at:
                return total
            if stat.S_ISDIR(st.st_mode):
                stack.append(entry.path)
    return total
