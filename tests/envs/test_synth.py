"""Task synthesis (`swerepair.envs.synth`): the bug makers on snippets, issue texts, history
mining, a synthesized task from a tiny repository that validates and that its gold patch
resolves under `tests_pass`, the same seed giving the same task file, the command line's errors,
and the shipped ``bundled-synth`` set."""

from __future__ import annotations

import json
import subprocess
import warnings
from collections import Counter
from pathlib import Path

import pytest

from swerepair import cli
from swerepair.core import Task
from swerepair.envs.sandbox import LocalSandboxWarning, make_sandbox
from swerepair.envs.synth import (
    MAKERS,
    SynthConfig,
    SynthError,
    candidates,
    facts_for,
    history_candidates,
    issue_text,
    mutants,
    parse_failures,
    synthesize,
)
from swerepair.envs.synth.issues import mentions
from swerepair.envs.tasks import load_tasks
from swerepair.envs.validate import validate_task
from swerepair.rewards.tests_pass import TestsPass

from helpers import make_repo

pytestmark = pytest.mark.filterwarnings("ignore::swerepair.envs.sandbox.LocalSandboxWarning")


# -- the bug makers on snippets -------------------------------------------------------------------

#: maker -> (snippet, the mutants it must make (all of them), a snippet it must refuse)
SNIPPETS: dict[str, tuple[str, list[str], str]] = {
    "swap_comparison": (
        "def f(a, b):\n    return a < b and a is not None and b not in (1,)\n",
        [
            "def f(a, b):\n    return a <= b and a is not None and b not in (1,)\n",
            "def f(a, b):\n    return a < b and a is None and b not in (1,)\n",
            "def f(a, b):\n    return a < b and a is not None and b in (1,)\n",
        ],
        "def f(a):\n    return a + 1\n",
    ),
    "swap_boolean": (
        "def f(a, b):\n    return a and b\n",
        ["def f(a, b):\n    return a or b\n"],
        "def f(a, b, c):\n    return a and b and c\n",  # three operands: left alone
    ),
    "swap_arithmetic": (
        "def f(a, b):\n    return a + b * 2\n",
        ["def f(a, b):\n    return a - b * 2\n", "def f(a, b):\n    return a + b / 2\n"],
        'def f(name):\n    return "x" + name\n',  # string concatenation
    ),
    "off_by_one": (
        "def f(s, n):\n    return [s[1:], s[-1], range(n)]\n",
        [
            "def f(s, n):\n    return [s[0:], s[-1], range(n)]\n",
            "def f(s, n):\n    return [s[1:], s[-2], range(n)]\n",
            "def f(s, n):\n    return [s[1:], s[-1], range(n - 1)]\n",
        ],
        'def f(d, key):\n    return d[key] + d["k"]\n',  # mapping lookups
    ),
    "invert_condition": (
        "def f(x):\n    if not x:\n        return 1\n    return 2 if x > 3 else 4\n",
        [
            "def f(x):\n    if x:\n        return 1\n    return 2 if x > 3 else 4\n",
            "def f(x):\n    if not x:\n        return 1\n    return 2 if not x > 3 else 4\n",
        ],
        "def f():\n    while True:\n        pass\n",
    ),
    "remove_condition": (
        "def f(x, y):\n    if x and y:\n        raise ValueError(x)\n    return x\n",
        [
            "def f(x, y):\n    return x\n",
            "def f(x, y):\n    if y:\n        raise ValueError(x)\n    return x\n",
            "def f(x, y):\n    if x:\n        raise ValueError(x)\n    return x\n",
        ],
        "def f(x):\n    if x:\n        return 1\n    else:\n        return 2\n",  # has an else, alone in its block
    ),
    "swap_arguments": (
        "def f(a, b):\n    return g(a, b, key=a, other=b)\n",
        ["def f(a, b):\n    return g(b, a, key=a, other=b)\n", "def f(a, b):\n    return g(a, b, key=b, other=a)\n"],
        'def f(a):\n    return g(a, a) + h("s", 1)\n',  # equal arguments; literals of different types
    ),
    "change_constant": (
        'def f(x):\n    """Doc 1."""\n    return x * 60 > 0 or True\n',
        [
            'def f(x):\n    """Doc 1."""\n    return x * 61 > 0 or True\n',
            'def f(x):\n    """Doc 1."""\n    return x * 60 > 1 or True\n',
            'def f(x):\n    """Doc 1."""\n    return x * 60 > 0 or False\n',
        ],
        'def f(x: "int" = 3) -> str:\n    raise ValueError("bad", 2)\n',  # annotation, default, raise arguments
    ),
    "change_default": (
        "def f(x, n=1, *, flag=False):\n    return x\n",
        ["def f(x, n=2, *, flag=False):\n    return x\n", "def f(x, n=1, *, flag=True):\n    return x\n"],
        'def f(x, name="a", other=None):\n    return x\n',
    ),
    "drop_statement": (
        "def f(items):\n    total = 0\n    total += len(items)\n    items.append(total)\n    return total\n",
        [
            "def f(items):\n    total += len(items)\n    items.append(total)\n    return total\n",
            "def f(items):\n    total = 0\n    items.append(total)\n    return total\n",
            "def f(items):\n    total = 0\n    total += len(items)\n    return total\n",
        ],
        "def f(items):\n    items.append(1)\n",  # the only statement of its block
    ),
    "drop_return": (
        "def f(x):\n    if x:\n        return 1\n    y = x\n    return y\n",
        [
            "def f(x):\n    if x:\n        pass\n    y = x\n    return y\n",
            "def f(x):\n    if x:\n        return 1\n    y = x\n",
        ],
        "def f(x):\n    if x:\n        return\n    return None\n",
    ),
    "wrong_variable": (
        "def f(a: int, b: int, s: str) -> int:\n    return a - b\n",
        [
            "def f(a: int, b: int, s: str) -> int:\n    return b - b\n",
            "def f(a: int, b: int, s: str) -> int:\n    return a - a\n",
        ],
        "def f(a: int, s: str):\n    return a, s\n",  # no other variable of the same type
    ),
}


