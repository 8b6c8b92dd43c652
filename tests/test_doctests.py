"""Every `>>>` example in the package's docstrings runs and gives what it shows."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import swerepair

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(swerepair.__path__, prefix="swerepair.")
    if not m.name.endswith("__main__") and ".bundled.build" not in m.name
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} doctest example(s) failed in {name}"


def test_modules_with_examples_are_found() -> None:
    assert {"swerepair.rewards.similarity", "swerepair.rewards.patch", "swerepair.agents.parsing"} <= set(MODULES)
