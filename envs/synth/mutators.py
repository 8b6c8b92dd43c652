"""Bug makers: small named functions that propose one-spot changes to a Python source file.

Each maker reads a parsed module (`Module`) and yields `Edit`s: a span of the original text
(from the AST's node positions) and the text that replaces it, so that everything else in the
file (formatting, comments, quotes) stays as it was. A maker *refuses* what it cannot change by
yielding nothing for it; `candidates` then keeps only edits whose result still parses and whose
syntax tree really differs from the original's.

The makers (`MAKERS`, by name):

- ``swap_comparison``: ``<`` <-> ``<=``, ``>`` <-> ``>=``, ``==`` <-> ``!=``, ``is`` <-> ``is not``,
  ``in`` <-> ``not in``;
- ``swap_boolean``: ``and`` <-> ``or``;
- ``swap_arithmetic``: ``+`` <-> ``-``, ``*`` -> ``/``, ``/`` -> ``*``, ``//`` -> ``/`` (never on
  string or sequence operands);
- ``off_by_one``: a ``range`` bound, a slice bound or an integer index moved by one;
- ``invert_condition``: the test of an ``if``/``elif``/``while``/conditional expression/comprehension
  filter negated (or a ``not`` removed);
- ``remove_condition``: a guard ``if`` (no ``else``) deleted with its body, or one operand of an
  ``and``/``or`` in a test dropped;
- ``swap_arguments``: two neighbouring positional arguments of a call swapped, or the values of two
  neighbouring keyword arguments;
- ``change_constant``: a number moved (``n`` -> ``n + 1``, ``0`` <-> ``1``, a float doubled) or a
  ``True``/``False`` flipped, outside docstrings, annotations, decorators and messages;
- ``change_default``: the default value of a function parameter changed the same way;
- ``drop_statement``: an assignment, augmented assignment or call statement deleted from a block
  that keeps at least one statement;
- ``drop_return``: a ``return <value>`` deleted (replaced by ``pass`` when it is alone in its block);
- ``wrong_variable``: a variable read replaced by another variable of the same (annotated or
  literal-inferred) type that is in scope at that point.

>>> src = "def f(a, b):\\n    return a < b\\n"
>>> [e.description for e in candidates(src, "m.py", ["swap_comparison"])]
['`<` -> `<=`']
>>> apply_edit(src, candidates(src, "m.py", ["swap_comparison"])[0])
'def f(a, b):\\n    return a <= b\\n'
"""

from __future__ import annotations

import ast
import hashlib
import itertools
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

__all__ = ["MAKERS", "Edit", "Module", "apply_edit", "candidates", "mutants"]


@dataclass(frozen=True)
class Edit:
    """One proposed change: replace ``text[start:end]`` (character offsets) by `replacement`.

    Attributes:
        maker: the bug maker's name.
        path: the file, relative to the repository root.
        start / end: character offsets into the file's text.
        replacement: the new text of that span.
        line / end_line: the first and last line (1-based) of the span.
        function: qualified name of the enclosing function (``Class.method``); ``""`` at module
            or class level.
        description: what changes, e.g. ``"`<` -> `<=`"``.
    """

    maker: str
    path: str
    start: int
    end: int
    replacement: str
    line: int
    end_line: int
    function: str
    description: str


def apply_edit(text: str, edit: Edit) -> str:
    """The file text with `edit` applied."""
    return text[: edit.start] + edit.replacement + text[edit.end :]


# -- the parsed module ---------------------------------------------------------------------------


