# ruff: noqa: SIM102, SIM105
# The trusted pytest runner. This file is not imported by swerepair: its source is sent to
# `python -I -B -c` inside the verifier sandbox. It reads one JSON line from stdin:
#   {"nonce": str, "tests": [test ids], "watch": [module names whose origin must not move]}
# and writes records "<nonce> <json>" on its own duplicate of stdout, each on a line of its
# own. Nothing of the repository is imported before pytest itself is, and the repository's
# directory goes to the END of sys.path, so no repository file can shadow pytest or the
# standard library.
import json
import os
import sys

_cfg = json.loads(sys.stdin.readline())
_NONCE = _cfg["nonce"]
_OUT = os.dup(1)
os.set_inheritable(_OUT, False)


def _emit(kind, **data):
    data["kind"] = kind
    os.write(_OUT, ("\n" + _NONCE + " " + json.dumps(data) + "\n").encode())


_emit("start")
for _var in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTHONPATH", "PYTHONSTARTUP"):
    os.environ.pop(_var, None)
_CWD = os.getcwd()
sys.path[:] = [p for p in sys.path if p not in ("", ".", _CWD)]

import pytest  # noqa: E402

sys.path.append(_CWD)

# What must still be the same objects when the session ends (tests' own monkeypatches are
# undone by then). Names a pytest version lacks are skipped.
_GUARDED_NAMES = (
    "_pytest.runner.runtestprotocol",
    "_pytest.runner.call_and_report",
    "_pytest.runner.call_runtest_hook",
    "_pytest.runner.CallInfo.from_call",
    "_pytest.runner.check_interactive_exception",
    "_pytest.runner.pytest_runtest_makereport",
    "_pytest.runner.pytest_runtest_protocol",
    "_pytest.reports.TestReport.from_item_and_call",
    "_pytest.reports.TestReport.__init__",
    "_pytest.reports.BaseReport.passed",
    "_pytest.reports.BaseReport.failed",
    "_pytest.reports.BaseReport.skipped",
    "_pytest.skipping.pytest_runtest_makereport",
    "_pytest.skipping.pytest_runtest_call",
    "_pytest.python.pytest_pyfunc_call",
    "_pytest.python.Function.runtest",
    "_pytest.main.pytest_runtestloop",
    "_pytest.main.Session.perform_collect",
    "_pytest.outcomes.exit",
    "_pytest.outcomes.skip",
    "_pytest.outcomes.xfail",
    "pluggy.PluginManager.register",
    "pluggy.HookCaller.__call__",
    "pluggy._hooks.HookCaller.__call__",
    "pluggy._hooks._HookCaller.__call__",
    "pluggy._callers._multicall",
    "pluggy._manager.PluginManager._hookexec",
    "os._exit",
    "sys.exit",
)


def _resolve(dotted):
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        obj = sys.modules.get(".".join(parts[:i]))
        if obj is None:
            continue
        for attr in parts[i:]:
            obj = obj.__dict__[attr] if isinstance(obj, type) and attr in obj.__dict__ else getattr(obj, attr)
        return obj
    raise LookupError(dotted)


_GUARDED = {}
for _name in _GUARDED_NAMES:
    try:
        _GUARDED[_name] = _resolve(_name)
    except Exception:
        pass
_EXIT = os._exit
_MODULES = {name: getattr(mod, "__file__", None) for name, mod in list(sys.modules.items())}


class _Sentinel(pytest.Item):
    """A test of the runner itself: `fails` says which verdict it must get."""

    def __init__(self, *, fails, **kw):
        super().__init__(**kw)
        self.fails = fails

    def runtest(self):
        if self.fails:
            raise AssertionError("sentinel: this test must fail")

    def reportinfo(self):
        return "", 0, self.name


