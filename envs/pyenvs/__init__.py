"""Docker-free environments for real instances: per (repository, version), a virtual environment
built from PyPI at the harness spec's Python version, shared read-only by every episode that runs
in the bubblewrap sandbox (docs/environments.md).

>>> from swerepair.envs.pyenvs import build_environments, environment_for    # doctest: +SKIP
>>> build_environments(load_tasks("swe-gym.jsonl", repos="repos/"), jobs=4)   # doctest: +SKIP

A sandbox made for a task whose environment is built uses that environment's interpreter
automatically (`swerepair.envs.sandbox.make_sandbox`, ``SandboxConfig.environments``).
"""

from swerepair.envs.pyenvs.build import (
    BuildOptions,
    BuildResult,
    classify_failure,
    default_root,
    read_record,
)
from swerepair.envs.pyenvs.manage import (
    EnvInfo,
    build_environments,
    environment_for,
    list_environments,
    prune_environments,
)
from swerepair.envs.pyenvs.plan import EnvPlan, env_key, plan_environments
from swerepair.envs.pyenvs.pythons import FoundPython, find_python
from swerepair.envs.pyenvs.report import compatibility_report

__all__ = [
    "BuildOptions",
    "BuildResult",
    "EnvInfo",
    "EnvPlan",
    "FoundPython",
    "build_environments",
    "classify_failure",
    "compatibility_report",
    "default_root",
    "env_key",
    "environment_for",
    "find_python",
    "list_environments",
    "plan_environments",
    "prune_environments",
    "read_record",
]