def test_every_maker_has_a_snippet() -> None:
    assert set(SNIPPETS) == set(MAKERS)


@pytest.mark.parametrize("maker", list(SNIPPETS))
def test_maker_changes_what_it_should(maker: str) -> None:
    snippet, expected, _ = SNIPPETS[maker]
    assert sorted(mutants(snippet, maker)) == sorted(expected)


@pytest.mark.parametrize("maker", list(SNIPPETS))
def test_maker_refuses_what_it_cannot_change(maker: str) -> None:
    _, _, refused = SNIPPETS[maker]
    assert mutants(refused, maker) == []


def test_edits_keep_the_files_formatting() -> None:
    src = "def f(a,b):  # compare\n    return (a<b)   # tight\n\n\n# trailing comment\n"
    (edit,) = candidates(src, "m.py", ["swap_comparison"])
    assert edit.line == 2 and edit.function == "f" and edit.description == "`<` -> `<=`"
    assert mutants(src, "swap_comparison") == [src.replace("a<b", "a<=b")]


def test_candidates_only_keep_real_changes() -> None:
    dropped: Counter[tuple[str, str]] = Counter()
    # `x + 0` -> `x - 0` parses and changes the tree; `1 == 1` -> `1 != 1` too; a file that does
    # not parse gives nothing.
    assert candidates("def f(:\n", "bad.py") == []
    src = "def f(x):\n    y = x\n    y = x\n    return y\n"
    edits = candidates(src, "m.py", ["drop_statement"], dropped=dropped)
    assert len(edits) == 1 and dropped[("drop_statement", "duplicate diff")] == 1


def test_module_level_code_is_left_to_constants() -> None:
    src = 'import os\n__all__ = ["f"]\nLIMIT = 10\nif __name__ == "__main__":\n    print(LIMIT > 3)\n'
    assert {e.maker for e in candidates(src, "m.py")} == {"change_constant"}
    assert mutants(src, "change_constant") == [src.replace("LIMIT = 10", "LIMIT = 11")]


# -- issue texts ---------------------------------------------------------------------------------