@dataclass
class Module:
    """A parsed source file with what the makers need: positions as character offsets, each
    node's parent, each node's enclosing function, and the nodes no maker may touch."""

    text: str
    path: str
    tree: ast.Module
    line_starts: list[int] = field(default_factory=list)
    parents: dict[ast.AST, ast.AST] = field(default_factory=dict)
    functions: dict[ast.AST, str] = field(default_factory=dict)
    frozen: set[ast.AST] = field(default_factory=set)

    @classmethod
    def parse(cls, text: str, path: str = "<snippet>") -> Module:
        """Parse `text`; raises `SyntaxError` for a file that does not parse."""
        tree = ast.parse(text, filename=path)
        mod = cls(text, path, tree)
        starts, pos = [], 0
        for line in text.splitlines(keepends=True):
            starts.append(pos)
            pos += len(line)
        starts.append(pos)
        mod.line_starts = starts
        mod._walk(tree, None, "")
        return mod

    def _walk(self, node: ast.AST, parent: ast.AST | None, function: str, scope: str = "") -> None:
        if parent is not None:
            self.parents[node] = parent
        self.functions[node] = function
        child_function, child_scope = function, scope
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            child_function = child_scope = f"{scope}.{node.name}" if scope else node.name
            for deco in node.decorator_list:
                self._freeze(deco)
            for arg in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]:
                if arg.annotation is not None:
                    self._freeze(arg.annotation)
            for arg in (node.args.vararg, node.args.kwarg):
                if arg is not None and arg.annotation is not None:
                    self._freeze(arg.annotation)
            if node.returns is not None:
                self._freeze(node.returns)
        elif isinstance(node, ast.ClassDef):
            child_scope = f"{scope}.{node.name}" if scope else node.name
            child_function = ""
            for deco in node.decorator_list:
                self._freeze(deco)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            first = body[0] if body else None
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                self._freeze(first)  # the docstring
        if isinstance(node, ast.AnnAssign):
            self._freeze(node.annotation)
        if isinstance(node, ast.If) and _is_special_guard(node.test):
            self._freeze(node)
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id in _FROZEN_NAMES for t in targets):
                self._freeze(node)
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.Global, ast.Nonlocal)):
            self._freeze(node)
        for child in ast.iter_child_nodes(node):
            self._walk(child, node, child_function, child_scope)

    def _freeze(self, node: ast.AST) -> None:
        for sub in ast.walk(node):
            self.frozen.add(sub)

    # -- positions -----------------------------------------------------------------------------
    def offset(self, lineno: int, col: int) -> int:
        """Character offset of (1-based line, UTF-8 byte column), as the AST gives positions."""
        start = self.line_starts[lineno - 1]
        line = self.text[start : self.line_starts[lineno]]
        return start + len(line.encode("utf-8")[:col].decode("utf-8", errors="replace"))

    def span(self, node: ast.AST) -> tuple[int, int]:
        return (
            self.offset(node.lineno, node.col_offset),  # type: ignore[attr-defined]
            self.offset(node.end_lineno, node.end_col_offset),  # type: ignore[attr-defined]
        )

    def src(self, node: ast.AST) -> str:
        start, end = self.span(node)
        return self.text[start:end]

    def edit(
        self,
        maker: str,
        target: ast.AST | tuple[int, int],
        replacement: str,
        description: str,
        node: ast.AST | None = None,
    ) -> Edit:
        """An `Edit` replacing `target` (a node's span, or a character span) by `replacement`;
        the enclosing function is `node`'s (default: `target`'s)."""
        start, end = target if isinstance(target, tuple) else self.span(target)
        owner = node if node is not None else (None if isinstance(target, tuple) else target)
        return Edit(
            maker=maker,
            path=self.path,
            start=start,
            end=end,
            replacement=replacement,
            line=self.text.count("\n", 0, start) + 1,
            end_line=self.text.count("\n", 0, max(start, end - 1)) + 1,
            function=self.functions.get(owner, "") if owner is not None else "",
            description=description,
        )

    def in_function(self, node: ast.AST) -> bool:
        return bool(self.functions.get(node))

    def nodes(self, *types: type) -> Iterator[ast.AST]:
        """Every node of these types that no rule freezes, in source order."""
        found = [n for n in ast.walk(self.tree) if isinstance(n, types) and n not in self.frozen]
        found.sort(key=lambda n: (getattr(n, "lineno", 0), getattr(n, "col_offset", 0)))
        return iter(found)


_FROZEN_NAMES = frozenset({"__all__", "__slots__", "__version__", "__author__", "__match_args__"})


def _is_special_guard(test: ast.expr) -> bool:
    """``if __name__ == "__main__"`` and ``if TYPE_CHECKING``: not program logic."""
    if isinstance(test, ast.Name) and test.id == "TYPE_CHECKING":
        return True
    if isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING":
        return True
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and len(test.comparators) == 1
    )


