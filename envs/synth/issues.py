"""Issue texts for synthesized tasks: what fails and how, as a user would report it.

The text is built from what a user can see: the failing test's code, the failing statement,
pytest's assertion message and the exception (``E`` lines of a ``--tb=short`` report), and,
where pytest's assertion rewriting shows it, the call and the value it returned. It never
names the changed file, the changed function's location or the fix: frames of non-test files
are left out of the quoted output, and every line that mentions a changed path is dropped.

`issue_text` picks one of a set of templates (and phrasings within it) from a seeded hash of
the task, so the same task and seed always give the same text. A ``rewrite`` callable
``(text, facts) -> text`` (an LLM behind an OpenAI-compatible endpoint, wired by
``swerepair tasks synth --issue-endpoint``) may rewrite it; a rewrite that fails, comes back
empty or mentions a changed path is ignored and the template text kept.
"""

from __future__ import annotations

import ast
import hashlib
import random
import re
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from swerepair.rewards.patch import is_test_path

__all__ = [
    "REWRITE_PROMPT",
    "Failure",
    "IssueRewriter",
    "facts_for",
    "issue_text",
    "mentions",
    "parse_failures",
    "test_function_source",
]

#: ``rewrite(template_text, facts) -> text``: an optional rewriting step (an LLM, say).
IssueRewriter = Callable[[str, Mapping[str, Any]], str]

#: The system prompt ``swerepair tasks synth --issue-endpoint`` sends with each template text.
REWRITE_PROMPT = (
    "You rewrite bug reports so that they read like an issue a user of a Python library filed. "
    "Keep every fact: the code that fails, the error output and the expected behaviour; keep the "
    "code blocks exact. Do not guess where in the library the bug is, do not name source files "
    "or internal functions that the report does not already show, and do not suggest a fix. "
    "Answer with the issue only, in markdown, starting with a '# ' title line."
)

_HEADER = re.compile(r"^_{3,} (.+?) _{3,}$")
_SECTION = re.compile(r"^={3,}.*={3,}$")
_FRAME = re.compile(r"^(\S+?):(\d+): in (\S+)$")
_CARETS = re.compile(r"^\s*[\^~]+\s*$")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")
_ASSERT = re.compile(r"^(?:AssertionError: )?assert (.+?) (==|!=|<=|>=|<|>|is not|is|not in|in) (.+)$")
_WHERE = re.compile(r"^\+  where (.+?) = (.+)$")
_INNER_WHERE = re.compile(r"^\+    where (\w+) = (.+)$")
_NOISE = re.compile(r"^(Use -v to get (more|the full) diff|Full diff:|Omitting \d+ identical items.*)$")
_EXC = re.compile(r"^((?:[a-z_]\w*\.)*[A-Z]\w*): (.*)$")


@dataclass
class Failure:
    """One failing test's block of a ``pytest --tb=short`` report, reduced to what a user sees.

    Attributes:
        title: the block's header (the test's name, with parameters).
        statement: the failing line of the test's own code (the last test-file frame).
        errors: the ``E`` lines, prefix removed.
        frames: (path, line, function) of every frame, the test's and the library's.
    """

    title: str
    statement: str = ""
    errors: list[str] = field(default_factory=list)
    frames: list[tuple[str, int, str]] = field(default_factory=list)


def parse_failures(output: str) -> dict[str, Failure]:
    """The failure blocks of a ``pytest -q --tb=short`` report, by header.

    >>> out = '''=== FAILURES ===
    ... ______ test_x ______
    ... tests/test_m.py:3: in test_x
    ...     assert f(2) == 4
    ... pkg/m.py:9: in f
    ...     return x * 3
    ... E   assert 6 == 4
    ... === short test summary info ===
    ... '''
    >>> f = parse_failures(out)["test_x"]
    >>> f.statement, f.errors
    ('assert f(2) == 4', ['assert 6 == 4'])
    """
    blocks: dict[str, Failure] = {}
    current: Failure | None = None
    frame_is_test = False
    code: list[str] = []
    for raw in output.splitlines():
        line = raw.rstrip()
        header = _HEADER.match(line)
        if header:
            current = blocks.setdefault(header.group(1), Failure(header.group(1)))
            frame_is_test, code = False, []
            continue
        if _SECTION.match(line):
            current = None
            continue
        if current is None:
            continue
        frame = _FRAME.match(line)
        if frame:
            path, lineno, func = frame.group(1), int(frame.group(2)), frame.group(3)
            current.frames.append((path, lineno, func))
            frame_is_test = is_test_path(path)
            code = []
            continue
        if line.startswith("E ") or line == "E":
            current.errors.append(line[1:].strip() if len(line) > 1 else "")
            continue
        if line.startswith("    ") and not _CARETS.match(line) and frame_is_test:
            code.append(line[4:])
            current.statement = "\n".join(code).strip()
    return blocks


