"""Every Python code block in README.md and docs/*.md runs (tests/test_doctests.py covers the
`>>>` examples in docstrings; this covers the pages a newcomer copies from).

How a page marks its blocks, in an HTML comment on the line just before the fence (it does not
render):

- nothing: the block runs. The blocks of one page run in order in one namespace, so a page can
  build an example up step by step; a block that defines `test_*` functions (a property test, say)
  has them called too.
- ``<!-- docs-test: skip REASON -->``: the block does not run, and REASON (required) says why: it
  needs a GPU, a Docker engine, a dataset download, a server it cannot start, or it is a sketch.
- ``<!-- docs-test: slow -->``: the block runs only with the slow tests (``-m slow``): a training run.
- ``<!-- docs-test: setup CODE -->``: CODE runs (unrendered) before the block: stand-ins for the
  names the prose has introduced (a task, a patch), so the block shows only what it teaches.

Each page runs in a fresh temporary directory, so its `runs/...` and files stay out of the tree.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKER = re.compile(r"<!--\s*docs-test:\s*(skip|slow|setup)\b(.*?)-->", re.S)


@dataclass(frozen=True)
class Block:
    page: str
    line: int  # 1-based line of the opening fence
    code: str
    mode: str  # "run", "skip", "slow"
    reason: str = ""
    setup: str = ""


def blocks(page: Path) -> list[Block]:
    """The ```python blocks of a page, with the marker comment before each, if any."""
    text = page.read_text()
    lines = text.splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        fence = lines[i]
        if not fence.startswith("```"):
            i += 1
            continue
        end = i + 1
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        if fence[3:].strip().split(" ")[0] == "python":
            mode, reason, setup = "run", "", ""
            # the comment ends on the line before the fence (it may span several lines)
            before = "\n".join(lines[max(0, i - 30) : i])
            if i > 0 and lines[i - 1].rstrip().endswith("-->"):
                found = list(MARKER.finditer(before))
                if found and found[-1].end() == len(before.rstrip()):
                    kind, rest = found[-1].group(1), found[-1].group(2)
                    if kind == "setup":
                        setup = textwrap.dedent(rest.strip("\n"))
                    else:
                        mode, reason = kind, rest.strip()
            out.append(Block(page.name, i + 1, "\n".join(lines[i + 1 : end]), mode, reason, setup))
        i = end + 1
    return out


ALL = [b for page in PAGES for b in blocks(page)]
SLOW_PAGES = {b.page for b in ALL if b.mode == "slow"}


def defined_tests(namespace: dict, where: str, before: set[str]) -> list:
    """The `test_*` functions a block defined (not ones it imported, such as `test_command`)."""
    out = []
    for name, fn in namespace.items():
        code = getattr(getattr(fn, "hypothesis", None), "inner_test", fn)
        code = getattr(code, "__code__", None)
        if name.startswith("test_") and name not in before and code is not None and code.co_filename == where:
            out.append(fn)
    return out


@pytest.fixture(autouse=True)
def _hypothesis_on_shared_cores():
    """The pages' property tests run as written; on a busy 2-core machine Hypothesis's timing
    health checks and per-example deadline measure the machine, not the example."""
    try:
        from hypothesis import HealthCheck, settings
    except ImportError:  # the pages that need it fail with a clear ImportError
        yield
        return
    settings.register_profile(
        "docs", deadline=None, max_examples=50, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
    )
    previous = settings._current_profile
    settings.load_profile("docs")
    yield
    settings.load_profile(previous)


def run_page(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, slow: bool) -> int:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SWEREPAIR_DOCS_TEST", "1")
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    ran = 0
    for block in blocks(page):
        if block.mode == "skip" or (block.mode == "slow" and not slow):
            continue
        where = f"{block.page}:{block.line}"
        before = {k for k, v in namespace.items() if k.startswith("test_") and callable(v)}
        try:
            if block.setup:
                exec(compile(block.setup, f"{where} (setup)", "exec"), namespace)
            exec(compile(block.code, where, "exec"), namespace)
            for fn in defined_tests(namespace, where, before):
                fn()
        except Exception as exc:
            raise AssertionError(f"the code block at {where} fails: {type(exc).__name__}: {exc}") from exc
        ran += 1
    return ran


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_page_runs(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_page(page, tmp_path, monkeypatch, slow=False)


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p in PAGES if p.name in SLOW_PAGES], ids=lambda p: p.name)
def test_page_runs_with_slow_blocks(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_page(page, tmp_path, monkeypatch, slow=True)


def test_every_skip_says_why() -> None:
    unexplained = [f"{b.page}:{b.line}" for b in ALL if b.mode == "skip" and len(b.reason) < 10]
    assert not unexplained, f"docs-test skips without a reason: {unexplained}"


def test_the_pages_have_runnable_blocks() -> None:
    """The marker parsing finds the blocks (a page marked all-skip by a parsing slip would pass)."""
    assert len(ALL) > 20
    assert sum(b.mode == "run" for b in ALL) >= len(ALL) // 3


def test_marker_parsing(tmp_path: Path) -> None:
    page = tmp_path / "p.md"
    page.write_text(
        "text\n```python\na = 1\n```\n"
        "<!-- docs-test: skip needs a GPU -->\n```python\nimport cuda\n```\n"
        "<!-- docs-test: setup\nb = 2\n-->\n```python\nc = b\n```\n"
        "```bash\nls\n```\n"
    )
    got = blocks(page)
    assert [(b.mode, b.reason, b.setup, b.code) for b in got] == [
        ("run", "", "", "a = 1"),
        ("skip", "needs a GPU", "", "import cuda"),
        ("run", "", "b = 2", "c = b"),
    ]