# -- helpers -------------------------------------------------------------------------------------

#: Node kinds that need parentheses when another operator is put next to them.
_LOOSE = (ast.BoolOp, ast.IfExp, ast.Lambda, ast.NamedExpr, ast.Compare, ast.UnaryOp)


def _wrapped(mod: Module, node: ast.expr, loose: tuple[type, ...] = _LOOSE) -> str:
    text = mod.src(node)
    if isinstance(node, loose) or (
        isinstance(node, ast.BinOp) and isinstance(node.op, (ast.BitOr, ast.BitAnd, ast.BitXor, ast.LShift, ast.RShift))
    ):
        return f"({text})"
    return text


def _find_one(text: str, pattern: str) -> tuple[int, int] | None:
    """The single match of `pattern` in `text` (an operator between two operands); None when
    it is missing, ambiguous, or the text holds a comment or a line continuation."""
    if "#" in text or "\\" in text:
        return None
    found = list(re.finditer(pattern, text))
    if len(found) != 1:
        return None
    return found[0].span()


def _int_constant(node: ast.AST) -> int | None:
    """The value of an int literal (``-1`` included), else None; bools are not ints here."""
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub)
        and isinstance(node.operand, ast.Constant)
        and type(node.operand.value) is int
    ):
        return -node.operand.value
    return None


def _shift(mod: Module, node: ast.expr, delta: int) -> str:
    """`node`'s source moved by `delta` (+1 or -1): a literal is recomputed, ``x + 1`` / ``x - 1``
    loses its ``1`` when that is the way back, anything else gets `` + 1`` / `` - 1``."""
    value = _int_constant(node)
    if value is not None:
        return str(value + delta)
    back = (ast.Add if delta < 0 else ast.Sub) if isinstance(node, ast.BinOp) else None
    if back is not None and isinstance(node.op, back) and _int_constant(node.right) == 1:  # type: ignore[attr-defined]
        return mod.src(node.left)  # type: ignore[attr-defined]
    sign = "+" if delta > 0 else "-"
    return f"{_wrapped(mod, node)} {sign} {abs(delta)}"


def _natural_delta(node: ast.expr, default: int) -> int:
    """The way to move `node` by one that reads most like a slip: ``x + 1`` loses its ``1``
    (-1), ``x - 1`` too (+1), a literal ``0`` becomes ``1``, another literal moves towards the
    next smaller number; anything else moves by `default`."""
    if isinstance(node, ast.BinOp) and _int_constant(node.right) == 1:
        if isinstance(node.op, ast.Add):
            return -1
        if isinstance(node.op, ast.Sub):
            return 1
    value = _int_constant(node)
    if value is not None:
        return 1 if value == 0 else -1
    return default


def _is_stringish(node: ast.AST) -> bool:
    return (isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes))) or isinstance(
        node, (ast.JoinedStr, ast.List, ast.Tuple, ast.ListComp)
    )


def _stable_pick(items: Sequence[str], *key: object) -> str:
    digest = hashlib.sha256(repr(key).encode()).digest()
    return items[int.from_bytes(digest[:4], "big") % len(items)]


def _whole_lines(mod: Module, node: ast.stmt) -> tuple[int, int] | None:
    """The span of the full lines `node` occupies, newline included; None when another
    statement shares one of those lines (``a = 1; b = 2``)."""
    start, end = mod.span(node)
    line_start = mod.line_starts[node.lineno - 1]
    if mod.text[line_start:start].strip():
        return None
    end_line_end = mod.line_starts[node.end_lineno]  # type: ignore[attr-defined]
    rest = mod.text[end:end_line_end]
    if rest.strip() and not rest.strip().startswith("#"):
        return None
    return line_start, end_line_end


def _block_of(mod: Module, stmt: ast.stmt) -> list[ast.stmt] | None:
    """The statement list `stmt` belongs to."""
    parent = mod.parents.get(stmt)
    if parent is None:
        return None
    for name in ("body", "orelse", "finalbody"):
        block = getattr(parent, name, None)
        if isinstance(block, list) and stmt in block:
            return block
    return None


