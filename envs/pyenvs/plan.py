"""What one Docker-free environment holds: a task set grouped by (repository, version), each
group's harness spec turned into pip requirements, and what keeps a spec from building without
Docker.

A spec's ``packages`` is read as the harness reads it: the marker ``"requirements.txt"`` (the
repository's file at ``requirements_paths``, ``-r`` includes followed), the marker
``"environment.yml"`` (its pip section and its conda packages, ``name=1.2`` read as
``name==1.2.*``), or conda package names (installed from PyPI under the same names, which holds
for the Python packages the specs list). ``pip_packages`` are pip's already. Conda packages that
are compilers or system libraries, and ``pre_install`` commands that install system packages,
are *blockers*: such an instance needs the Docker sandbox, and the plan says why.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from swerepair.core import Task
from swerepair.rewards.harness import RepoSpec
from swerepair.rewards.verifier.harness import task_spec

__all__ = ["SYSTEM_CONDA_PACKAGES", "EnvPlan", "editable_install", "plan_environments", "read_requirements"]

#: conda packages that are compilers, build tools or system libraries: not on PyPI as such.
SYSTEM_CONDA_PACKAGES = frozenset(
    {
        "gcc",
        "gxx",
        "gxx_linux-64",
        "gcc_linux-64",
        "c-compiler",
        "cxx-compiler",
        "fortran-compiler",
        "gfortran",
        "compilers",
        "make",
        "cmake",
        "libgcc",
        "libgcc-ng",
        "libstdcxx-ng",
        "openblas",
        "libblas",
        "liblapack",
        "mkl",
        "mkl-service",
        "graphviz",
        "cairo",
        "pango",
        "libxml2",
        "libxslt",
        "hdf5",
        "freetype",
        "libpng",
        "jpeg",
        "zlib",
        "openssl",
        "sqlite",
        "pkg-config",
        "gdal",
        "proj",
        "geos",
        "imagemagick",
        "texlive-core",
        "pandoc",
        "nodejs",
        "r-base",
    }
)
#: conda names whose PyPI distribution is spelled differently.
CONDA_TO_PYPI = {"pytables": "tables", "pytorch": "torch", "py-lief": "lief", "msgpack-python": "msgpack"}
#: conda packages an environment gets anyway (the interpreter and its installer).
_IMPLICIT = frozenset({"python", "pip", "setuptools", "wheel"})
_SYSTEM_COMMAND = re.compile(r"\b(apt-get|apt|yum|dnf|apk|conda|mamba|brew)\b")


@dataclass
class EnvPlan:
    """One environment to build: every task of one (repository, version, spec).

    Attributes:
        key: the environment's directory name under the cache root (`env_key`).
        spec: the harness spec it is built from.
        tasks: instance ids that run in it.
        representative: the task whose checkout it is built from (the first id, sorted), as the
            harness builds one environment image per version from one instance.
        requirements: pip requirement lines from ``packages`` (filled by `read_requirements`).
        pip_packages: pip requirement lines from ``pip_packages``.
        blockers: why it cannot build without Docker (system packages, conda-only packages);
            empty when it can be tried.
        notes: deviations from the harness that do not block (an install made editable, a
            ``pre_install`` step run in the checkout).
        yml_python: the Python version the repository's ``environment.yml`` pins, if any.
    """

    key: str
    spec: RepoSpec
    tasks: list[str]
    representative: Task
    requirements: list[str] = field(default_factory=list)
    pip_packages: list[str] = field(default_factory=list)
    blockers: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: The Python version an ``environment.yml`` pins (used when the spec names none).
    yml_python: str | None = None

    @property
    def install(self) -> str:
        """The install command as run here (`editable_install`)."""
        return editable_install(self.spec.install)[0]

    def summary(self) -> dict[str, Any]:
        spec = asdict(self.spec)
        return {
            "key": self.key,
            "repo": self.spec.repo,
            "version": self.spec.version,
            "python": self.spec.python,
            "tasks": self.tasks,
            "representative": self.representative.instance_id,
            "requirements": self.requirements,
            "pip_packages": self.pip_packages,
            "install": self.install,
            "blockers": self.blockers,
            "notes": self.notes,
            "spec": {k: list(v) if isinstance(v, tuple) else v for k, v in spec.items()},
        }


#: The spec fields an environment is built from: a change to any gives another environment.
_BUILD_FIELDS = (
    "repo",
    "version",
    "python",
    "install",
    "pip_packages",
    "packages",
    "pre_install",
    "requirements_paths",
    "environment_paths",
    "env_patches",
    "no_use_env",
)


def env_key(spec: RepoSpec) -> str:
    """``owner__name/<version>-<hash>``: the hash covers every spec field the build reads."""
    fields = {name: getattr(spec, name) for name in _BUILD_FIELDS}
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True, default=list).encode()).hexdigest()[:12]
    repo = re.sub(r"[^A-Za-z0-9._-]+", "__", spec.repo) or "repo"
    version = re.sub(r"[^A-Za-z0-9._-]+", "_", spec.version) or "none"
    return f"{repo}/{version}-{digest}"


def editable_install(install: str) -> tuple[str, str | None]:
    """`install` as an editable install, and a note when it had to be changed.

    One environment serves every episode, read-only, so the repository must be installed so that
    the checkout at the workspace path is what gets imported: ``pip install .`` becomes
    ``pip install -e .`` and ``setup.py install`` becomes ``setup.py develop`` (the harness
    reinstalls a copying install before its tests; here nothing can be written to the
    environment then)."""
    if not install.strip():
        return install, None
    words = install.split()
    if any(w in ("-e", "--editable", "develop") or w.startswith("--editable=") for w in words):
        return install, None
    changed = re.sub(r"\bsetup\.py install\b", "setup.py develop", install)
    changed = re.sub(r"\bpip install((?: -[-\w=.]+)*) \.(?=\s|$)", r"pip install\1 -e .", changed)
    if changed != install:
        return changed, f"install made editable for a read-only shared environment: {install!r} -> {changed!r}"
    return install, f"install {install!r} is not editable: the tests may import the installed copy, not the patch"


def _conda_to_pip(spec: str) -> tuple[str | None, str | None]:
    """A conda package spec as a pip requirement, or a blocker's reason."""
    spec = spec.strip().strip("'\"")
    if not spec or spec.startswith("#"):
        return None, None
    match = re.match(r"([A-Za-z0-9_.\-]+)(.*)", spec)
    if match is None:
        return None, f"conda package {spec!r} cannot be read"
    name, rest = match.group(1), match.group(2).strip()
    if "::" in spec:
        name, rest = spec.split("::", 1)[1], ""
    lowered = name.lower()
    if lowered in _IMPLICIT:
        return None, None
    if lowered in SYSTEM_CONDA_PACKAGES or lowered.startswith(("lib", "r-")):
        return None, f"conda package {name!r} is a compiler or system library (not on PyPI)"
    name = CONDA_TO_PYPI.get(lowered, name)
    if re.fullmatch(r"=[^=<>!].*", rest):  # conda's `name=1.2` is a prefix match
        version = rest[1:].split("=")[0]
        rest = f"=={version}.*" if version.count(".") < 2 and "*" not in version else f"=={version}"
    return f"{name}{rest}", None


