# ruff: noqa: SIM102, SIM105
# The trusted pytest runner. This file is not imported by swerepair: its source is sent to
# `python -I -B -c` inside the verifier sandbox. It reads one JSON line from stdin:
#   {"nonce": str, "tests": [test ids]}
# and writes records "<nonce> <json>" on its own duplicate of stdout, each on a line of its
# own. Nothing of the repository is imported before pytest itself is, and the repository's
# directory goes to the END of sys.path, so no repository file can shadow pytest or the
# standard library.
#
# pytest is given the files of the test ids, not the ids themselves: an id that names no test
# would otherwise stop the whole session with "ERROR: not found" (a usage error) and leave every
# test without a verdict. The collected items are narrowed to the requested ids here, the same
# way pytest narrows them (an id selects itself, its parametrizations and what lies below it),
# and each requested id that matched nothing is reported as a "not_found" record.
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


def _selects(wanted, nodeid):
    """Whether the requested id `wanted` selects the item `nodeid`, as pytest's own arguments do."""
    if nodeid == wanted:
        return True
    stem = wanted.rstrip("/")
    return nodeid.startswith((stem + "::", stem + "/")) or ("[" not in wanted and nodeid.startswith(wanted + "["))


_TESTS = [t for t in _cfg["tests"] if isinstance(t, str) and t]
_ARGS = []
_NOT_FOUND = {}
for _t in _TESTS:
    _path = _t.split("::", 1)[0]
    if not _path or not os.path.exists(os.path.join(_CWD, _path)):
        _NOT_FOUND[_t] = "no such file or directory"
    elif _path not in _ARGS:
        _ARGS.append(_path)


class _Reporter:
    def __init__(self):
        self.phases = {}
        self.sentinels = {}
        self.plugins = []
        self.collected = set()
        self.broken_files = set()
        self.collection_done = False

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, session, config, items):
        self.collection_done = True
        wanted = [t for t in _TESTS if t not in _NOT_FOUND]
        exact = {}
        for i, w in enumerate(wanted):
            exact.setdefault(w, i)
        keep, deselected = [], []
        for item in items:
            self.collected.add(item.nodeid)
            rank = exact.get(item.nodeid)
            if rank is None:
                rank = next((i for i, w in enumerate(wanted) if _selects(w, item.nodeid)), None)
            if rank is None:
                deselected.append(item)
            else:
                keep.append((rank, len(keep), item))
        if deselected:
            config.hook.pytest_deselected(items=deselected)
        # in the order of the requested ids, as pytest runs its arguments
        items[:] = [item for _, _, item in sorted(keep, key=lambda k: (k[0], k[1]))]
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
            self.broken_files.add(report.nodeid.split("::", 1)[0])
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
    # No requested file exists: nothing to run (pytest without arguments would collect the whole
    # repository). Exit status 5 is pytest's "no tests collected".
    _code = (
        pytest.main(
            [
                *("-p", "no:cacheprovider", "-q", "--color=no", "--maxfail=0"),
                *("-o", "console_output_style=classic"),
                *_ARGS,
            ],
            plugins=[_reporter],
        )
        if _ARGS
        else 5
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
    if _got == "MISSING" and (not _ARGS or (_code == 2 and not (_i < 2 and _ran_real))):
        continue
    if _got != _expected:
        _problems.append(f"sentinel test {_nodeid} was reported {_got}, not {_expected}")


# Requested ids that selected nothing once collection was done: no such test. An id under a
# file or folder that failed to collect is not "not found": the collection error hid it.
def _hidden_by_error(test_id):
    path = test_id.split("::", 1)[0]
    return any(not b or path == b or path.startswith(b.rstrip("/") + "/") for b in _reporter.broken_files)


for _t in _TESTS:
    if _t in _NOT_FOUND or not _reporter.collection_done or _hidden_by_error(_t):
        continue
    if not any(_selects(_t, n) for n in _reporter.collected):
        _NOT_FOUND[_t] = "not collected: no such test"
for _t, _why in _NOT_FOUND.items():
    _emit("not_found", nodeid=_t, why=_why)
_emit("finish", exit_code=int(_code), problems=_problems, plugins=sorted(set(_reporter.plugins)))
sys.stdout.flush()
_EXIT(0)