# -- the makers ----------------------------------------------------------------------------------

_CMP_SWAP: dict[type, tuple[str, str]] = {
    ast.Lt: (r"<(?!=)", "<="),
    ast.LtE: (r"<=", "<"),
    ast.Gt: (r">(?!=)", ">="),
    ast.GtE: (r">=", ">"),
    ast.Eq: (r"==", "!="),
    ast.NotEq: (r"!=", "=="),
    ast.Is: (r"\bis\b(?!\s+not\b)", "is not"),
    ast.IsNot: (r"\bis\s+not\b", "is"),
    ast.In: (r"(?<!not )\bin\b", "not in"),
    ast.NotIn: (r"\bnot\s+in\b", "in"),
}


def swap_comparison(mod: Module) -> Iterator[Edit]:
    """Swap one comparison operator for its neighbour or its negation."""
    for node in mod.nodes(ast.Compare):
        if not mod.in_function(node):
            continue
        operands = [node.left, *node.comparators]
        for op, left, right in zip(node.ops, operands, operands[1:], strict=False):
            pattern, new = _CMP_SWAP[type(op)]
            seg_start, seg_end = mod.span(left)[1], mod.span(right)[0]
            hit = _find_one(mod.text[seg_start:seg_end], pattern)
            if hit is None:
                continue
            span = (seg_start + hit[0], seg_start + hit[1])
            old = " ".join(mod.text[span[0] : span[1]].split())
            yield mod.edit("swap_comparison", span, new, f"`{old}` -> `{new}`", node)


def swap_boolean(mod: Module) -> Iterator[Edit]:
    """Swap ``and`` and ``or`` in a two-operand boolean expression."""
    for node in mod.nodes(ast.BoolOp):
        if not mod.in_function(node) or len(node.values) != 2:
            continue
        old, new = ("and", "or") if isinstance(node.op, ast.And) else ("or", "and")
        seg_start, seg_end = mod.span(node.values[0])[1], mod.span(node.values[1])[0]
        hit = _find_one(mod.text[seg_start:seg_end], rf"\b{old}\b")
        if hit is None:
            continue
        span = (seg_start + hit[0], seg_start + hit[1])
        yield mod.edit("swap_boolean", span, new, f"`{old}` -> `{new}`", node)


_ARITH_SWAP: dict[type, tuple[str, str]] = {
    ast.Add: (r"\+", "-"),
    ast.Sub: (r"-", "+"),
    ast.Mult: (r"\*(?!\*)", "/"),
    ast.Div: (r"(?<!/)/(?!/)", "*"),
    ast.FloorDiv: (r"//", "/"),
}


def swap_arithmetic(mod: Module) -> Iterator[Edit]:
    """Swap an arithmetic operator (``+``/``-``, ``*``/``/``, ``//`` -> ``/``) between numbers."""
    for node in mod.nodes(ast.BinOp):
        if not mod.in_function(node) or type(node.op) not in _ARITH_SWAP:
            continue
        if _is_stringish(node.left) or _is_stringish(node.right):
            continue
        pattern, new = _ARITH_SWAP[type(node.op)]
        seg_start, seg_end = mod.span(node.left)[1], mod.span(node.right)[0]
        hit = _find_one(mod.text[seg_start:seg_end], pattern)
        if hit is None:
            continue
        span = (seg_start + hit[0], seg_start + hit[1])
        old = mod.text[span[0] : span[1]]
        yield mod.edit("swap_arithmetic", span, new, f"`{old}` -> `{new}`", node)


def _index_like(node: ast.AST) -> bool:
    """An index that is an int literal or int arithmetic (``i + 1``): sequence, not mapping."""
    if _int_constant(node) is not None:
        return True
    return (
        isinstance(node, ast.BinOp)
        and isinstance(node.op, (ast.Add, ast.Sub))
        and (_int_constant(node.right) is not None or _int_constant(node.left) is not None)
    )


