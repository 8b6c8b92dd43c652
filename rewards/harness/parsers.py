"""Log parsers: a test runner's output in, ``{test id: TestStatus}`` out, as the harness reads it.

Each parser is the reading the official harness applies to the log of one runner, re-expressed
here (origin: SWE-bench ``swebench/harness/log_parsers/python.py`` of release 5.0.2, the newest
release; release 4.1.0, whose spec table `specs` holds, reads the same lines except that 5.0.2
added the ``SKIPPED [N]`` guard to the pytest parsers, ids with spaces and the cut ``FAILED``
message to ``pytest_v2``, and the bare-status-line guard to ``seaborn``), plus the two parsers
SWE-Gym and SWE-smith add:

- ``pytest``: the ``-rA`` short summary, ``STATUS node-id [- message]`` lines; a test id is the
  one token after the status (parametrized ids containing spaces are cut at the first space,
  as the harness cuts them, and the datasets' test lists carry the cut ids).
- ``pytest_options``: the same, but an id whose parameter is an absolute path keeps only the
  path's last component (``test_x[/tmp/a/b.txt]`` -> ``test_x[/b.txt]``): the temporary
  directories of the run are not part of the id (requests, pylint, pydicom).
- ``pytest_v2``: ANSI colour codes and control characters removed; the id is the rest of the
  line (ids with spaces survive), a ``FAILED`` line's `` - message`` is cut off; also reads the
  ``node-id STATUS`` lines of ``-v`` output when the summary is missing (astropy,
  scikit-learn, sphinx).
- ``matplotlib``: ``pytest`` after spelling ``MouseButton.LEFT``/``RIGHT`` as ``1``/``3``
  (parameter ids changed spelling between matplotlib releases).
- ``seaborn``: ``FAILED id``, ``PASSED id`` and ``id PASSED [ 50%]`` lines only.
- ``django``: ``tests/runtests.py --verbosity 2``: ``test_x (module.Class) ... ok`` (and
  ``test_x (module.Class.test_x)`` from Python 3.11's unittest), ``... skipped 'why'``,
  ``... FAIL``, ``... ERROR``, ``FAIL: x``/``ERROR: x`` headers, an ``ok`` on a line of its own
  after output the test printed, and the docstring form: a test with a docstring is reported as
  ``test_x (module.Class)`` on one line and ``First docstring line. ... ok`` on the next, and
  the harness's id is then the docstring line. ``expected failure`` and ``unexpected success``
  are not read (the harness does not read them; those tests are absent from the result).
- ``sympy``: ``bin/test --verbose``: ``test_x ok``/``test_x F``/``test_x E`` lines, and the
  ``____ path.py:test_x ____`` headers of the failure report (FAILED). ``f`` (expected
  failure), ``X`` (unexpected pass), ``s``/``w``/``T``/``K`` (skipped) are not read, as the
  harness does not read them.
- ``pydantic``: SWE-Gym's variant of ``pytest_v2`` for pydantic (``FAILED [ 12%]`` progress
  suffixes removed; ids are single tokens) (origin: SWE-Gym/SWE-Bench-Fork
  ``swebench/harness/log_parsers.py`` at 242429c1, ``parse_log_pytest_pydantic``).
- ``swesmith``: SWE-smith's ``PythonProfile.log_parser``: ``node-id STATUS ...`` lines of
  ``pytest --verbose`` (origin: SWE-smith ``swesmith/profiles/python.py``).

Differences from the harness, all in what never reaches a test id:

- no parser raises: a bare ``FAIL:`` line (an ``IndexError`` in the harness's django parser)
  or a status word alone on a line is skipped;
- a status token that is not one of `TestStatus` (``ERROR:`` of ``ERROR: file or directory not
  found``, ``PASSEDfoo``) removes that id from the result instead of recording the token: the
  harness records the token, and its grading counts such a test as neither passed nor failed;
  here it is absent, which grading counts as not passed, the same verdict for a listed test.

`parse_log(spec, log)` also does what the harness's grading does first: when the log carries
the eval script's ``>>>>> Start Test Output`` / ``>>>>> End Test Output`` markers, only the text
between them is parsed (the whole log if that part yields nothing, as in 5.0.2).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from enum import Enum
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from swerepair.rewards.harness.specs import RepoSpec

__all__ = [
    "END_TEST_OUTPUT",
    "PARSERS",
    "START_TEST_OUTPUT",
    "LogParser",
    "TestStatus",
    "parse_log",
    "parse_log_django",
    "parse_log_matplotlib",
    "parse_log_pydantic",
    "parse_log_pytest",
    "parse_log_pytest_options",
    "parse_log_pytest_v2",
    "parse_log_seaborn",
    "parse_log_swesmith",
    "parse_log_sympy",
    "test_output_section",
]


class TestStatus(str, Enum):
    """A test's verdict, with the harness's spelling (its values are the log's words)."""

    __test__ = False  # not a pytest test class, whatever its name

    PASSED = "PASSED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
    ERROR = "ERROR"
    XFAIL = "XFAIL"


LogParser = Callable[[str], dict[str, TestStatus]]

#: The statuses in the harness's order (the order in which ``line.startswith`` tries them).
_STATUSES: tuple[str, ...] = ("FAILED", "PASSED", "SKIPPED", "ERROR", "XFAIL")
_BY_VALUE: dict[str, TestStatus] = {status.value: status for status in TestStatus}
#: pytest's ``SKIPPED [N] path:line: reason`` summary: ``[N]`` counts skips, it is not a test.
_SKIP_SUMMARY_COUNT = re.compile(r"^\[\d+\]$")
#: The markers the harness's eval script prints around the test command (``: '>>>>> ...'``).
START_TEST_OUTPUT = ">>>>> Start Test Output"
END_TEST_OUTPUT = ">>>>> End Test Output"


def _record(result: dict[str, TestStatus], test: str, token: str) -> None:
    """``result[test] = token`` as the harness stores it, for tokens that are a status."""
    status = _BY_VALUE.get(token)
    if status is None:
        result.pop(test, None)  # the harness stores the token: a verdict that is not a pass
    else:
        result[test] = status


def _starts_with_status(line: str) -> bool:
    return line.startswith(_STATUSES)


def _is_skip_summary(status: str, name: str) -> bool:
    # Only SKIPPED: the harness keeps ``PASSED [100%]`` (a wrapped progress line), because two
    # pytest-dev instances list ``[100%]`` in PASS_TO_PASS.
    return status == "SKIPPED" and bool(_SKIP_SUMMARY_COUNT.match(name))


def _summary_fields(line: str) -> list[str] | None:
    """The fields of a ``-rA`` summary line (``FAILED``'s `` - `` joined away), or None."""
    if not _starts_with_status(line):
        return None
    if line.startswith("FAILED"):
        line = line.replace(" - ", " ")
    fields = line.split()
    if len(fields) <= 1 or _is_skip_summary(fields[0], fields[1]):
        return None
    return fields


def parse_log_pytest(log: str) -> dict[str, TestStatus]:
    """pytest ``-rA`` summary lines: ``STATUS id``; the id is the token after the status."""
    result: dict[str, TestStatus] = {}
    for line in log.split("\n"):
        fields = _summary_fields(line)
        if fields is not None:
            _record(result, fields[1], fields[0])
    return result


_OPTION = re.compile(r"(.*?)\[(.*)\]")


def parse_log_pytest_options(log: str) -> dict[str, TestStatus]:
    """`parse_log_pytest`, with an absolute-path parameter cut to its last component."""
    result: dict[str, TestStatus] = {}
    for line in log.split("\n"):
        fields = _summary_fields(line)
        if fields is None:
            continue
        name = fields[1]
        option = _OPTION.search(name)
        if option:
            main, param = option.groups()
            if param.startswith("/") and not param.startswith("//") and "*" not in param:
                param = "/" + param.split("/")[-1]
            name = f"{main}[{param}]"
        _record(result, name, fields[0])
    return result


_COLOUR_CODE = re.compile(r"\[(\d+)m")
_CONTROL = str.maketrans("", "", "".join(chr(code) for code in range(1, 32)))


def _clean(line: str) -> str:
    """The harness's cleaning: ``[NNm`` colour codes, then every control character, removed."""
    return _COLOUR_CODE.sub("", line).translate(_CONTROL)


def parse_log_pytest_v2(log: str) -> dict[str, TestStatus]:
    """pytest output, coloured or not: ``STATUS id with spaces`` or ``id STATUS`` lines."""
    result: dict[str, TestStatus] = {}
    for raw in log.split("\n"):
        line = _clean(raw)
        if _starts_with_status(line):
            if line.startswith("FAILED"):
                line = line.split(" - ", 1)[0]  # the assertion message never enters the id
            fields = line.split()
            if len(fields) >= 2 and not _is_skip_summary(fields[0], fields[1]):
                _record(result, " ".join(fields[1:]), fields[0])
        elif line.endswith(_STATUSES):
            fields = line.split()
            if len(fields) >= 2:
                _record(result, " ".join(fields[:-1]), fields[-1])
    return result


def parse_log_matplotlib(log: str) -> dict[str, TestStatus]:
    """`parse_log_pytest` with ``MouseButton.LEFT``/``RIGHT`` read as ``1``/``3``."""
    result: dict[str, TestStatus] = {}
    for line in log.split("\n"):
        fields = _summary_fields(line.replace("MouseButton.LEFT", "1").replace("MouseButton.RIGHT", "3"))
        if fields is not None:
            _record(result, fields[1], fields[0])
    return result


def parse_log_seaborn(log: str) -> dict[str, TestStatus]:
    """``FAILED id``, ``PASSED id`` and ``id PASSED [ 50%]`` lines."""
    result: dict[str, TestStatus] = {}
    for line in log.split("\n"):
        fields = line.split()
        if len(fields) < 2:
            continue
        if line.startswith("FAILED"):
            result[fields[1]] = TestStatus.FAILED
        elif " PASSED " in line:
            if fields[1] == "PASSED":
                result[fields[0]] = TestStatus.PASSED
        elif line.startswith("PASSED"):
            result[fields[1]] = TestStatus.PASSED
    return result


_DJANGO_PASS_SUFFIXES = (" ... ok", " ... OK", " ...  OK")
#: Test results the harness finds where a long message printed by django itself split the
#: ``test ... ok`` line in two (seen in three forms).
_DJANGO_SPLIT_PASSES = (
    re.compile(r"^(.*?)\s\.\.\.\sTesting\ against\ Django\ installed\ in\ ((?s:.*?))\ silenced\)\.\nok$", re.MULTILINE),
    re.compile(r"^(.*?)\s\.\.\.\sInternal\ Server\ Error:\ \/(.*)\/\nok$", re.MULTILINE),
    re.compile(r"^(.*?)\s\.\.\.\sSystem check identified no issues \(0 silenced\)\nok$", re.MULTILINE),
)


def parse_log_django(log: str) -> dict[str, TestStatus]:
    """django's ``runtests.py --verbosity 2``: ``name ... ok|FAIL|ERROR|skipped`` and friends."""
    result: dict[str, TestStatus] = {}
    previous: str | None = None
    for raw in log.split("\n"):
        line = raw.strip()
        # A test whose report spans lines; the harness records it whenever the text appears.
        if "--version is equivalent to version" in line:
            result["--version is equivalent to version"] = TestStatus.PASSED
        if " ... " in line:
            previous = line.split(" ... ")[0]
        for suffix in _DJANGO_PASS_SUFFIXES:
            if line.endswith(suffix):
                # one instance (django__django-7188) prints a migration line before its result
                if line.startswith("Applying sites.0002_alter_domain_unique...test_no_migrations"):
                    line = line.split("...", 1)[-1].strip()
                result[line.rsplit(suffix, 1)[0]] = TestStatus.PASSED
                break
        if " ... skipped" in line:
            result[line.split(" ... skipped")[0]] = TestStatus.SKIPPED
        if line.endswith(" ... FAIL"):
            result[line.split(" ... FAIL")[0]] = TestStatus.FAILED
        if line.startswith("FAIL:") and len(line.split()) > 1:
            result[line.split()[1]] = TestStatus.FAILED
        if line.endswith(" ... ERROR"):
            result[line.split(" ... ERROR")[0]] = TestStatus.ERROR
        if line.startswith("ERROR:") and len(line.split()) > 1:
            result[line.split()[1]] = TestStatus.ERROR
        # ``ok`` alone on a line: the last test passed after printing something of its own
        if line.startswith("ok") and previous is not None:
            result[previous] = TestStatus.PASSED
    for pattern in _DJANGO_SPLIT_PASSES:
        for match in pattern.finditer(log):
            result[match.group(1)] = TestStatus.PASSED
    return result


#: The header sympy's runner prints above each failure's traceback: ``____ path.py:test_x ____``.
_SYMPY_FAILURE_HEADER = re.compile(r"(_*) (.*)\.py:(.*) (_*)")


def parse_log_sympy(log: str) -> dict[str, TestStatus]:
    """sympy's ``bin/test --verbose``: ``test_x ok|F|E`` lines and failure-report headers."""
    result: dict[str, TestStatus] = {}
    for match in _SYMPY_FAILURE_HEADER.findall(log):
        result[f"{match[1]}.py:{match[2]}"] = TestStatus.FAILED
    for raw in log.split("\n"):
        line = raw.strip()
        if not line.startswith("test_"):
            continue
        name = line.split()[0]
        if line.endswith(" E"):
            result[name] = TestStatus.ERROR
        if line.endswith(" F"):
            result[name] = TestStatus.FAILED
        if line.endswith(" ok"):
            result[name] = TestStatus.PASSED
    return result


_PROGRESS_AFTER_FAILED = re.compile(r"FAILED\s*\[.*?\]")


def parse_log_pydantic(log: str) -> dict[str, TestStatus]:
    """SWE-Gym's pydantic parser: `parse_log_pytest_v2`'s cleaning, single-token ids."""
    result: dict[str, TestStatus] = {}
    for raw in log.split("\n"):
        line = _PROGRESS_AFTER_FAILED.sub("FAILED", _clean(raw))
        if _starts_with_status(line):
            if line.startswith("FAILED"):
                line = line.replace(" - ", " ")
            fields = line.split()
            if len(fields) >= 2:
                _record(result, fields[1], fields[0])
        elif line.endswith(_STATUSES):
            fields = line.split()
            if len(fields) >= 2:
                _record(result, fields[0], fields[1])
    return result


_SWESMITH_LINE = re.compile(r"^(\S+)\s+(FAILED|PASSED|SKIPPED|ERROR|XFAIL)")


def parse_log_swesmith(log: str) -> dict[str, TestStatus]:
    """SWE-smith's pytest ``--verbose`` lines: ``node-id STATUS [ 12%]``."""
    result: dict[str, TestStatus] = {}
    for line in log.split("\n"):
        match = _SWESMITH_LINE.match(line)
        if match:
            result[match.group(1)] = _BY_VALUE[match.group(2)]
    return result


#: Every parser by the name a `RepoSpec` gives in its ``parser`` field.
PARSERS: Mapping[str, LogParser] = MappingProxyType(
    {
        "pytest": parse_log_pytest,
        "pytest_options": parse_log_pytest_options,
        "pytest_v2": parse_log_pytest_v2,
        "matplotlib": parse_log_matplotlib,
        "seaborn": parse_log_seaborn,
        "django": parse_log_django,
        "sympy": parse_log_sympy,
        "pydantic": parse_log_pydantic,
        "swesmith": parse_log_swesmith,
    }
)


def test_output_section(log: str) -> str | None:
    """The text between the eval script's start and end markers, or None without both."""
    if START_TEST_OUTPUT not in log or END_TEST_OUTPUT not in log:
        return None
    return log.split(START_TEST_OUTPUT, 1)[1].split(END_TEST_OUTPUT)[0]


def parse_log(spec: RepoSpec | str, log: str) -> dict[str, TestStatus]:
    """The verdicts the harness reads from `log` for an instance of `spec` (or a parser name).

    With both output markers in the log only the text between them is parsed; if that yields
    nothing, the whole log is (the harness's fallback for runners whose output lands outside).
    """
    parser = PARSERS[spec if isinstance(spec, str) else spec.parser]
    section = test_output_section(log)
    if section is not None:
        result = parser(section)
        if result:
            return result
    return parser(log)


test_output_section.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
