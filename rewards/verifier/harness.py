"""The second runner mode: the repository's own test runner, read the way its dataset was made.

Real SWE-bench, SWE-Gym and SWE-smith instances are graded by their harness: the repository's
own runner (``pytest -rA``, django's ``tests/runtests.py``, sympy's ``bin/test``, ``tox``) on
the files the test patch touches, its log read by a parser written for that runner. Their
``FAIL_TO_PASS``/``PASS_TO_PASS`` lists are that parser's ids, quirks included, and their
environments are set up for that command (non-editable installs, tox, conda). So those tasks
run here in **harness mode**; every other task keeps the trusted pytest runner
(`swerepair.rewards.verifier.runner`), which is stronger.

Which runner a task gets (`runner_mode`):

1. ``task.extra["runner"]`` when it is ``"trusted"`` or ``"harness"``;
2. ``"harness"`` when the task carries a harness spec (`task_spec`): a ``harness_spec`` column
   (set by the loaders of ``swerepair.envs.sources``), an ``install_config`` column
   (SWE-rebench), or a dataset of the SWE-bench family (``extra["dataset"]``);
3. ``"trusted"`` otherwise (the bundled tasks, your own pytest repositories).

What a harness run does (`run_harness`), after the caller applied the patch and the test patch:

- a wrapper (``_harness_main.py``, sent as ``python -I -B -c``) runs a **prelude** in bash:
  the SWE-bench layout's environment is activated where it exists (``/opt/miniconda3``, env
  ``testbed``), the spec's ``eval_commands`` run, and a non-editable install is run again
  inside that environment (the harness reinstalls before its tests; an editable install already
  sees the patch); then the **test command** (`swerepair.rewards.harness.test_command`) runs in
  a second bash with the prelude's environment;
- the test section is framed by ``>>>>> Start Test Output <nonce>`` and ``>>>>> End Test Output
  <nonce> exit=N``, with a random nonce that only the wrapper knows (not in argv, environment or
  the children's stdin; the wrapper is not dumpable): text the code under test prints cannot end
  the section early or start a forged one, and only the section is parsed (no fallback to the
  whole log);
- **sentinel tests** are added next to the test patch where the runner allows it (pytest-style
  parsers with file directives, and django's unittest runner): a module with one test that must
  pass and one that must fail, named with a second nonce, added to the directives (a task
  without a test patch, whose command runs the whole suite, gets it next to its first test id's
  file, collected with the suite where the suite's rules pick it up). A failing
  sentinel read as passed, a passing sentinel read as anything but passed, or the failing one
  missing while the passing one passed, is tampering. A passing sentinel that is missing while
  listed tests pass is tampering only where the control run did report it (some repositories'
  collection rules may not pick the file up): `swerepair.rewards.tests_pass` decides that.

What it cannot catch, compared with the trusted runner, is stated in docs/security.md: the
verdicts are the runner's printed lines, so code under test that prints the exact lines of the
task's tests (and leaves the sentinels alone) forges them.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import shlex
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any

from swerepair.core import ExecResult, Sandbox
from swerepair.rewards.harness import PARSERS, RepoSpec, spec_for, spec_from_install_config, test_command
from swerepair.rewards.harness.directives import test_directives
from swerepair.rewards.verifier.runner import RunnerReport, run_trusted

__all__ = [
    "HARNESS_DATASETS",
    "RUNNER_MODES",
    "SENTINEL_PARSERS",
    "Sentinel",
    "harness_prelude",
    "harness_spec_for",
    "make_sentinel",
    "needs_reinstall",
    "run_harness",
    "run_task_tests",
    "runner_mode",
    "task_spec",
]

#: The runner modes a task can ask for in ``extra["runner"]``.
RUNNER_MODES = ("trusted", "harness")

#: Words in a dataset name (lowercased, letters and digits only) that make it of the SWE-bench
#: family: its test ids are a harness parser's, its tasks run in harness mode.
HARNESS_DATASETS = ("swebench", "swegym", "swesmith", "r2egym", "swerebench")

#: Parsers whose runner takes one more test file (or django label) next to the test patch's:
#: these runs get sentinel tests. sympy's ``bin/test`` (its parser skips a file's last test) and
#: mypy's ``-k`` cases are left without.
SENTINEL_PARSERS = frozenset(
    {"pytest", "pytest_options", "pytest_v2", "matplotlib", "seaborn", "pydantic", "swesmith", "django"}
)

#: The conda layout of the SWE-bench family's images.
CONDA_ACTIVATE = "/opt/miniconda3/bin/activate"
CONDA_ENV = "testbed"


def _field(task: Any, name: str) -> Any:
    return task.get(name) if isinstance(task, dict) else getattr(task, name, None)


def _extra(task: Any) -> Mapping[str, Any]:
    if isinstance(task, dict):
        return task
    extra = getattr(task, "extra", None)
    return extra if isinstance(extra, Mapping) else {}


def _spec_from_mapping(value: Mapping[str, Any]) -> RepoSpec:
    names = {f.name for f in dataclasses.fields(RepoSpec)}
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in value.items() if k in names}
    return RepoSpec(**fields)


def task_spec(task: Any) -> RepoSpec | None:
    """The harness spec a task carries, or None (then it runs under the trusted runner).

    In order: ``extra["harness_spec"]`` (a `RepoSpec`, or its fields as a mapping, as the
    loaders of ``swerepair.envs.sources`` store it so that a task stays JSON); an
    ``install_config`` column (`spec_from_install_config`); a dataset of the SWE-bench family in
    ``extra["dataset"]`` (`spec_for(repo, version)`).

    >>> from swerepair.core import Task
    >>> t = Task("django__django-1", "django/django", "c", "", "", "", (), (),
    ...          extra={"dataset": "princeton-nlp/SWE-bench_Verified", "version": "5.0"})
    >>> task_spec(t).parser, task_spec(Task("x", "o/r", "c", "", "", "", (), ())) is None
    ('django', True)
    """
    extra = _extra(task)
    repo = str(_field(task, "repo") or "")
    version = extra.get("version")
    version = None if version is None else str(version)
    given = extra.get("harness_spec")
    if isinstance(given, RepoSpec):
        return given
    # A malformed stored spec or install_config still marks a harness task: the table's spec
    # for its repository and version stands in (a reward must not raise on a row).
    if isinstance(given, Mapping):
        try:
            return _spec_from_mapping(given)
        except (TypeError, ValueError):
            return spec_for(repo, version)
    config = extra.get("install_config")
    if isinstance(config, Mapping):
        try:
            return spec_from_install_config(repo, version or "", config)
        except (KeyError, TypeError, ValueError):
            return spec_for(repo, version)
    dataset = extra.get("dataset")
    if isinstance(dataset, str):
        key = "".join(ch for ch in dataset.lower() if ch.isalnum())
        if any(word in key for word in HARNESS_DATASETS):
            return spec_for(repo, version)
    return None


def runner_mode(task: Any) -> str:
    """``"trusted"`` or ``"harness"`` for `task` (the rule is in the module docstring).

    >>> from swerepair.core import Task
    >>> runner_mode(Task("x", "o/r", "c", "", "", "", (), ()))
    'trusted'
    >>> runner_mode(Task("x", "o/r", "c", "", "", "", (), (), extra={"dataset": "SWE-Gym/SWE-Gym"}))
    'harness'
    >>> runner_mode(Task("x", "o/r", "c", "", "", "", (), (), extra={"dataset": "swe-bench", "runner": "trusted"}))
    'trusted'
    """
    explicit = _extra(task).get("runner")
    if explicit in RUNNER_MODES:
        return str(explicit)
    return "harness" if task_spec(task) is not None else "trusted"


def needs_reinstall(spec: RepoSpec) -> bool:
    """Whether the harness's reinstall before the tests matters: an install that copies the
    package (``python setup.py install``, ``pip install .``) must be run again for the patch to
    be what the tests import; an editable one (``-e``, ``develop``) already points at the tree.

    >>> needs_reinstall(spec_for("django/django", "2.2")), needs_reinstall(spec_for("django/django", "5.0"))
    (True, False)
    """
    words = spec.install.split()
    if not words:
        return False
    return not any(w in ("-e", "--editable", "develop") or w.startswith("--editable=") for w in words)


def harness_prelude(spec: RepoSpec) -> str:
    """The bash run before the test command: environment, ``eval_commands``, a reinstall.

    The environment is the SWE-bench layout's (``conda activate testbed``) where the image has
    it; elsewhere (a local checkout in the bubblewrap or local sandbox) the sandbox's own
    interpreter is used and nothing is installed. Failures are not fatal, as in the harness's
    eval script (which runs without ``set -e``).
    """
    lines = [
        f"if [ -f {CONDA_ACTIVATE} ]; then . {CONDA_ACTIVATE} && conda activate {CONDA_ENV}; fi",
        *spec.eval_commands,
    ]
    if needs_reinstall(spec):
        # Only inside the instance's own environment (never into the host's interpreter), and
        # offline: the verifier has no network, and pip's build isolation would fetch.
        lines.append(
            f'if [ "${{CONDA_DEFAULT_ENV:-}}" = {CONDA_ENV} ]; then '
            "PIP_NO_INDEX=1 PIP_NO_BUILD_ISOLATION=0 PIP_DISABLE_PIP_VERSION_CHECK=1 "
            f"{spec.install}; fi"
        )
    return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class Sentinel:
    """Two tests added next to the test patch: ``pass_name`` must pass, ``fail_name`` must fail.

    Attributes:
        path: the new file, relative to the repository root.
        text: its content.
        pass_name / fail_name: the test functions' names (with the sentinel's nonce).
    """

    path: str
    text: str
    pass_name: str
    fail_name: str

    def find(self, verdicts: Mapping[str, Any]) -> dict[str, str]:
        """The sentinels' verdicts in a parser's result: ``{"pass": ..., "fail": ...}``."""
        found = {"pass": "MISSING", "fail": "MISSING"}
        for test_id, verdict in verdicts.items():
            for which, name in (("pass", self.pass_name), ("fail", self.fail_name)):
                if name in test_id:
                    found[which] = str(getattr(verdict, "value", verdict))
        return found

    def owns(self, test_id: str) -> bool:
        """Whether a parser's id is one of the sentinels'."""
        return self.pass_name in test_id or self.fail_name in test_id


_PYTEST_SENTINEL = '''"""swerepair's sentinel tests for this verifier run (not part of the repository)."""