def off_by_one(mod: Module) -> Iterator[Edit]:
    """Move a ``range`` bound, a slice bound or an integer index by one."""
    for node in mod.nodes(ast.Call, ast.Slice, ast.Subscript):
        if not mod.in_function(node):
            continue
        if isinstance(node, ast.Call):
            if not (isinstance(node.func, ast.Name) and node.func.id == "range") or node.keywords:
                continue
            if any(isinstance(a, ast.Starred) for a in node.args) or not 1 <= len(node.args) <= 3:
                continue
            stop = node.args[0] if len(node.args) == 1 else node.args[1]
            d = _natural_delta(stop, -1)
            yield mod.edit("off_by_one", stop, _shift(mod, stop, d), f"range stop {'+' if d > 0 else '-'}1")
            if len(node.args) >= 2:
                start = node.args[0]
                d = _natural_delta(start, 1)
                yield mod.edit("off_by_one", start, _shift(mod, start, d), f"range start {'+' if d > 0 else '-'}1")
        elif isinstance(node, ast.Slice):
            if node.step is not None:
                continue
            for bound, name in ((node.lower, "lower"), (node.upper, "upper")):
                if bound is not None:
                    d = _natural_delta(bound, 1)
                    what = f"slice {name} bound {'+' if d > 0 else '-'}1"
                    yield mod.edit("off_by_one", bound, _shift(mod, bound, d), what)
        else:  # an index
            index = node.slice
            if isinstance(index, ast.Slice) or not isinstance(node.ctx, ast.Load) or not _index_like(index):
                continue
            d = _natural_delta(index, 1)
            yield mod.edit("off_by_one", index, _shift(mod, index, d), f"index {'+' if d > 0 else '-'}1")


def _condition_tests(mod: Module) -> Iterator[ast.expr]:
    for node in mod.nodes(ast.If, ast.While, ast.IfExp, ast.comprehension):
        if not mod.in_function(node):
            continue
        if isinstance(node, ast.comprehension):
            yield from (t for t in node.ifs if t not in mod.frozen)
        elif isinstance(node, ast.While) and isinstance(node.test, ast.Constant):
            continue  # while True
        elif node.test not in mod.frozen:
            yield node.test


def invert_condition(mod: Module) -> Iterator[Edit]:
    """Negate the test of an ``if``/``elif``/``while``, a conditional expression or a
    comprehension filter; a test that is ``not x`` becomes ``x``."""
    for test in _condition_tests(mod):
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            yield mod.edit("invert_condition", test, _wrapped(mod, test.operand, (ast.NamedExpr,)), "`not` removed")
        else:
            inner = _wrapped(mod, test, (ast.BoolOp, ast.IfExp, ast.Lambda, ast.NamedExpr))
            yield mod.edit("invert_condition", test, f"not {inner}", "condition negated")


def remove_condition(mod: Module) -> Iterator[Edit]:
    """Delete a guard (an ``if`` without ``else``, with its body) from a block that keeps other
    statements, or drop one operand of an ``and``/``or`` in a test."""
    for node in mod.nodes(ast.If):
        if not mod.in_function(node) or node.orelse:
            continue
        block = _block_of(mod, node)
        span = _whole_lines(mod, node)
        if block is None or len(block) < 2 or span is None:
            continue
        first = mod.src(node).splitlines()[0].strip()
        yield mod.edit("remove_condition", span, "", f"guard `{first[:60]}` removed", node)
    for test in _condition_tests(mod):
        if not isinstance(test, ast.BoolOp):
            continue
        op = " and " if isinstance(test.op, ast.And) else " or "
        for i in range(len(test.values)):
            rest = [v for j, v in enumerate(test.values) if j != i]
            text = op.join(_wrapped(mod, v, (ast.BoolOp, ast.IfExp, ast.Lambda, ast.NamedExpr)) for v in rest)
            yield mod.edit("remove_condition", test, text, f"operand {i + 1} of `{op.strip()}` dropped")


_NO_SWAP_CALLS = frozenset(
    {"isinstance", "issubclass", "getattr", "setattr", "hasattr", "max", "min", "print", "super", "type", "zip"}
)


