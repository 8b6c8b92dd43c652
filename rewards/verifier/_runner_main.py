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

import _pytest.main  # noqa: E402
import _pytest.outcomes  # noqa: E402
import _pytest.python  # noqa: E402
import _pytest.reports  # noqa: E402
import _pytest.runner  # noqa: E402
import _pytest.skipping  # noqa: E402
import pluggy  # noqa: E402
import pytest  # noqa: E402

sys.path.append(_CWD)

# What must still be the same objects when the session ends (tests' own monkeypatches are
# undone by then).
_GUARDED = {
    "_pytest.runner.runtestprotocol": _pytest.runner.runtestprotocol,
    "_pytest.runner.call_and_report": _pytest.runner.call_and_report,
    "_pytest.runner.call_runtest_hook": _pytest.runner.call_runtest_hook,
    "_pytest.runner.CallInfo.from_call": _pytest.runner.CallInfo.__dict__["from_call"],
    "_pytest.runner.pytest_runtest_makereport": _pytest.runner.pytest_runtest_makereport,
    "_pytest.reports.TestReport.from_item_and_call": _pytest.reports.TestReport.__dict__["from_item_and_call"],
    "_pytest.reports.TestReport.__init__": _pytest.reports.TestReport.__init__,
    "_pytest.reports.BaseReport.passed": _pytest.reports.BaseReport.__dict__["passed"],
    "_pytest.reports.BaseReport.failed": _pytest.reports.BaseReport.__dict__["failed"],
    "_pytest.skipping.pytest_runtest_makereport": _pytest.skipping.pytest_runtest_makereport,
    "_pytest.python.pytest_pyfunc_call": _pytest.python.pytest_pyfunc_call,
    "_pytest.python.Function.runtest": _pytest.python.Function.runtest,
    "_pytest.main.pytest_runtestloop": _pytest.main.pytest_runtestloop,
    "_pytest.outcomes.exit": _pytest.outcomes.exit,
    "pluggy.PluginManager.register": pluggy.PluginManager.register,
    "os._exit": os._exit,
    "sys.exit": sys.exit,
}
_hookcaller = getattr(pluggy, "HookCaller", None) or pluggy._hooks._HookCaller
_GUARDED["pluggy.HookCaller.__call__"] = _hookcaller.__call__
_multicall_mod = sys.modules.get("pluggy._callers")
if _multicall_mod is not None:
    _GUARDED["pluggy._callers._multicall"] = _multicall_mod._multicall
_MODULES = {name: getattr(mod, "__file__", None) for name, mod in list(sys.modules.items())}


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
        ["-p", "no:cacheprovider", "-q", "--color=no", "-o", "console_output_style=classic", *_cfg["tests"]],
        plugins=[_reporter],
    )
except BaseException as _exc:  # noqa: BLE001 - whatever the tests did, say so
    _emit("aborted", error=f"{type(_exc).__name__}: {_exc}"[:500])
    raise
_problems = []
for _name, _obj in _GUARDED.items():
    try:
        _now = _resolve(_name)
    except Exception:  # noqa: BLE001
        _problems.append(f"{_name} is gone")
        continue
    if _now is not _obj:
        _problems.append(f"{_name} was replaced")
for _name, _file in _MODULES.items():
    _mod = sys.modules.get(_name)
    if _mod is None or getattr(_mod, "__file__", None) != _file:
        if _name.split(".")[0] in ("pytest", "_pytest", "pluggy"):
            _problems.append(f"module {_name} was replaced")
_sentinels = {nodeid: _verdict(_reporter.phases.get(nodeid, [])) for nodeid in _reporter.sentinels}
for _nodeid, _expected in _reporter.sentinels.items():
    if _sentinels[_nodeid] != _expected:
        _problems.append(f"sentinel test {_nodeid} was reported {_sentinels[_nodeid]}, not {_expected}")
_emit("finish", exit_code=int(_code), problems=_problems, plugins=sorted(set(_reporter.plugins)))
sys.stdout.flush()
_GUARDED["os._exit"](0)