def {pass_name}():
    pass


def {fail_name}():
    raise AssertionError("swerepair sentinel: this test must fail")
'''

_UNITTEST_SENTINEL = '''"""swerepair's sentinel tests for this verifier run (not part of the repository)."""

import unittest


class SwerepairSentinel(unittest.TestCase):
    def {pass_name}(self):
        pass

    def {fail_name}(self):
        raise AssertionError("swerepair sentinel: this test must fail")
'''


def make_sentinel(
    spec: RepoSpec, test_patch: str, tag: str | None = None, test_ids: Sequence[str] = ()
) -> Sentinel | None:
    """The sentinel module for a run of `spec` on `test_patch`, or None where the runner does
    not allow one (see `SENTINEL_PARSERS`) or there is no Python test file to put it next to:
    the test patch's first, else (a task without a test patch, SWE-smith's) the file of the
    first pytest-style test id. `tag` is the sentinel's nonce (random by default)."""
    if spec.parser not in SENTINEL_PARSERS or spec.directives not in ("paths", "django"):
        return None
    tag = tag or secrets.token_hex(8)
    paths = [p for p in _patch_targets(test_patch) if p.endswith(".py")]
    if not paths and spec.parser != "django":
        paths = [t.split("::", 1)[0] for t in test_ids if "::" in t and t.split("::", 1)[0].endswith(".py")]
    if not paths or any(part in ("", "..") or part.startswith("/") for part in paths[0].split("/")):
        return None
    first = PurePosixPath(paths[0])
    pass_name, fail_name = f"test_swerepair_pass_{tag}", f"test_swerepair_fail_{tag}"
    if spec.parser == "django":
        name, template = f"swerepair_sentinel_{tag}.py", _UNITTEST_SENTINEL
    else:
        # named like its neighbour, so that the repository's collection rules pick it up
        suffixed = first.name.endswith("_test.py")
        name = f"swerepair_sentinel_{tag}_test.py" if suffixed else f"test_swerepair_sentinel_{tag}.py"
        template = _PYTEST_SENTINEL
    path = str(first.parent / name) if str(first.parent) != "." else name
    return Sentinel(path, template.format(pass_name=pass_name, fail_name=fail_name), pass_name, fail_name)


def _patch_targets(patch: str) -> list[str]:
    return test_directives(RepoSpec(repo="", version="", python=None, test_cmd="", parser="pytest"), patch)


def _with_sentinel(spec: RepoSpec, test_patch: str, sentinel: Sentinel | None) -> str:
    """The test command, with the sentinel's file (or django label) among the directives. A
    command without directives (an empty test patch: the whole suite runs) gets none: the
    sentinel is then collected with the suite, if at all."""
    if sentinel is None or not test_directives(spec, test_patch):
        return test_command(spec, test_patch)
    header = f"diff --git a/{sentinel.path} b/{sentinel.path}\n"
    return test_command(spec, (test_patch or "").rstrip("\n") + "\n" + header)


@lru_cache(maxsize=1)
def wrapper_source() -> str:
    """The wrapper's Python source (``_harness_main.py``)."""
    return (Path(__file__).with_name("_harness_main.py")).read_text(encoding="utf-8")


def _section(output: str, nonce: str) -> tuple[str | None, int | None]:
    """The text between the run's own markers, and the exit status in the end marker."""
    start = f">>>>> Start Test Output {nonce}\n"
    end = f"\n>>>>> End Test Output {nonce} exit="
    i = output.find(start)
    if i < 0:
        return None, None
    j = output.find(end, i + len(start))
    if j < 0:
        return output[i + len(start) :], None
    tail = output[j + len(end) :].split("\n", 1)[0].strip()
    try:
        status: int | None = int(tail)
    except ValueError:
        status = None
    return output[i + len(start) : j], status


def run_harness(
    sandbox: Sandbox,
    spec: RepoSpec,
    test_patch: str,
    test_ids: Sequence[str],
    timeout: float,
    *,
    sentinels: bool = True,
) -> RunnerReport:
    """Run the harness's test command for `test_patch` in `sandbox` (already patched, test patch
    applied) and read every verdict with the spec's parser (module docstring).

    The report's ``verdicts`` hold the parser's ids (sentinels excluded) for every test the
    runner reported; ``problems`` the sentinels' definite contradictions; ``sentinels`` their
    verdicts for the caller's remaining check.
    """
    if spec.parser not in PARSERS:  # a task set's error: reported as a runner that cannot start
        result = ExecResult(output=f"the harness spec names no known log parser: {spec.parser!r}", exit_code=2)
        return RunnerReport(False, False, {}, None, (), (), (), None, result, mode="harness", reported=False)
    sentinel = make_sentinel(spec, test_patch, test_ids=test_ids) if sentinels else None
    if sentinel is not None:
        try:
            sandbox.write_file(sentinel.path, sentinel.text)
        except (OSError, ValueError):
            sentinel = None  # the directory is not writable, a symlink, ...: run without
    command = _with_sentinel(spec, test_patch, sentinel)
    nonce = secrets.token_hex(16)
    config = {"nonce": nonce, "prelude": harness_prelude(spec), "command": command}
    launcher = (
        'p=$(command -v python3 || command -v python) || { echo "swerepair: no python in the sandbox"; exit 127; }; '
        f'exec "$p" -I -B -c {shlex.quote(wrapper_source())}'
    )
    run = sandbox.run
    try:
        result = run(launcher, timeout, stdin=json.dumps(config) + "\n", max_output_bytes=16 << 20)  # type: ignore[call-arg]
    except TypeError:  # a user's sandbox without the output-limit keyword
        result = run(launcher, timeout, stdin=json.dumps(config) + "\n")
    section, status = _section(result.output, nonce)
    parsed = PARSERS[spec.parser](section) if section is not None else {}
    verdicts = {
        test_id: str(getattr(v, "value", v))
        for test_id, v in parsed.items()
        if sentinel is None or not sentinel.owns(test_id)
    }
    found = sentinel.find(parsed) if sentinel is not None else {}
    problems: list[str] = []
    if found:
        if found["fail"] not in ("FAILED", "ERROR", "MISSING"):
            problems.append(f"the sentinel test that must fail was reported {found['fail']}")
        if found["pass"] not in ("PASSED", "MISSING"):
            problems.append(f"the sentinel test that must pass was reported {found['pass']}")
        if found["pass"] == "PASSED" and found["fail"] == "MISSING":
            problems.append("the sentinel test that must fail was not reported, though the one that must pass was")
    finished = status is not None and not result.timed_out and result.killed_reason is None
    # Listed ids the runner did not report, in a run that did report: unknown to the runner
    # (or written in a form its parser does not read). Only these are MISSING.
    unreported = (
        {
            t: f"the runner did not report it (no such test, or no line the {spec.parser!r} parser reads)"
            for t in test_ids
            if t not in verdicts
        }
        if finished and parsed
        else {}
    )
    return RunnerReport(
        started=section is not None,
        finished=finished,
        verdicts=verdicts,
        exit_code=status,
        problems=tuple(problems),
        plugins=(),
        collect_errors=(),
        aborted=None,
        result=result,
        not_found=unreported,
        mode="harness",
        sentinels=found,
        reported=bool(parsed),
        command=command,
    )


def harness_spec_for(task: Any, mode: str) -> RepoSpec | None:
    """The spec a run of `task` in `mode` uses: the task's own (`task_spec`); in harness mode a
    task without one gets `spec_for`'s fallback for its repository and version."""
    spec = task_spec(task)
    if spec is None and mode == "harness":
        version = _extra(task).get("version")
        spec = spec_for(str(_field(task, "repo") or ""), None if version is None else str(version))
    return spec


def run_task_tests(
    sandbox: Sandbox, task: Any, test_ids: Sequence[str], timeout: float, mode: str | None = None
) -> RunnerReport:
    """Run `test_ids` of `task` in `sandbox` (patch and test patch already applied) under the
    task's runner: `mode`, default `runner_mode(task)`."""
    mode = mode or runner_mode(task)
    spec = harness_spec_for(task, mode)
    if mode == "harness" and spec is not None:
        return run_harness(sandbox, spec, _field(task, "test_patch") or "", test_ids, timeout)
    return run_trusted(sandbox, test_ids, timeout)