def swap_arguments(mod: Module) -> Iterator[Edit]:
    """Swap two neighbouring positional arguments of a call (or two keyword arguments' values)."""
    for node in mod.nodes(ast.Call):
        if not mod.in_function(node):
            continue
        name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
        if name in _NO_SWAP_CALLS:
            continue
        pairs: list[tuple[ast.expr, ast.expr, str]] = []
        args = node.args
        if not any(isinstance(a, ast.Starred) for a in args):
            pairs += [(a, b, "positional arguments") for a, b in itertools.pairwise(args)]
        kws = [k for k in node.keywords if k.arg is not None]
        pairs += [(a.value, b.value, f"values of `{a.arg}=` and `{b.arg}=`") for a, b in itertools.pairwise(kws)]
        for a, b, what in pairs:
            a_text, b_text = mod.src(a), mod.src(b)
            a_kind, b_kind = _literal_type(a), _literal_type(b)
            if a_text == b_text or (a_kind and b_kind and a_kind != b_kind):
                continue  # the same text, or literals of different types: no one writes that
            a_start, a_end = mod.span(a)
            b_start, b_end = mod.span(b)
            between = mod.text[a_end:b_start]
            replacement = b_text + between + a_text
            yield mod.edit(
                "swap_arguments", (a_start, b_end), replacement, f"{what} of `{name or 'call'}` swapped", node
            )


def _new_constant(value: object) -> object | None:
    if isinstance(value, bool):
        return not value
    if type(value) is int:
        return 1 if value == 0 else value + 1
    if type(value) is float:
        return 1.0 if value == 0 else value * 2
    return None


def _constant_excluded(mod: Module, node: ast.Constant) -> bool:
    """Constants no bug maker changes: messages and arguments of ``raise``, keys of ``range`` and
    of indices/slices (``off_by_one`` owns those), parameter defaults (``change_default``)."""
    child: ast.AST = node
    parent = mod.parents.get(node)
    while parent is not None:
        if isinstance(parent, ast.Raise):
            return True
        if isinstance(parent, (ast.Subscript, ast.Slice)) and child is not getattr(parent, "value", None):
            return True
        if isinstance(parent, ast.Call) and isinstance(parent.func, ast.Name) and parent.func.id == "range":
            return True
        if isinstance(parent, ast.arguments):
            return True
        if isinstance(parent, ast.JoinedStr):
            return True
        if isinstance(parent, ast.stmt):
            return False
        child, parent = parent, mod.parents.get(parent)
    return False


def _constant_text(value: object, old_source: str = "") -> str:
    """Python source of a new constant, in the old literal's style (``1e3`` -> ``2e+03``)."""
    if type(value) is float and "e" in old_source.lower():
        return f"{value:g}" if "e" in f"{value:g}" or "." in f"{value:g}" else f"{value:g}.0"
    return repr(value)


def change_constant(mod: Module) -> Iterator[Edit]:
    """Change a number (``n`` -> ``n + 1``, ``0`` -> ``1``, a float doubled) or flip a bool, in
    code (module, class or function level), never in a docstring, annotation or message."""
    for node in mod.nodes(ast.Constant):
        new = _new_constant(node.value)
        if new is None or _constant_excluded(mod, node):
            continue
        parent = mod.parents.get(node)
        if isinstance(parent, ast.UnaryOp) and isinstance(parent.op, ast.USub):
            continue  # -1: off_by_one and the sign make this ambiguous
        text = _constant_text(new, mod.src(node))
        yield mod.edit("change_constant", node, text, f"`{mod.src(node)}` -> `{text}`")


def change_default(mod: Module) -> Iterator[Edit]:
    """Change the default value of a parameter (numbers and bools, as ``change_constant`` does)."""
    for node in mod.nodes(ast.FunctionDef, ast.AsyncFunctionDef):
        params = [*node.args.posonlyargs, *node.args.args]
        defaults = list(zip(params[len(params) - len(node.args.defaults) :], node.args.defaults, strict=False))
        defaults += [(a, d) for a, d in zip(node.args.kwonlyargs, node.args.kw_defaults, strict=False) if d is not None]
        for arg, default in defaults:
            value = default.value if isinstance(default, ast.Constant) else None
            new = _new_constant(value)
            if new is None:
                continue
            text = _constant_text(new, mod.src(default))
            what = f"default of `{arg.arg}`: `{mod.src(default)}` -> `{text}`"
            yield mod.edit("change_default", default, text, what, node.body[0])