class _Reporter:
    def __init__(self):
        self.phases = {}
        self.sentinels = {}
        self.plugins = []

    def pytest_collection_modifyitems(self, session, config, items):
        tag = _NONCE[:12]
        made = []
        for i, fails in enumerate((True, False, False, True)):
            name = f"swerepair_sentinel_{tag}_{i}"
            item = _Sentinel.from_parent(session, name=name, fails=fails)
            self.sentinels[item.nodeid] = "FAILED" if fails else "PASSED"
            made.append(item)
        items[:0] = made[:2]
        items.extend(made[2:])

    def pytest_collectreport(self, report):
        if report.failed:
            _emit("collect_error", nodeid=report.nodeid, text=str(report.longrepr)[-2000:])

    def pytest_runtest_logreport(self, report):
        self.phases.setdefault(report.nodeid, []).append(
            (report.when, report.outcome, bool(getattr(report, "wasxfail", None) is not None))
        )

    def pytest_runtest_logfinish(self, nodeid, location):
        _emit("verdict", nodeid=nodeid, verdict=_verdict(self.phases.get(nodeid, [])))

    def pytest_sessionfinish(self, session, exitstatus):
        for plugin in session.config.pluginmanager.get_plugins():
            mod = plugin if hasattr(plugin, "__file__") else sys.modules.get(type(plugin).__module__)
            path = getattr(mod, "__file__", None)
            if isinstance(path, str) and os.path.realpath(path).startswith(_CWD + os.sep):
                self.plugins.append(os.path.relpath(os.path.realpath(path), _CWD))


def _verdict(phases):
    verdict = "MISSING"
    for when, outcome, xfail in phases:
        if when == "setup":
            verdict = "ERROR" if outcome == "failed" else ("SKIPPED" if outcome == "skipped" else verdict)
            if outcome == "skipped" and xfail:
                verdict = "XFAIL"
        elif when == "call":
            if xfail:
                verdict = "XFAIL" if outcome == "skipped" else ("XPASS" if outcome == "passed" else "FAILED")
            else:
                verdict = {"passed": "PASSED", "failed": "FAILED", "skipped": "SKIPPED"}[outcome]
        elif when == "teardown" and outcome == "failed" and verdict in ("PASSED", "XFAIL", "XPASS", "MISSING"):
            verdict = "ERROR"
    return verdict


_reporter = _Reporter()
try:
    _code = pytest.main(
        [
            *("-p", "no:cacheprovider", "-q", "--color=no", "--maxfail=0"),
            *("-o", "console_output_style=classic"),
            *_cfg["tests"],
        ],
        plugins=[_reporter],
    )
except BaseException as _exc:
    _emit("aborted", error=f"{type(_exc).__name__}: {_exc}"[:500])
    raise
_problems = []
for _name, _obj in _GUARDED.items():
    try:
        _now = _resolve(_name)
    except Exception:
        _problems.append(f"{_name} is gone")
        continue
    if _now is not _obj:
        _problems.append(f"{_name} was replaced")
for _name, _file in _MODULES.items():
    _mod = sys.modules.get(_name)
    if _mod is None or getattr(_mod, "__file__", None) != _file:
        if _name.split(".")[0] in ("pytest", "_pytest", "pluggy"):
            _problems.append(f"module {_name} was replaced")
# The sentinels: the first two run before any real test, the last two after all of them. A
# session stopped by collection errors (exit 2) runs none; otherwise each must have its verdict.
_ran_real = any(n not in _reporter.sentinels for n in _reporter.phases)
for _i, (_nodeid, _expected) in enumerate(_reporter.sentinels.items()):
    _got = _verdict(_reporter.phases.get(_nodeid, []))
    if _got == "MISSING" and _code == 2 and not (_i < 2 and _ran_real):
        continue
    if _got != _expected:
        _problems.append(f"sentinel test {_nodeid} was reported {_got}, not {_expected}")
_emit("finish", exit_code=int(_code), problems=_problems, plugins=sorted(set(_reporter.plugins)))
sys.stdout.flush()
_EXIT(0)
