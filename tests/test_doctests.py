"""Every `>>>` example in the package's docstrings runs and gives what it shows."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import swerepair

#: Optional dependencies: modules that need them are skipped where they are not installed.
OPTIONAL = {"torch", "transformers", "tokenizers", "hypothesis", "gguf", "pyarrow"}
OPTIONAL |= {"peft", "deepspeed", "yaml", "matplotlib"}

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(swerepair.__path__, prefix="swerepair.")
    # _runner_main and _harness_main are scripts the verifier sends into its sandbox, not modules
    if not m.name.endswith(("__main__", "._runner_main", "._harness_main")) and ".bundled.build" not in m.name
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:  # a module behind an optional extra (models, dev)
        if exc.name in OPTIONAL:
            pytest.skip(f"{name} needs {exc.name}")
        raise
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} doctest example(s) failed in {name}"


def test_modules_with_examples_are_found() -> None:
    assert {"swerepair.rewards.similarity", "swerepair.rewards.patch", "swerepair.agents.scaffold.parsing"} <= set(
        MODULES
    )