_DROPPABLE = (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Expr, ast.Delete)


def drop_statement(mod: Module) -> Iterator[Edit]:
    """Delete an assignment, augmented assignment or call statement from a function's block
    that keeps at least one other statement."""
    for node in mod.nodes(*_DROPPABLE):
        if not mod.in_function(node):
            continue
        if isinstance(node, ast.Expr) and not isinstance(node.value, (ast.Call, ast.Await)):
            continue
        if isinstance(node, ast.AnnAssign) and node.value is None:
            continue
        block = _block_of(mod, node)
        span = _whole_lines(mod, node)
        if block is None or len(block) < 2 or span is None:
            continue
        first = mod.src(node).splitlines()[0].strip()
        yield mod.edit("drop_statement", span, "", f"`{first[:60]}` dropped", node)


def drop_return(mod: Module) -> Iterator[Edit]:
    """Delete a ``return <value>`` (replaced by ``pass`` where it is alone in its block)."""
    for node in mod.nodes(ast.Return):
        if node.value is None or not mod.in_function(node):
            continue
        if isinstance(node.value, ast.Constant) and node.value.value is None:
            continue
        block = _block_of(mod, node)
        span = _whole_lines(mod, node)
        if block is None or span is None:
            continue
        first = mod.src(node).splitlines()[0].strip()
        if len(block) >= 2:
            yield mod.edit("drop_return", span, "", f"`{first[:60]}` dropped", node)
        else:
            indent = mod.text[span[0] : mod.span(node)[0]]
            yield mod.edit("drop_return", span, f"{indent}pass\n", f"`{first[:60]}` replaced by `pass`", node)


_CALL_TYPES = {
    "int": "int",
    "len": "int",
    "float": "float",
    "str": "str",
    "repr": "str",
    "list": "list",
    "sorted": "list",
    "dict": "dict",
    "set": "set",
    "frozenset": "frozenset",
    "tuple": "tuple",
    "bool": "bool",
}


def _literal_type(node: ast.expr | None) -> str | None:
    if node is None:
        return None
    if isinstance(node, ast.Constant) and node.value is not None:
        return type(node.value).__name__
    if isinstance(node, (ast.List, ast.ListComp)):
        return "list"
    if isinstance(node, (ast.Dict, ast.DictComp)):
        return "dict"
    if isinstance(node, (ast.Set, ast.SetComp)):
        return "set"
    if isinstance(node, ast.JoinedStr):
        return "str"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return _CALL_TYPES.get(node.func.id)
    return None


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


def _own_nodes(func: ast.FunctionDef | ast.AsyncFunctionDef) -> Iterator[ast.AST]:
    """The nodes of `func`'s body, not descending into nested functions, lambdas or classes."""
    stack: list[ast.AST] = list(reversed(func.body))
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, _SCOPES):
            stack.extend(reversed(list(ast.iter_child_nodes(node))))


def _typed_names(func: ast.FunctionDef | ast.AsyncFunctionDef) -> dict[str, tuple[str, int]]:
    """Names of `func`'s scope whose type is known: name -> (type, line from which it is set).
    The type is a parameter's or variable's annotation, or the type of the literal (or of the
    builtin call) assigned to it; a name also bound another way is left out."""
    types: dict[str, set[str | None]] = {}
    first: dict[str, int] = {}

    def bind(name: str, kind: str | None, line: int) -> None:
        types.setdefault(name, set()).add(kind)
        first[name] = min(first.get(name, line), line)

    for arg in [*func.args.posonlyargs, *func.args.args, *func.args.kwonlyargs]:
        if arg.arg not in ("self", "cls"):
            bind(arg.arg, ast.unparse(arg.annotation) if arg.annotation is not None else None, func.lineno)
    for arg in (func.args.vararg, func.args.kwarg):
        if arg is not None:
            bind(arg.arg, None, func.lineno)
    for node in _own_nodes(func):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            bind(node.targets[0].id, _literal_type(node.value), node.lineno)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            bind(node.target.id, ast.unparse(node.annotation), node.lineno)
        elif (isinstance(node, ast.ExceptHandler) and node.name) or isinstance(
            node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
        ):
            bind(node.name, None, node.lineno)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                bind((alias.asname or alias.name).split(".")[0], None, node.lineno)
    # A name bound any other way (for, with, unpacking, walrus, augmented assignment) has no known type.
    simple = {
        id(node.targets[0])
        for node in _own_nodes(func)
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
    } | {id(node.target) for node in _own_nodes(func) if isinstance(node, ast.AnnAssign)}
    for node in _own_nodes(func):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)) and id(node) not in simple:
            types.setdefault(node.id, set()).add(None)
    out: dict[str, tuple[str, int]] = {}
    for name, kinds in types.items():
        if len(kinds) == 1 and None not in kinds and name in first:
            out[name] = (next(iter(kinds)), first[name])  # type: ignore[arg-type]
    return out


