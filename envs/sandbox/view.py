"""What of the host a sandboxed command sees: one list of mounts, rendered by each sandbox
(bubblewrap arguments, an OCI spec for gVisor).

The view: ``/usr`` and its ``/bin``, ``/lib*``, ``/sbin`` links; the files of ``/etc`` programs
need (`ETC_ENTRIES`: no ``shadow``, no keys); the Python interpreter's prefixes; the restricted
bin at `RBIN`; the repository read-write at the work directory with its ``.git`` read-only. The
swerepair package (its task data holds gold patches) and its cache are hidden wherever a mount
above would expose them.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from swerepair.core import cache_root

__all__ = ["ETC_ENTRIES", "RBIN", "WORKDIR", "Mount", "host_view"]

WORKDIR = "/workspace"
RBIN = "/opt/swerepair/bin"
USR_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
SYSTEM_DIRS = ("/usr", *USR_LINKS)
#: What of /etc programs inside need: name resolution of users, the dynamic loader, time
#: zones, the alternatives links (awk), certificates. Nothing secret.
ETC_ENTRIES = (
    "passwd",
    "group",
    "nsswitch.conf",
    "hosts",
    "host.conf",
    "localtime",
    "timezone",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "alternatives",
    "mime.types",
    "protocols",
    "services",
    "os-release",
    "debian_version",
    "ssl/certs",
    "ca-certificates.conf",
)


@dataclass(frozen=True)
class Mount:
    """One entry of the view, applied in order.

    Attributes:
        kind: ``ro`` / ``rw`` (bind `source` at `dest`), ``symlink`` (`dest` -> `source`),
            ``hide`` (an empty tmpfs over `dest`).
        source: host path, or the link's target.
        dest: path inside the sandbox.
    """

    kind: str
    source: str
    dest: str


def _package_dir() -> str:
    import swerepair

    return os.path.realpath(os.path.dirname(swerepair.__file__))


def _interpreter_dirs(python: str) -> list[str]:
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix}
    py = Path(python)
    prefixes.add(str(py.parent.parent))
    prefixes.add(str(Path(os.path.realpath(py)).parent.parent))
    visible: list[str] = []
    for p in sorted(prefixes):
        real = os.path.realpath(p)
        if real in ("/", "/etc") or any(real == s or real.startswith(s + "/") for s in SYSTEM_DIRS):
            continue  # never expose the whole root or /etc; system dirs are mounted already
        for path in {p, real}:
            if os.path.isdir(path) and path not in visible:
                visible.append(path)
    return sorted(visible, key=len)


def host_view(python: str, rbin: Path, repo: Path) -> list[Mount]:
    """The mounts of a sandbox whose tests run with `python`, whose restricted shell uses
    `rbin`, over the repository copy `repo` (see the module docstring)."""
    view = [Mount("ro", "/usr", "/usr")]
    for d in USR_LINKS:
        if os.path.islink(d):
            view.append(Mount("symlink", os.readlink(d), d))
        elif os.path.isdir(d):
            view.append(Mount("ro", d, d))
    for name in ETC_ENTRIES:
        path = os.path.join("/etc", name)
        if os.path.lexists(path):
            view.append(Mount("ro", path, path))
    visible = _interpreter_dirs(python)
    view += [Mount("ro", p, p) for p in visible]
    # Hide the package and the cache wherever a mount above exposed them, /usr included; then
    # put back any interpreter prefix inside a hidden directory (an editable install's .venv).
    exposed = [os.path.realpath(v) for v in visible] + ["/usr"]
    hidden = [
        secret
        for secret in (_package_dir(), os.path.realpath(cache_root()))
        if os.path.isdir(secret) and any(secret == v or secret.startswith(v + "/") for v in exposed)
    ]
    view += [Mount("hide", "", h) for h in hidden]
    view += [Mount("ro", p, p) for p in visible if any(p.startswith(h + "/") for h in hidden)]
    view += [Mount("ro", str(rbin), RBIN), Mount("rw", str(repo), WORKDIR)]
    if (repo / ".git").is_dir():
        view.append(Mount("ro", str(repo / ".git"), f"{WORKDIR}/.git"))
    return view