def _read_requirement_file(path: Path, seen: set[Path]) -> list[str]:
    if path in seen or not path.is_file():
        return []
    seen.add(path)
    lines: list[str] = []
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        include = re.match(r"(?:-r|--requirement)\s*=?\s*(\S+)", line)
        if include:
            lines += _read_requirement_file((path.parent / include.group(1)).resolve(), seen)
            continue
        if line in (".", "-e .", "-e.") or line.startswith(("-e file:", "--editable")):
            continue  # the repository itself: the install command puts it in
        lines.append(line)
    return lines


def _environment_yml(path: Path) -> tuple[list[str], list[str], str | None]:
    """pip requirements, blockers and the Python version of a conda ``environment.yml``."""
    import yaml

    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    requirements: list[str] = []
    blockers: list[str] = []
    python: str | None = None
    for dep in data.get("dependencies") or []:
        if isinstance(dep, dict):
            requirements += [str(d) for d in dep.get("pip") or []]
            continue
        dep = str(dep)
        if re.match(r"python\s*[=<>]", dep):
            python = re.sub(r"^python\s*=*\s*", "", dep).split("=")[0].strip() or None
        requirement, blocker = _conda_to_pip(dep)
        requirements += [requirement] if requirement else []
        blockers += [blocker] if blocker else []
    return requirements, blockers, python