def _call_name(test_id: str) -> tuple[str, str, str]:
    """(file, ``Class.function`` or ``function``, parameters) of a pytest node id."""
    path, _, rest = test_id.partition("::")
    params = ""
    if "[" in rest and rest.endswith("]"):
        rest, params = rest[: rest.index("[")], rest[rest.index("[") + 1 : -1]
    return path, rest.replace("::", "."), params


def test_function_source(test_file_text: str, qualname: str, max_lines: int = 30) -> str | None:
    """The source of the test function `qualname` (``Class.test_x`` or ``test_x``) with its
    decorators, dedented; None when not found or longer than `max_lines` lines."""
    try:
        tree = ast.parse(test_file_text)
    except SyntaxError:
        return None
    scope: list[ast.stmt] = tree.body
    node: ast.AST | None = None
    for part in qualname.split("."):
        node = next(
            (
                n
                for n in scope
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.name == part
            ),
            None,
        )
        if node is None:
            return None
        scope = getattr(node, "body", [])
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return None
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    lines = test_file_text.splitlines()[first - 1 : node.end_lineno]
    if len(lines) > max_lines:
        return None
    return textwrap.dedent("\n".join(lines)).strip("\n")


test_function_source.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def mentions(text: str, paths: Iterable[str]) -> bool:
    """Whether `text` names one of `paths` (a changed file): the path itself, or its file name
    standing on its own (``interval.py``, not ``test_interval.py``).

    >>> mentions("see pkg/m.py", ["pkg/m.py"]), mentions("in m.py", ["pkg/m.py"]), mentions("test_m.py", ["pkg/m.py"])
    (True, True, False)
    """
    for path in paths:
        if not path:
            continue
        name = path.rsplit("/", 1)[-1]
        if path in text or re.search(rf"(?<![\w.-]){re.escape(name)}(?!\w)", text):
            return True
    return False


def _clean(text: str, banned: Sequence[str]) -> str | None:
    if mentions(text, banned):
        return None
    text = _ADDRESS.sub("0x...", text)
    return text if len(text) <= 300 else text[:297] + "..."


def facts_for(
    test_id: str,
    failure: Failure | None,
    *,
    test_source: str | None = None,
    failing: Sequence[str] = (),
    changed_paths: Iterable[str] = (),
) -> dict[str, Any]:
    """What an issue may say about one failing test, from its failure block and its source.

    Keys: ``test_id``, ``test_name``, ``params``, ``test_source``, ``statement``, ``errors``
    (cleaned ``E`` lines), ``exception`` and ``message`` (an exception's type and text),
    ``call``, ``actual`` and ``expected`` (from an assertion), ``not_raised`` (the exception a
    ``pytest.raises`` block waited for), ``failing`` (every failing test id), ``kind``
    (``wrong_value``, ``exception``, ``not_raised`` or ``fails``)."""
    banned = sorted(p for p in changed_paths if p)
    _, name, params = _call_name(test_id)
    facts: dict[str, Any] = {
        "test_id": test_id,
        "test_name": name,
        "params": params,
        "test_source": test_source,
        "failing": list(failing) or [test_id],
        "statement": "",
        "errors": [],
        "exception": "",
        "message": "",
        "call": "",
        "actual": "",
        "expected": "",
        "not_raised": "",
        "kind": "fails",
    }
    if failure is None:
        return facts
    if failure.statement and not mentions(failure.statement, banned):
        facts["statement"] = failure.statement
    errors = [e for e in (_clean(e, banned) for e in failure.errors) if e is not None and not _NOISE.match(e)]
    while errors and not errors[-1]:
        errors.pop()
    facts["errors"] = errors[:12]
    facts["first_error"] = next((e for e in errors if e), "")
    where = next((m for m in (_WHERE.match(e) for e in errors) if m), None)
    for line in errors:
        exc = _EXC.match(line)
        if exc and exc.group(1) != "AssertionError":
            if exc.group(1) == "Failed" and exc.group(2).startswith("DID NOT RAISE"):
                facts["kind"] = "not_raised"
                raised = re.search(r"<class '([\w.]+)'>", exc.group(2))
                facts["not_raised"] = raised.group(1).rsplit(".", 1)[-1] if raised else exc.group(2)[14:]
            else:
                facts["kind"] = "exception"
                facts["exception"] = exc.group(1).rsplit(".", 1)[-1]
                facts["message"] = exc.group(2)
            break
        compared = _ASSERT.match(line)
        if compared:
            facts["kind"] = "wrong_value"
            facts["actual"], facts["expected"] = compared.group(1), compared.group(3)
            break
    if where is not None and facts["kind"] == "wrong_value" and where.group(1) == facts["actual"]:
        call = where.group(2)
        # `+  where -4 = measure()` / `+    where measure = IntervalSet(...).measure`: one call
        inner = next((m for m in (_INNER_WHERE.match(e) for e in errors) if m), None)
        if inner is not None and call.startswith(inner.group(1) + "("):
            call = inner.group(2) + call[len(inner.group(1)) :]
        facts["call"] = call if _usable_call(call) else ""
    statement = facts["statement"]
    if not facts["call"] and statement:
        call = _call_of(statement, facts["kind"])
        facts["call"] = call if _usable_call(call, facts.get("test_source") or "") else ""
    if "..." in facts["expected"]:  # pytest cut the repr: quote the test's own expression instead
        facts["expected"] = _expected_of(statement)
    if "..." in facts["actual"]:
        facts["actual"] = ""
    return facts