def wrong_variable(mod: Module) -> Iterator[Edit]:
    """Read another variable of the same type, in scope at that point, instead of the right one."""
    for func in mod.nodes(ast.FunctionDef, ast.AsyncFunctionDef):
        typed = _typed_names(func)
        if len(typed) < 2:
            continue
        for node in _own_nodes(func):
            if not isinstance(node, ast.Name) or not isinstance(node.ctx, ast.Load):
                continue
            if node in mod.frozen or node.id not in typed:
                continue
            parent = mod.parents.get(node)
            if isinstance(parent, ast.Call) and parent.func is node:
                continue
            kind, _ = typed[node.id]
            others = sorted(n for n, (k, line) in typed.items() if k == kind and n != node.id and line < node.lineno)
            if not others:
                continue
            new = _stable_pick(others, mod.path, node.lineno, node.col_offset)
            yield mod.edit("wrong_variable", node, new, f"`{node.id}` read as `{new}` ({kind})")


#: Every bug maker by name, in the order they are documented.
MAKERS: dict[str, Callable[[Module], Iterator[Edit]]] = {
    f.__name__: f
    for f in (
        swap_comparison,
        swap_boolean,
        swap_arithmetic,
        off_by_one,
        invert_condition,
        remove_condition,
        swap_arguments,
        change_constant,
        change_default,
        drop_statement,
        drop_return,
        wrong_variable,
    )
}


def _dump(tree: ast.AST) -> str:
    return ast.dump(tree, include_attributes=False)


def candidates(
    text: str, path: str, makers: Iterable[str] | None = None, *, dropped: Counter[tuple[str, str]] | None = None
) -> list[Edit]:
    """Every edit the named makers (default: all) propose for the file `text`, in the makers'
    order, keeping only those whose result parses and changes the syntax tree; an edit that
    gives the same file as an earlier one is left out. A file that does not parse gives none.
    `dropped`, if given, counts what was left out: ``(maker, why)``."""
    try:
        mod = Module.parse(text, path)
    except (SyntaxError, ValueError):
        return []
    original = _dump(mod.tree)
    seen: set[str] = set()
    out: list[Edit] = []
    drop = dropped if dropped is not None else Counter()
    for name in makers if makers is not None else MAKERS:
        for edit in MAKERS[name](mod):
            new = apply_edit(text, edit)
            if new == text or new in seen:
                drop[(name, "duplicate diff")] += 1
                continue
            try:
                changed = _dump(ast.parse(new)) != original
            except (SyntaxError, ValueError):
                drop[(name, "does not parse")] += 1
                continue
            if not changed:
                drop[(name, "no change to the syntax tree")] += 1
                continue
            seen.add(new)
            out.append(edit)
    return out


def mutants(text: str, maker: str) -> list[str]:
    """The mutated texts one maker makes of a snippet (for tests and exploration).

    >>> mutants("def f(a, b):\\n    return a and b\\n", "swap_boolean")
    ['def f(a, b):\\n    return a or b\\n']
    >>> mutants("x = 'nothing to swap'\\n", "swap_boolean")
    []
    """
    return [apply_edit(text, e) for e in candidates(text, "<snippet>", [maker])]