REPORT = """=================================== FAILURES ===================================
___________________________ test_length[iv0-4] ___________________________
tests/test_interval.py:56: in test_length
    assert iv.length == expected
pkg/interval.py:12: in length
    return self._lower - self._upper
E   AssertionError: assert -4 == 4
E    +  where -4 = Interval(1, 5).length
=========================== short test summary info ============================
"""


def test_issue_text_says_what_fails_not_where() -> None:
    failure = parse_failures(REPORT)["test_length[iv0-4]"]
    assert failure.statement == "assert iv.length == expected"
    facts = facts_for(
        "tests/test_interval.py::test_length[iv0-4]",
        failure,
        test_source="def test_length(iv, expected):\n    assert iv.length == expected",
        failing=["tests/test_interval.py::test_length[iv0-4]", "tests/test_interval.py::test_x"],
        changed_paths=["pkg/interval.py"],
    )
    assert (facts["kind"], facts["call"], facts["actual"], facts["expected"]) == (
        "wrong_value",
        "Interval(1, 5).length",
        "-4",
        "4",
    )
    texts = {issue_text(facts, seed=0, key=f"k{i}", changed_paths=["pkg/interval.py"]) for i in range(12)}
    assert len(texts) > 3  # several templates
    for text in texts:
        assert text.startswith("# ") and "Interval(1, 5).length" in text and "assert -4 == 4" in text
        assert not mentions(text, ["pkg/interval.py"]) and "self._lower" not in text
    assert issue_text(facts, seed=0, key="k1") == issue_text(facts, seed=0, key="k1")


def test_issue_rewriter_is_used_unless_it_fails_or_names_the_file() -> None:
    facts = facts_for("tests/t.py::test_a", parse_failures(REPORT.replace("test_length[iv0-4]", "test_a"))["test_a"])
    plain = issue_text(facts, key="k", changed_paths=["pkg/interval.py"])

    def boom(text: str, facts: object) -> str:
        raise RuntimeError("endpoint down")

    assert issue_text(facts, key="k", rewrite=lambda t, f: "# Rewritten\n", changed_paths=["pkg/interval.py"]) == (
        "# Rewritten\n"
    )
    assert issue_text(
        facts, key="k", rewrite=lambda t, f: "see pkg/interval.py", changed_paths=["pkg/interval.py"]
    ) == (plain)
    assert issue_text(facts, key="k", rewrite=boom, changed_paths=["pkg/interval.py"]) == plain


def test_exception_and_not_raised_failures() -> None:
    report = (
        "____ test_parse ____\ntests/t.py:3: in test_parse\n    parse('1h')\npkg/p.py:9: in parse\n"
        "    raise ValueError(text)\nE   ValueError: bad duration '1h'\n"
        "____ test_rejects ____\ntests/t.py:7: in test_rejects\n    with pytest.raises(KeyError):\n"
        "E   Failed: DID NOT RAISE <class 'KeyError'>\n"
    )
    blocks = parse_failures(report)
    exc = facts_for("tests/t.py::test_parse", blocks["test_parse"], changed_paths=["pkg/p.py"])
    assert (exc["kind"], exc["exception"], exc["call"]) == ("exception", "ValueError", "parse('1h')")
    assert exc["statement"] == "parse('1h')"  # the library's frame is not quoted
    missing = facts_for("tests/t.py::test_rejects", blocks["test_rejects"])
    assert (missing["kind"], missing["not_raised"]) == ("not_raised", "KeyError")
    assert "KeyError" in issue_text(missing, key="x").splitlines()[0]


# -- synthesis from a tiny repository --------------------------------------------------------------

LIB = """def add(a: int, b: int) -> int:
    return a + b


def scale(values: list, factor: int) -> list:
    return [v * factor for v in values]


def clamp(x: int, lo: int, hi: int) -> int:
    if x < lo:
        return lo
    return min(x, hi)
"""
TESTS = """from lib import add, clamp, scale


def test_add():
    assert add(2, 3) == 5


def test_scale():
    assert scale([1, 2], 3) == [3, 6]


def test_clamp():
    assert clamp(-1, 0, 3) == 0
    assert clamp(9, 0, 3) == 3
"""


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny") / "tiny"
    make_repo(root, {"lib.py": LIB, "tests/test_lib.py": TESTS, "README.md": "tiny\n"})
    return root