def _usable_call(call: str, test_source: str = "") -> bool:
    """Whether `call` reads as an expression a user would write: it parses, is short, holds no
    object repr (``<...>``) or cut repr (``...``), is not an exception object, and is not just
    a value the test bound to a name (``info.value`` of ``pytest.raises(...) as info``)."""
    if not call or len(call) > 80 or "<" in call or "..." in call:
        return False
    try:
        node = ast.parse(call, mode="eval").body
    except SyntaxError:
        return False
    root = node
    while isinstance(root, (ast.Attribute, ast.Call, ast.Subscript)):
        root = root.func if isinstance(root, ast.Call) else root.value
        if isinstance(root, ast.Name) and root.id.endswith(("Error", "Exception", "Warning")):
            return False
    if isinstance(root, ast.Name) and test_source and re.search(rf"\bas\s+{re.escape(root.id)}\b", test_source):
        return False
    return not isinstance(node, ast.Name)


def _expected_of(statement: str) -> str:
    """The right-hand side of the failing ``assert x == <expected>``, when it is more than a name."""
    try:
        node = ast.parse(statement.splitlines()[0].strip()).body[0] if statement else None
    except (SyntaxError, IndexError):
        return ""
    if isinstance(node, ast.Assert) and isinstance(node.test, ast.Compare) and len(node.test.comparators) == 1:
        right = node.test.comparators[0]
        if not isinstance(right, ast.Name):
            return ast.unparse(right)
    return ""


def _call_of(statement: str, kind: str) -> str:
    """The expression a user would quote from the failing statement."""
    first = statement.splitlines()[0].strip()
    try:
        node = ast.parse(first).body[0]
    except (SyntaxError, IndexError):
        return ""
    if isinstance(node, ast.Assert):
        test = node.test
        if isinstance(test, ast.Compare) and len(test.comparators) == 1:
            return ast.get_source_segment(first, test.left) or ""
        return ast.get_source_segment(first, test) or ""
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        return ast.get_source_segment(first, node.value) or ""
    if isinstance(node, ast.Assign):
        return ast.get_source_segment(first, node.value) or ""
    return ""


# -- templates ------------------------------------------------------------------------------------

_INTROS = (
    "I ran into this while using the library: the following check fails on a clean checkout.",
    "This used to work for me, but now it fails:",
    "Minimal reproduction (adapted from `{test_name}` in the test suite):",
    "Running the test suite, `{test_id}` fails. Here is the test:",
    "Steps to reproduce:",
    "The following snippet shows the problem:",
)
_OUTCOMES = ("It fails with:", "What I get:", "Output:", "pytest reports:", "Actual result:")
_TITLES = {
    "wrong_value": (
        "`{call}` returns {actual} instead of {expected}",
        "Wrong result from `{call}`",
        "`{call}` gives an unexpected value ({actual})",
    ),
    "wrong_value_noexp": ("Wrong result from `{call}`", "`{call}` gives an unexpected value"),
    "exception": (
        "`{call}` raises {exception}",
        "Unexpected {exception}: {message}",
        "{exception} when calling `{call}`",
    ),
    "exception_nocall": ("Unexpected {exception}: {message}", "{exception} in `{test_name}`"),
    "not_raised": (
        "`{call}` does not raise {not_raised}",
        "No {not_raised} for invalid input",
        "{not_raised} is no longer raised",
    ),
    "not_raised_nocall": ("No {not_raised} for invalid input", "{not_raised} is no longer raised"),
    "fails": ("`{test_name}` fails", "Test failure in `{test_name}`"),
    "fails_with": ("`{test_name}` fails: {first_error}", "Test failure in `{test_name}`: {first_error}"),
}
_EXPECT = {
    "wrong_value": (
        "I expected `{call}` to give `{expected}`.",
        "The expected value is `{expected}`, as the test says.",
        "It should be `{expected}`.",
    ),
    "wrong_value_noexp": ("The value is wrong: the test expects something else.", "That is not the right value."),
    "exception": (
        "I expected this to work without raising `{exception}`.",
        "Nothing here should raise; the input looks valid to me.",
    ),
    "not_raised": (
        "I expected `{not_raised}` to be raised here.",
        "This input is invalid and should be rejected with `{not_raised}`.",
    ),
    "fails": ("I expected the test to pass.", "This should pass."),
}
_MORE = (
    "{n_more} other test(s) fail the same way or in related ways.",
    "It is not the only failure: {n_more} more test(s) fail.",
    "Several tests fail ({n_failing} in total); this is one of them.",
)