def read_requirements(plan: EnvPlan, checkout: Path) -> None:
    """Fill `plan`'s requirements, pip packages, blockers and notes from its spec and the
    representative checkout (where ``requirements.txt`` / ``environment.yml`` live)."""
    spec = plan.spec
    plan.requirements, plan.blockers, plan.notes, plan.yml_python = [], [], [], None
    packages = spec.packages.strip()
    if packages == "requirements.txt":
        paths = spec.requirements_paths or ("requirements.txt",)
        found = next((checkout / p for p in paths if (checkout / p).is_file()), None)
        if found is None:
            plan.blockers.append(f"packages: none of {list(paths)} exists at {plan.representative.base_commit[:12]}")
        else:
            plan.requirements = _read_requirement_file(found.resolve(), set())
    elif packages == "environment.yml":
        paths = spec.environment_paths or ("environment.yml",)
        found = next((checkout / p for p in paths if (checkout / p).is_file()), None)
        if found is None:
            plan.blockers.append(f"packages: none of {list(paths)} exists at {plan.representative.base_commit[:12]}")
        else:
            plan.requirements, blockers, plan.yml_python = _environment_yml(found)
            plan.blockers += blockers
            if spec.python is None and plan.yml_python:
                plan.notes.append(f"Python {plan.yml_python} from {found.name}")
    elif packages:
        for word in shlex.split(packages):
            requirement, blocker = _conda_to_pip(word)
            plan.requirements += [requirement] if requirement else []
            plan.blockers += [blocker] if blocker else []
    plan.pip_packages = [p.strip("'\"") for p in spec.pip_packages if p.strip("'\"")]
    for command in spec.pre_install:
        if _SYSTEM_COMMAND.search(command):
            plan.blockers.append(f"pre_install installs system packages: {command!r}")
    for command in spec.env_patches:
        plan.notes.append(f"env_patches (conda) skipped: {command!r}")
    _, note = editable_install(spec.install)
    if note:
        plan.notes.append(note)


def environment_python(plan: EnvPlan) -> str | None:
    """The Python version the environment is built at: the spec's, else environment.yml's."""
    return plan.spec.python or plan.yml_python


def plan_environments(tasks: Iterable[Task]) -> tuple[list[EnvPlan], list[str]]:
    """Group `tasks` by environment. Returns the plans (sorted by key) and the ids of tasks that
    carry no harness spec (they run with the host's interpreter, as before)."""
    plans: dict[str, EnvPlan] = {}
    without: list[str] = []
    for task in sorted(tasks, key=lambda t: t.instance_id):
        spec = task_spec(task)
        if spec is None:
            without.append(task.instance_id)
            continue
        key = env_key(spec)
        if key in plans:
            plans[key].tasks.append(task.instance_id)
        else:
            plans[key] = EnvPlan(key=key, spec=spec, tasks=[task.instance_id], representative=task)
    return [plans[k] for k in sorted(plans)], without


def requirement_lines(lines: Sequence[str]) -> str:
    """A requirements file's text."""
    return "".join(f"{line}\n" for line in lines)