def _synth(repo: Path, out: Path, **kw: object) -> object:
    config = SynthConfig(**{"makers": ["swap_arithmetic"], "max_per_function": 1, "sandbox": "auto", **kw})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LocalSandboxWarning)
        return synthesize(repo, out, config, progress=False)


@pytest.fixture(scope="module")
def tiny_result(tiny_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> object:
    out = tmp_path_factory.mktemp("synth-out") / "tasks.jsonl"
    return _synth(tiny_repo, out, seed=0, jobs=2)


def test_synthesized_task_validates_and_its_gold_patch_resolves_it(tiny_result: object) -> None:
    result = tiny_result
    rows = result.rows  # type: ignore[attr-defined]
    # `a + b` -> `a - b` breaks test_add; `v * factor` -> `v / factor` breaks test_scale
    assert [r["synth_maker"] for r in rows] == ["swap_arithmetic", "swap_arithmetic"]
    tasks = load_tasks(result.out)  # type: ignore[attr-defined]
    assert {t.FAIL_TO_PASS for t in tasks} == {("tests/test_lib.py::test_add",), ("tests/test_lib.py::test_scale",)}
    stats = result.stats["makers"]["swap_arithmetic"]  # type: ignore[attr-defined]
    assert stats["kept"] == 2 and stats["tried"] == 2
    for task in tasks:
        assert task.test_patch == "" and Path(task.repo_source or "").name == "tasks.bundle"
        assert "lib.py" not in task.problem_statement
        assert task.extra["lines_changed"] == 2 and task.extra["files_changed"] == 1
        assert task.extra["num_fail_to_pass"] == 1 and task.extra["num_pass_to_pass"] == 2
        assert len(task.PASS_TO_PASS) == 2
        res = validate_task(task, lambda t: make_sandbox("auto", t), timeout=120)
        assert res.ok, res.problems
        reward = TestsPass(lambda t: make_sandbox("auto", t), timeout=120)
        assert reward.evaluate(task.patch, task).value == 1.0
        assert reward.evaluate("", task).value == 0.0
    # the agent's checkout holds the bug and no trace of the fix
    with make_sandbox("auto", tasks[0]) as sb:
        assert "return a - b" in sb.read_file("lib.py") or "v / factor" in sb.read_file("lib.py")
        assert sb.run("git log --oneline | wc -l", 30).output.strip() == "1"


def test_same_seed_gives_the_same_task_file(tiny_repo: Path, tiny_result: object, tmp_path: Path) -> None:
    again = _synth(tiny_repo, tmp_path / "tasks.jsonl", seed=0, jobs=1)  # other jobs, same seed
    first_out = tiny_result.out  # type: ignore[attr-defined]
    assert again.out.read_bytes() == first_out.read_bytes()  # type: ignore[attr-defined]
    assert again.bundle.read_bytes() == tiny_result.bundle.read_bytes()  # type: ignore[attr-defined]
    rows = [json.loads(line) for line in again.out.read_text().splitlines()]  # type: ignore[attr-defined]
    assert [r["synth_seed"] for r in rows] == [0, 0]


def test_command_line_with_an_issue_endpoint(
    tiny_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`swerepair tasks synth` end to end, its issue texts rewritten by an OpenAI-compatible
    endpoint (a stub here) that gets the template text and the rewrite prompt."""
    import http.server
    import threading

    seen: list[dict[str, object]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append({"path": self.path, **body})
            answer = {"choices": [{"message": {"role": "assistant", "content": "# add() is broken\n\nIt subtracts."}}]}
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    out = tmp_path / "cli.jsonl"
    try:
        argv = ["tasks", "synth", "--repo", str(tiny_repo), "--out", str(out), "--makers", "swap_arithmetic"]
        argv += ["--limit", "1", "--no-progress", "--issue-endpoint", f"http://127.0.0.1:{server.server_port}/v1"]
        assert cli.main([*argv, "--issue-model", "stub"]) == 0
    finally:
        server.shutdown()
    captured = capsys.readouterr()
    assert "1 tasks (1 tried of 2 candidates" in captured.out and "swap_arithmetic" in captured.err
    (task,) = load_tasks(out)
    assert task.problem_statement == "# add() is broken\n\nIt subtracts.\n"
    (request,) = seen
    assert request["path"] == "/v1/chat/completions" and request["model"] == "stub"
    assert "add(2, 3)" in request["messages"][1]["content"]  # type: ignore[index]
    assert out.with_suffix(".bundle").is_file()
    stats = json.loads(out.with_suffix(".stats.json").read_text())["makers"]["swap_arithmetic"]
    assert (stats["kept"], stats["tried"], stats["limit reached"]) == (1, 1, 1)  # --limit 1
    log = out.with_suffix(".log").read_text()
    assert "baseline: 3 tests, 3 pass twice" in log and log.count("-> kept") == 1


# -- history mining --------------------------------------------------------------------------------


def _commit(root: Path, files: dict[str, str], message: str) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    env |= {"PATH": "/usr/bin:/bin", "HOME": str(root)}
    subprocess.run(["git", "add", "-A"], cwd=root, check=True, env=env)
    subprocess.run(["git", "commit", "-qm", message], cwd=root, check=True, env=env)


def test_history_mining(tmp_path: Path) -> None:
    root = tmp_path / "hist"
    buggy = "def add(a, b):\n    return a - b\n\n\ndef twice(x):\n    return x + x\n"
    make_repo(root, {"calc.py": buggy, "tests/test_calc.py": "from calc import twice\n\n\ndef test_twice():\n"
                     "    assert twice(2) == 4\n"})  # fmt: skip
    fixed_tests = (
        "from calc import add, twice\n\n\ndef test_twice():\n    assert twice(2) == 4\n\n\n"
        "def test_add():\n    assert add(2, 3) == 5\n"
    )
    _commit(root, {"calc.py": buggy.replace("a - b", "a + b"), "tests/test_calc.py": fixed_tests}, "fix add")
    _commit(root, {"README.md": "docs only\n"}, "docs")  # touches no code: not a candidate
    _commit(root, {"calc.py": buggy.replace("a - b", "a + b") + "\n\nX = 1\n"}, "code only")  # no tests
    found = history_candidates(root)
    assert len(found) == 1
    (hc,) = found
    assert hc.code_files == ("calc.py",) and hc.test_files == ("tests/test_calc.py",)
    assert "+    return a + b" in hc.patch and "+def test_add():" in hc.test_patch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LocalSandboxWarning)
        result = synthesize(root, tmp_path / "h.jsonl", SynthConfig(makers=[], history=True), progress=False)
    (task,) = load_tasks(result.out)
    assert task.base_commit == hc.parent and task.patch == hc.patch and task.test_patch == hc.test_patch
    assert task.FAIL_TO_PASS == ("tests/test_calc.py::test_add",)
    assert task.PASS_TO_PASS == ("tests/test_calc.py::test_twice",)
    assert task.extra["synth_method"] == "history" and "add(2, 3)" in task.problem_statement
    assert validate_task(task, lambda t: make_sandbox("auto", t), timeout=120).ok


# -- errors ----------------------------------------------------------------------------------------


def test_bad_arguments_are_one_line(tmp_path: Path, tiny_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "t.jsonl")
    cases = [
        (["--repo", str(tmp_path / "nowhere"), "--out", out], "is not a directory"),
        (["--repo", str(tmp_path), "--out", out], "is not a git repository"),
        (["--repo", str(tiny_repo), "--out", str(tmp_path / "t.txt")], "must end in .jsonl"),
        (["--repo", str(tiny_repo), "--out", out, "--makers", "nope"], "unknown bug maker(s) nope"),
        (["--repo", str(tiny_repo), "--out", out, "--jobs", "0"], "jobs must be a positive integer"),
        (["--repo", str(tiny_repo), "--out", out, "--python", "/no/python"], "no such executable"),
        (["--repo", str(tiny_repo), "--out", out, "--makers", "none"], "nothing to do without --history"),
        (["--repo", str(tiny_repo), "--out", out, "--max-per-file", "-1"], "0 (no cap) or positive"),
        (["--repo", str(tiny_repo), "--out", out, "--tests", "nope/"], "no test files"),
    ]
    for argv, message in cases:
        assert cli.main(["tasks", "synth", "--no-progress", *argv]) == 2, argv
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and message in err and "Traceback" not in err, (argv, err)
    with pytest.raises(SynthError):
        synthesize(tiny_repo, out, SynthConfig(max_per_function=0))


# -- the shipped synthesized set -------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped() -> list[Task]:
    return load_tasks("bundled-synth")


def test_bundled_synth_loads(shipped: list[Task]) -> None:
    hand_written = {t.instance_id for t in load_tasks("bundled")}
    assert len(shipped) >= 300
    assert not hand_written & {t.instance_id for t in shipped}
    assert {t.repo for t in shipped} == {"swerepair/confkit", "swerepair/durations", "swerepair/intervals",
                                         "swerepair/unitconv"}  # fmt: skip
    assert len({t.patch for t in shipped}) == len(shipped)  # no two tasks with the same diff
    for task in shipped:
        assert task.FAIL_TO_PASS and task.test_patch == "" and task.extra["synth_method"] == "mutation"
        assert Path(task.repo_source or "").is_file() and task.extra["synth_maker"] in MAKERS
        assert task.extra["num_fail_to_pass"] == len(task.FAIL_TO_PASS)
    assert len({t.extra["synth_maker"] for t in shipped}) >= 10
    data = Path(shipped[0].repo_source or "").parent
    size = sum(p.stat().st_size for p in data.glob("synth*"))
    assert size < 2_000_000, size  # bundles and a compressed task file, not copies of trees


def test_bundled_synth_is_a_task_set_everywhere(tmp_path: Path) -> None:
    """The name works wherever "bundled" does: the env, the command line, the trainer's config;
    a gzipped JSONL task file loads like a plain one."""
    import gzip

    import gymnasium as gym

    from swerepair.trainers.config import TrainConfig
    from swerepair.trainers.episodes import select_tasks

    assert len(select_tasks(TrainConfig(tasks="bundled-synth"))) >= 300
    env = gym.make("SweRepair-v0", tasks="bundled-synth", sandbox="local")
    try:
        assert len(env.unwrapped.tasks) >= 300
    finally:
        env.close()
    assert cli.build_parser().parse_args(["tasks", "list", "--tasks", "bundled-synth"]).tasks == "bundled-synth"
    rows = [json.dumps({"instance_id": "a", "repo": "o/r", "base_commit": "c", "problem_statement": "",
                        "patch": "", "test_patch": "", "FAIL_TO_PASS": [], "PASS_TO_PASS": []})]  # fmt: skip
    with gzip.open(tmp_path / "t.jsonl.gz", "wt", encoding="utf-8") as fh:
        fh.write("\n".join(rows) + "\n")
    assert [t.instance_id for t in load_tasks(tmp_path / "t.jsonl.gz")] == ["a"]


def test_bundled_synth_sample_validates(shipped: list[Task]) -> None:
    by_repo: dict[str, Task] = {}
    for task in shipped:
        by_repo.setdefault(task.repo, task)
    for task in list(by_repo.values())[:2]:
        res = validate_task(task, lambda t: make_sandbox("auto", t), timeout=120)
        assert res.ok, (task.instance_id, res.problems)


def test_bundled_synth_holds_out_the_hand_written_bugs(shipped: list[Task]) -> None:
    from swerepair.envs.synth.bundled import HERE, held_out_lines
    from swerepair.rewards.patch import parse_patch

    if not (HERE / "projects").is_dir():
        pytest.skip("the task sources are only in the repository")
    held = {name: held_out_lines(HERE / "projects" / name, HERE / "tasks" / name) for name in
            ("confkit", "durations", "intervals", "unitconv")}  # fmt: skip
    for task in shipped:
        lines = held[task.repo.split("/")[1]]
        for fp in parse_patch(task.patch):  # the gold patch's new side is the fixed tree
            for hunk in fp.hunks:
                new = hunk.new_start
                for line in hunk.lines:
                    if line.startswith("+"):
                        assert new not in lines.get(fp.new_path or "", set()), task.instance_id
                    if not line.startswith("-"):
                        new += 1