def _pick(rng: random.Random, options: Sequence[str]) -> str:
    return options[rng.randrange(len(options))]


class _Missing(dict):  # str.format_map's fallback: a missing fact reads as nothing
    def __missing__(self, key: str) -> str:
        return ""


def _fill(template: str, facts: Mapping[str, Any]) -> str:
    return template.format_map(_Missing(facts))


def issue_text(
    facts: Mapping[str, Any],
    *,
    seed: int = 0,
    key: str = "",
    rewrite: IssueRewriter | None = None,
    changed_paths: Iterable[str] = (),
) -> str:
    """The problem statement for a task: a title line and a short report (markdown).

    `seed` and `key` (the task's id) choose the template and its phrasing, so the text is the
    same on every run. `rewrite` may rewrite it (see the module docstring).

    >>> facts = facts_for("tests/t.py::test_add", parse_failures(
    ...     "___ test_add ___\\ntests/t.py:4: in test_add\\n    assert add(2, 3) == 5\\nE   assert -1 == 5\\n"
    ...     "E    +  where -1 = add(2, 3)\\n")["test_add"])
    >>> issue_text(facts, seed=0, key="k").splitlines()[0]
    '# `add(2, 3)` returns -1 instead of 5'
    """
    digest = hashlib.sha256(f"{seed}\0{key}\0{facts.get('test_id')}".encode()).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))
    kind = str(facts.get("kind") or "fails")
    values = dict(facts)
    failing = list(facts.get("failing") or [])
    values["n_failing"] = len(failing)
    values["n_more"] = max(0, len(failing) - 1)
    title_kind = kind
    if kind == "wrong_value":
        if not facts.get("call"):
            first = str(facts.get("first_error") or "")
            title_kind = "fails_with" if first and "..." not in first else "fails"
        elif not facts.get("expected") or not facts.get("actual"):
            title_kind = "wrong_value_noexp"
    elif kind in ("exception", "not_raised") and not facts.get("call"):
        title_kind = f"{kind}_nocall"
    title = _fill(_pick(rng, _TITLES[title_kind]), values)
    if len(title) > 120:
        title = _fill(_pick(rng, _TITLES["fails"]), values)
    expect_kind = "wrong_value_noexp" if kind == "wrong_value" and not facts.get("expected") else kind
    snippet = facts.get("test_source") or facts.get("statement") or ""
    errors = list(facts.get("errors") or [])
    parts = [f"# {title}", ""]
    intro = _fill(_pick(rng, _INTROS), values)
    if snippet:
        parts += [intro, "", "```python", str(snippet), "```", ""]
        if facts.get("params"):
            parts += [f"(failing case: `{facts['params']}`)", ""]
    else:
        parts += [f"`{facts.get('test_id')}` fails.", ""]
    if errors:
        parts += [_pick(rng, _OUTCOMES), "", "```", *errors, "```", ""]
    parts.append(_fill(_pick(rng, _EXPECT[expect_kind]), values))
    if values["n_more"]:
        parts += ["", _fill(_pick(rng, _MORE), values)]
    text = "\n".join(parts).strip() + "\n"
    if rewrite is not None:
        text = _rewritten(text, facts, rewrite, changed_paths)
    return text


def _rewritten(text: str, facts: Mapping[str, Any], rewrite: IssueRewriter, changed_paths: Iterable[str]) -> str:
    try:
        new = rewrite(text, facts)
    except Exception:
        return text
    if not isinstance(new, str) or not new.strip() or mentions(new, changed_paths):
        return text
    return new.strip() + "\n"
