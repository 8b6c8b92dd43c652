"""Per repository and version: how the official harness installs an instance and runs its tests.

`SPECS` maps ``(repo, version)`` to a `RepoSpec`. The values are the harness's, re-expressed as
data; each spec's ``origin`` names its source:

- the SWE-bench repositories: ``MAP_REPO_VERSION_TO_SPECS_PY`` of
  ``swebench/harness/constants/python.py`` in swebench 4.1.0, the last release that keeps the
  table in the package (5.x moves each instance's spec into the dataset row; 3.0.17 has the
  same values). Also the repository maps ``MAP_REPO_TO_REQS_PATHS`` and
  ``MAP_REPO_TO_ENV_YML_PATHS`` (where the ``requirements.txt`` / ``environment.yml`` markers
  of ``packages`` are read from) and the repository switch of ``get_test_directives`` in
  ``swebench/harness/test_spec/python.py``. ``swe-bench/humaneval``, the harness's seq2seq toy
  (no repository), is left out.
- the SWE-Gym repositories: the SWE-Gym harness fork (SWE-Gym/SWE-Bench-Fork,
  ``swebench/harness/constants.py``), read through downstream copies of it (see `_SWE_GYM`).

The test command is the harness's: it is run from the repository root as
``test_cmd + " " + directives`` (`swerepair.rewards.harness.directives.test_command`), after
``eval_commands`` and after the ``install`` command is run once more (the harness reinstalls the
patched package before its tests).

A harness quirk that matters: ``constants/python.py`` assigns ``TEST_PYTEST`` twice, first
``"pytest --no-header -rA --tb=no -p no:cacheprovider"``, then ``"pytest -rA"``; every spec
built after the second assignment (all of them) runs ``"pytest -rA"``, and so do these.

``protected`` lists repository paths that belong to the test runner, or that run before it, so
that an agent's patch must not change them: an RL policy rewarded by test verdicts learns to
edit a runner that lives in the repository (sympy's ``bin/test`` and
``sympy/utilities/runtests.py``, django's ``tests/runtests.py``, a ``conftest.py``) to report
passes. Besides the runner itself they hold pytest's configuration (``addopts`` can load a
plugin) and the packaging files: the harness re-runs the install command just before the tests,
so ``setup.py`` is code that runs then, and packaging metadata can register a repository module
as a pytest plugin (a ``pytest11`` entry point). Where the runner *is* the code under repair
(pytest-dev/pytest's ``src/_pytest``, django's ``django/test/``) it cannot be protected; a
verifier has to take its verdicts from a runner outside the repository (docs/harness.md).

`spec_for(repo, version)` looks a pair up, with a fallback (see its docstring) for versions and
repositories the table does not have.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from swerepair.rewards.harness.parsers import PARSERS

__all__ = [
    "DIRECTIVE_STYLES",
    "FALLBACK_ORIGIN",
    "SPECS",
    "RepoSpec",
    "spec_for",
    "spec_from_install_config",
]

#: How `directives.test_directives` turns a test patch into the command's arguments.
DIRECTIVE_STYLES = ("paths", "django", "mypy")


@dataclass(frozen=True)
class RepoSpec:
    """How the harness installs one repository version and runs and reads its tests.

    Field names follow the harness's spec keys; a key the harness leaves out is the empty
    value here (``""``, ``()``, ``None``, ``False``).
    """

    repo: str
    version: str
    #: The Python version of the instance's environment; None where the harness sets none
    #: (its ``environment.yml`` decides).
    python: str | None
    #: The test command, without the test directives.
    test_cmd: str
    #: The log parser's name in `parsers.PARSERS`.
    parser: str
    #: Run in the environment once to install the repository, and again before the tests.
    install: str = ""
    #: ``pip install``-ed after the environment is made.
    pip_packages: tuple[str, ...] = ()
    #: conda packages of the environment, or the marker ``"requirements.txt"`` /
    #: ``"environment.yml"``: the repository's file at ``requirements_paths`` /
    #: ``environment_paths`` (the first that exists) lists them.
    packages: str = ""
    #: Commands run in the repository before ``install`` when the image is built.
    pre_install: tuple[str, ...] = ()
    #: Commands run before the tests (``export`` lines and locale set-up).
    eval_commands: tuple[str, ...] = ()
    #: SWE-Gym: commands run on the ``environment.yml`` before the environment is made.
    env_patches: tuple[str, ...] = ()
    #: ``environment.yml`` repositories: ``conda create`` + ``conda env update`` instead of
    #: ``conda env create``.
    no_use_env: bool = False
    #: The harness runs these tests as a non-root user.
    execute_test_as_nonroot: bool = False
    #: The harness's CPU limit for the container (``nano_cpus``), where it sets one.
    nano_cpus: int | None = None
    #: Where the ``"requirements.txt"`` marker of ``packages`` is read from (first found).
    requirements_paths: tuple[str, ...] = ()
    #: Where the ``"environment.yml"`` marker of ``packages`` is read from (first found).
    environment_paths: tuple[str, ...] = ()
    #: One of `DIRECTIVE_STYLES`.
    directives: str = "paths"
    #: Repository paths (relative, ``/``-separated) of the runner and of what runs before it:
    #: an agent's patch must not change them.
    protected: tuple[str, ...] = ()
    #: Where these values come from.
    origin: str = ""

    @property
    def env_vars(self) -> Mapping[str, str]:
        """The environment ``eval_commands`` exports with literal values (``export K=V``).

        Exports whose value the shell computes (``$(pwd)``, ``${PYTHONPATH:-}``) are left out;
        ``eval_commands`` stays the complete statement of what runs.
        """
        found: dict[str, str] = {}
        for command in self.eval_commands:
            match = _LITERAL_EXPORT.fullmatch(command.strip())
            if match:
                found[match.group(1)] = match.group(2)
        return MappingProxyType(found)


_LITERAL_EXPORT = re.compile(r"export ([A-Za-z_][A-Za-z0-9_]*)=([^\s$`'\"()]*)")


def _paths(*groups: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({path for group in groups for path in group}))


# ---------------------------------------------------------------------------------------------
# The test commands (swebench 4.1.0 constants/python.py), by their effective value.
# ---------------------------------------------------------------------------------------------
#: ``TEST_PYTEST`` as the specs see it (the module's second assignment; see the module docstring).
TEST_PYTEST = "pytest -rA"
TEST_ASTROPY_PYTEST = "pytest -rA -vv -o console_output_style=classic --tb=no"
TEST_DJANGO = "./tests/runtests.py --verbosity 2 --settings=test_sqlite --parallel 1"
TEST_DJANGO_NO_PARALLEL = "./tests/runtests.py --verbosity 2"
TEST_SEABORN = "pytest --no-header -rA"
TEST_SPHINX = "tox --current-env -epy39 -v --"
TEST_SYMPY = "PYTHONWARNINGS='ignore::UserWarning,ignore::SyntaxWarning' bin/test -C --verbose"

# ---------------------------------------------------------------------------------------------
# Protected paths (why: module docstring and docs/harness.md)
# ---------------------------------------------------------------------------------------------
#: Packaging: the harness re-runs the install before the tests (setup.py runs; entry points).
_PACKAGING = ("setup.py", "setup.cfg", "pyproject.toml")
#: pytest's configuration and its root conftest (hooks, ``addopts``, plugins).
_PYTEST_CONFIG = ("conftest.py", "pytest.ini", "tox.ini")
_PYTEST_RUNNER = _paths(_PYTEST_CONFIG, _PACKAGING)

ORIGIN_SWE_BENCH = (
    "SWE-bench harness swebench/harness/constants/python.py MAP_REPO_VERSION_TO_SPECS_PY, "
    "swebench 4.1.0 (same values in 3.0.17); parser: log_parsers/python.py MAP_REPO_TO_PARSER_PY"
)
_SWE_GYM = (
    "SWE-Gym harness fork SWE-Gym/SWE-Bench-Fork swebench/harness/constants.py and "
    "log_parsers.py at 242429c1, read through a downstream copy that cites that commit "
    "(the fork itself was not available to check)"
)
FALLBACK_ORIGIN = (
    "fallback for a repository outside the table: SWE-smith's PythonProfile defaults "
    "(swesmith/profiles/python.py; SWE-smith rows run pytest in their own images)"
)

_TABLE: dict[tuple[str, str], RepoSpec] = {}
_REPOS: dict[str, dict[str, Any]] = {}


def _words(value: str | Iterable[str]) -> tuple[str, ...]:
    """Versions and pip pins are written as one space-separated string each (none has a space)."""
    return tuple(value.split()) if isinstance(value, str) else tuple(value)


def _fields(fields: dict[str, Any]) -> dict[str, Any]:
    if isinstance(fields.get("pip_packages"), str):
        fields = {**fields, "pip_packages": _words(fields["pip_packages"])}
    return fields


def _repo(repo: str, *, parser: str, protected: Iterable[str] = _PYTEST_RUNNER, **defaults: Any) -> None:
    """Declare a repository: the fields all its versions share."""
    _REPOS[repo] = {"parser": parser, "protected": _paths(protected), "origin": ORIGIN_SWE_BENCH, **defaults}


def _add(repo: str, versions: str | Iterable[str], **fields: Any) -> None:
    """One spec per version: the repository's shared fields, then `fields`."""
    for version in _words(versions):
        _TABLE[(repo, version)] = RepoSpec(repo=repo, version=version, **_fields({**_REPOS[repo], **fields}))


def _set(repo: str, versions: str | Iterable[str], **changes: Any) -> None:
    """Later assignments in the harness (``SPECS_X[k]["field"] = ...``)."""
    for version in _words(versions):
        _TABLE[(repo, version)] = replace(_TABLE[(repo, version)], **_fields(changes))


def _extend(repo: str, versions: str | Iterable[str], field: str, items: Iterable[str]) -> None:
    """``SPECS_X[k][field].extend(items)``."""
    items = tuple(items)
    for version in _words(versions):
        spec = _TABLE[(repo, version)]
        _TABLE[(repo, version)] = replace(spec, **{field: getattr(spec, field) + items})


def _append_install(repo: str, versions: str | Iterable[str], suffix: str = "", prefix: str = "") -> None:
    """``SPECS_X[k]["install"] = prefix + ... + suffix``."""
    for version in _words(versions):
        spec = _TABLE[(repo, version)]
        _TABLE[(repo, version)] = replace(spec, install=prefix + spec.install + suffix)


_PIP_EDITABLE = "python -m pip install -e ."

# ---------------------------------------------------------------------------------------------
# scikit-learn/scikit-learn
# ---------------------------------------------------------------------------------------------
_repo("scikit-learn/scikit-learn", parser="pytest_v2", protected=(*_PYTEST_RUNNER, "sklearn/conftest.py"))
_SKLEARN_INSTALL = "python -m pip install -v --no-use-pep517 --no-build-isolation -e ."
_add(
    "scikit-learn/scikit-learn",
    "0.20 0.21 0.22",
    python="3.6",
    packages="numpy scipy cython pytest pandas matplotlib",
    install=_SKLEARN_INSTALL,
    pip_packages="cython numpy==1.19.2 setuptools scipy==1.5.2",
    test_cmd=TEST_PYTEST,
)
_add(
    "scikit-learn/scikit-learn",
    "1.3 1.4 1.5 1.6",
    python="3.9",
    packages=(
        "'numpy==1.19.2' 'scipy==1.5.2' 'cython==3.0.10' pytest 'pandas<2.0.0' 'matplotlib<3.9.0' "
        "setuptools pytest joblib threadpoolctl"
    ),
    install=_SKLEARN_INSTALL,
    pip_packages="cython setuptools numpy scipy",
    test_cmd=TEST_PYTEST,
)

# ---------------------------------------------------------------------------------------------
# pallets/flask
# ---------------------------------------------------------------------------------------------
_repo("pallets/flask", parser="pytest", requirements_paths=("requirements/dev.txt",))
_FLASK = {"packages": "requirements.txt", "install": _PIP_EDITABLE, "test_cmd": TEST_PYTEST}
_FLASK_PINS = (
    "setuptools==70.0.0",
    "click==8.1.3",
    "itsdangerous==2.1.2",
    "Jinja2==3.1.2",
    "MarkupSafe==2.1.1",
    "Werkzeug==2.3.7",
)
_add(
    "pallets/flask",
    ["2.0"],
    python="3.9",
    pip_packages="setuptools==70.0.0 Werkzeug==2.3.7 Jinja2==3.0.1 itsdangerous==2.1.2 click==8.0.1 MarkupSafe==2.1.3",
    **_FLASK,
)
_add("pallets/flask", ["2.1"], python="3.10", pip_packages=_FLASK_PINS, **_FLASK)
_add("pallets/flask", "2.2 2.3 3.0 3.1", python="3.11", pip_packages=_FLASK_PINS, **_FLASK)

# ---------------------------------------------------------------------------------------------
# django/django: its own runner, tests/runtests.py, with the settings module tests/test_sqlite.py
# ---------------------------------------------------------------------------------------------
_repo(
    "django/django",
    parser="django",
    directives="django",
    protected=("tests/runtests.py", "tests/test_sqlite.py", *_PACKAGING),
    requirements_paths=("tests/requirements/py3.txt",),
)
_add(
    "django/django",
    "1.7 1.8 1.9 1.10 1.11 2.0 2.1 2.2",
    python="3.5",
    packages="requirements.txt",
    pre_install=(
        "apt-get update && apt-get install -y locales",
        "echo 'en_US UTF-8' > /etc/locale.gen",
        "locale-gen en_US.UTF-8",
    ),
    install="python setup.py install",
    pip_packages=("setuptools",),
    eval_commands=(
        "export LANG=en_US.UTF-8",
        "export LC_ALL=en_US.UTF-8",
        "export PYTHONIOENCODING=utf8",
        "export LANGUAGE=en_US:en",
    ),
    test_cmd=TEST_DJANGO,
)
_add("django/django", "1.4 1.5 1.6", python="3.5", install="python setup.py install", test_cmd=TEST_DJANGO)
_add(
    "django/django",
    "3.0 3.1 3.2",
    python="3.6",
    packages="requirements.txt",
    install=_PIP_EDITABLE,
    eval_commands=(
        "sed -i '/en_US.UTF-8/s/^# //g' /etc/locale.gen && locale-gen",
        "export LANG=en_US.UTF-8",
        "export LANGUAGE=en_US:en",
        "export LC_ALL=en_US.UTF-8",
    ),
    test_cmd=TEST_DJANGO,
)
for _versions, _python in ((["4.0"], "3.8"), (["4.1", "4.2"], "3.9"), (["5.0", "5.1", "5.2"], "3.11")):
    _add(
        "django/django",
        _versions,
        python=_python,
        packages="requirements.txt",
        install=_PIP_EDITABLE,
        test_cmd=TEST_DJANGO,
    )
_set("django/django", ["1.9"], test_cmd=TEST_DJANGO_NO_PARALLEL)

# ---------------------------------------------------------------------------------------------
# psf/requests (installed without -e: the reinstall before the tests picks the patch up)
# ---------------------------------------------------------------------------------------------
_repo("psf/requests", parser="pytest_options")
_add(
    "psf/requests",
    "0.7 0.8 0.9 0.11 0.13 0.14 1.1 1.2 2.0 2.2 2.3 2.4 2.5 2.7 2.8 2.9 2.10 2.11 2.12 2.17 2.18 2.19 2.22 2.26 "
    "2.25 2.27 2.31 3.0",
    python="3.9",
    packages="pytest",
    install="python -m pip install .",
    test_cmd=TEST_PYTEST,
)

# ---------------------------------------------------------------------------------------------
# mwaskom/seaborn
# ---------------------------------------------------------------------------------------------
_repo("mwaskom/seaborn", parser="seaborn")


def _seaborn_pins(pandas: str) -> str:
    return (
        "contourpy==1.1.0 cycler==0.11.0 fonttools==4.42.1 importlib-resources==6.0.1 kiwisolver==1.4.5 "
        f"matplotlib==3.7.2 numpy==1.25.2 packaging==23.1 {pandas} pillow==10.0.0 pyparsing==3.0.9 pytest "
        "python-dateutil==2.8.2 pytz==2023.3.post1 scipy==1.11.2 six==1.16.0 tzdata==2023.1 zipp==3.16.2"
    )


_add(
    "mwaskom/seaborn",
    ["0.11"],
    python="3.9",
    install=_PIP_EDITABLE,
    pip_packages=_seaborn_pins("pandas==1.3.5"),
    test_cmd=TEST_SEABORN,
)
_add(
    "mwaskom/seaborn",
    "0.12 0.13 0.14",
    python="3.9",
    install="python -m pip install -e .[dev]",
    pip_packages=_seaborn_pins("pandas==2.0.0"),
    test_cmd=TEST_SEABORN,
)

# ---------------------------------------------------------------------------------------------
# pytest-dev/pytest: the runner is the repository under repair (nothing of it can be protected)
# ---------------------------------------------------------------------------------------------
_repo("pytest-dev/pytest", parser="pytest", protected=(*_PYTEST_RUNNER, "testing/conftest.py"))
_add(
    "pytest-dev/pytest",
    "4.4 4.5 4.6 5.0 5.1 5.2 5.3 5.4 6.0 6.2 6.3 7.0 7.1 7.2 7.4 8.0 8.1 8.2 8.3 8.4",
    python="3.9",
    install=_PIP_EDITABLE,
    test_cmd=TEST_PYTEST,
)
#: ``SPECS_PYTEST[k]["pip_packages"] = [...]``: (versions, pins).
_PYTEST_PINS = (
    (
        "4.4",
        "atomicwrites==1.4.1 attrs==23.1.0 more-itertools==10.1.0 pluggy==0.13.1 py==1.11.0 setuptools==68.0.0 "
        "six==1.16.0",
    ),
    (
        "4.5",
        "atomicwrites==1.4.1 attrs==23.1.0 more-itertools==10.1.0 pluggy==0.11.0 py==1.11.0 setuptools==68.0.0 "
        "six==1.16.0 wcwidth==0.2.6",
    ),
    (
        "4.6",
        "atomicwrites==1.4.1 attrs==23.1.0 more-itertools==10.1.0 packaging==23.1 pluggy==0.13.1 py==1.11.0 "
        "six==1.16.0 wcwidth==0.2.6",
    ),
    (
        "5.0 5.1 5.2",
        "atomicwrites==1.4.1 attrs==23.1.0 more-itertools==10.1.0 packaging==23.1 pluggy==0.13.1 py==1.11.0 "
        "wcwidth==0.2.6",
    ),
    ("5.3", "attrs==23.1.0 more-itertools==10.1.0 packaging==23.1 pluggy==0.13.1 py==1.11.0 wcwidth==0.2.6"),
    ("5.4", "py==1.11.0 packaging==23.1 attrs==23.1.0 more-itertools==10.1.0 pluggy==0.13.1"),
    (
        "6.0",
        "attrs==23.1.0 iniconfig==2.0.0 more-itertools==10.1.0 packaging==23.1 pluggy==0.13.1 py==1.11.0 toml==0.10.2",
    ),
    ("6.2 6.3", "attrs==23.1.0 iniconfig==2.0.0 packaging==23.1 pluggy==0.13.1 py==1.11.0 toml==0.10.2"),
    ("7.0", "attrs==23.1.0 iniconfig==2.0.0 packaging==23.1 pluggy==0.13.1 py==1.11.0"),
    ("7.1 7.2", "attrs==23.1.0 iniconfig==2.0.0 packaging==23.1 pluggy==0.13.1 py==1.11.0 tomli==2.0.1"),
    ("7.4 8.0 8.1 8.2 8.3 8.4", "iniconfig==2.0.0 packaging==23.1 pluggy==1.3.0 exceptiongroup==1.1.3 tomli==2.0.1"),
)
for _versions, _pins in _PYTEST_PINS:
    _set("pytest-dev/pytest", _versions, pip_packages=_pins)
_set("pytest-dev/pytest", ["6.3"], pre_install=("sed -i 's/>=>=/>=/' setup.cfg",))

# ---------------------------------------------------------------------------------------------
# matplotlib/matplotlib: image comparison (decorators, compare) decides image tests' verdicts
# ---------------------------------------------------------------------------------------------
_repo(
    "matplotlib/matplotlib",
    parser="matplotlib",
    protected=(
        *_PYTEST_RUNNER,
        "setupext.py",
        "lib/matplotlib/testing/conftest.py",
        "lib/matplotlib/testing/decorators.py",
        "lib/matplotlib/testing/compare.py",
    ),
    requirements_paths=("requirements/dev/dev-requirements.txt", "requirements/testing/travis_all.txt"),
    environment_paths=("environment.yml",),
)
_QHULL = (
    'QHULL_URL="http://www.qhull.org/download/qhull-2020-src-8.0.2.tgz"',
    'QHULL_TAR="/tmp/qhull-2020-src-8.0.2.tgz"',
    'QHULL_BUILD_DIR="/testbed/build"',
    'wget -O "$QHULL_TAR" "$QHULL_URL"',
    'mkdir -p "$QHULL_BUILD_DIR"',
    'tar -xvzf "$QHULL_TAR" -C "$QHULL_BUILD_DIR"',
)
_TEXLIVE = "texlive texlive-latex-extra texlive-fonts-recommended texlive-xetex texlive-luatex cm-super"
_add(
    "matplotlib/matplotlib",
    "3.5 3.6 3.7 3.8 3.9",
    python="3.11",
    packages="environment.yml",
    install=_PIP_EDITABLE,
    pre_install=(
        "apt-get -y update && apt-get -y upgrade && DEBIAN_FRONTEND=noninteractive apt-get install -y "
        f"imagemagick ffmpeg {_TEXLIVE} dvipng",
        *_QHULL,
    ),
    pip_packages=(
        "contourpy==1.1.0 cycler==0.11.0 fonttools==4.42.1 ghostscript kiwisolver==1.4.5 numpy==1.25.2 "
        "packaging==23.1 pillow==10.0.0 pikepdf pyparsing==3.0.9 python-dateutil==2.8.2 six==1.16.0 "
        "setuptools==68.1.2 setuptools-scm==7.1.0 typing-extensions==4.7.1"
    ),
    test_cmd=TEST_PYTEST,
)
_add(
    "matplotlib/matplotlib",
    "3.1 3.2 3.3 3.4",
    python="3.8",
    packages="requirements.txt",
    install=_PIP_EDITABLE,
    pre_install=(
        "apt-get -y update && apt-get -y upgrade && DEBIAN_FRONTEND=noninteractive apt-get install -y "
        f"imagemagick ffmpeg libfreetype6-dev pkg-config {_TEXLIVE}",
        *_QHULL,
    ),
    pip_packages="pytest ipython",
    test_cmd=TEST_PYTEST,
)
_add(
    "matplotlib/matplotlib",
    ["3.0"],
    python="3.7",
    packages="requirements.txt",
    install=_PIP_EDITABLE,
    pre_install=(
        "apt-get -y update && apt-get -y upgrade && apt-get install -y imagemagick ffmpeg libfreetype6-dev pkg-config",
        *_QHULL,
    ),
    pip_packages=("pytest",),
    test_cmd=TEST_PYTEST,
)
_add(
    "matplotlib/matplotlib",
    "2.0 2.1 2.2 1.0 1.1 1.2 1.3 1.4 1.5",
    python="3.5",
    install="python setup.py build; python setup.py install",
    # sic: the harness's command has "&& &&" (a shell syntax error, so this step fails)
    pre_install=("apt-get -y update && apt-get -y upgrade && && apt-get install -y imagemagick ffmpeg",),
    pip_packages=("pytest",),
    execute_test_as_nonroot=True,
    test_cmd=TEST_PYTEST,
)
_set("matplotlib/matplotlib", "3.8 3.9", install='python -m pip install --no-build-isolation -e ".[dev]"')

# ---------------------------------------------------------------------------------------------
# sphinx-doc/sphinx: tox runs the commands of tox.ini (the pre-install adds -rA to them);
# sphinx.testing.fixtures is the pytest plugin the tests load
# ---------------------------------------------------------------------------------------------
_repo("sphinx-doc/sphinx", parser="pytest_v2", protected=(*_PYTEST_RUNNER, "sphinx/testing/fixtures.py"))
_SPHINX_VERSIONS = (
    "1.5 1.6 1.7 1.8 2.0 2.1 2.2 2.3 2.4 3.0 3.1 3.2 3.3 3.4 3.5 4.0 4.1 4.2 4.3 4.4 4.5 5.0 5.1 5.2 5.3 6.0 6.2 7.0 "
    "7.1 7.2 7.3 7.4 8.0 8.1"
)
_add(
    "sphinx-doc/sphinx",
    _SPHINX_VERSIONS,
    python="3.9",
    pip_packages="tox==4.16.0 tox-current-env==0.0.11 Jinja2==3.0.3",
    install="python -m pip install -e .[test]",
    pre_install=("sed -i 's/pytest/pytest -rA/' tox.ini",),
    test_cmd=TEST_SPHINX,
)
_SPHINX_PINNED = _words("3.0 3.1 3.2 3.3 3.4 3.5 4.0 4.1 4.2 4.3 4.4")
_extend(
    "sphinx-doc/sphinx",
    _SPHINX_PINNED,
    "pre_install",
    (
        "sed -i 's/Jinja2>=2.3/Jinja2<3.0/' setup.py",
        "sed -i 's/sphinxcontrib-applehelp/sphinxcontrib-applehelp<=1.0.7/' setup.py",
        "sed -i 's/sphinxcontrib-devhelp/sphinxcontrib-devhelp<=1.0.5/' setup.py",
        "sed -i 's/sphinxcontrib-qthelp/sphinxcontrib-qthelp<=1.0.6/' setup.py",
        "sed -i 's/alabaster>=0.7,<0.8/alabaster>=0.7,<0.7.12/' setup.py",
        "sed -i \"s/'packaging',/'packaging', 'markupsafe<=2.0.1',/\" setup.py",
    ),
)
_extend(
    "sphinx-doc/sphinx",
    "4.2 4.3 4.4",
    "pre_install",
    (
        "sed -i 's/sphinxcontrib-htmlhelp>=2.0.0/sphinxcontrib-htmlhelp>=2.0.0,<=2.0.4/' setup.py",
        "sed -i 's/sphinxcontrib-serializinghtml>=1.1.5/sphinxcontrib-serializinghtml>=1.1.5,<=1.1.9/' setup.py",
    ),
)
_extend(
    "sphinx-doc/sphinx",
    ["4.1"],
    "pre_install",
    (
        "grep -q 'sphinxcontrib-htmlhelp>=2.0.0' setup.py && "
        "sed -i 's/sphinxcontrib-htmlhelp>=2.0.0/sphinxcontrib-htmlhelp>=2.0.0,<=2.0.4/' setup.py || "
        "sed -i 's/sphinxcontrib-htmlhelp/sphinxcontrib-htmlhelp<=2.0.4/' setup.py",
        "grep -q 'sphinxcontrib-serializinghtml>=1.1.5' setup.py && "
        "sed -i 's/sphinxcontrib-serializinghtml>=1.1.5/sphinxcontrib-serializinghtml>=1.1.5,<=1.1.9/' setup.py || "
        "sed -i 's/sphinxcontrib-serializinghtml/sphinxcontrib-serializinghtml<=1.1.9/' setup.py",
    ),
)
_extend(
    "sphinx-doc/sphinx",
    [v for v in _SPHINX_PINNED if v not in ("4.1", "4.2", "4.3", "4.4")],
    "pre_install",
    (
        "sed -i 's/sphinxcontrib-htmlhelp/sphinxcontrib-htmlhelp<=2.0.4/' setup.py",
        "sed -i 's/sphinxcontrib-serializinghtml/sphinxcontrib-serializinghtml<=1.1.9/' setup.py",
    ),
)
_extend(
    "sphinx-doc/sphinx",
    "7.2 7.3 7.4 8.0 8.1",
    "pre_install",
    ("apt-get update && apt-get install -y graphviz",),
)
_set("sphinx-doc/sphinx", "8.0 8.1", python="3.10")

# ---------------------------------------------------------------------------------------------
# astropy/astropy
# ---------------------------------------------------------------------------------------------
_repo("astropy/astropy", parser="pytest_v2", protected=(*_PYTEST_RUNNER, "astropy/conftest.py"))
_ASTROPY_INSTALL = "python -m pip install -e .[test] --verbose"
_add(
    "astropy/astropy",
    "3.0 3.1 3.2 4.1 4.2 4.3 5.0 5.1 5.2 v5.3",
    python="3.9",
    install=_ASTROPY_INSTALL,
    pip_packages=(
        "attrs==23.1.0 exceptiongroup==1.1.3 execnet==2.0.2 hypothesis==6.82.6 iniconfig==2.0.0 numpy==1.25.2 "
        "packaging==23.1 pluggy==1.3.0 psutil==5.9.5 pyerfa==2.0.0.3 pytest-arraydiff==0.5.0 "
        "pytest-astropy-header==0.2.2 pytest-astropy==0.10.0 pytest-cov==4.1.0 pytest-doctestplus==1.0.0 "
        "pytest-filter-subpackage==0.1.2 pytest-mock==3.11.1 pytest-openfiles==0.5.0 pytest-remotedata==0.4.0 "
        "pytest-xdist==3.3.1 pytest==7.4.0 PyYAML==6.0.1 setuptools==68.0.0 sortedcontainers==2.4.0 tomli==2.0.1"
    ),
    test_cmd=TEST_PYTEST,
)
_add(
    "astropy/astropy",
    "0.1 0.2 0.3 0.4 1.1 1.2 1.3",
    python="3.6",
    install=_ASTROPY_INSTALL,
    packages="setuptools==38.2.4",
    pip_packages=(
        "attrs==17.3.0 exceptiongroup==0.0.0a0 execnet==1.5.0 hypothesis==3.44.2 cython==0.27.3 jinja2==2.10 "
        "MarkupSafe==1.0 numpy==1.16.0 packaging==16.8 pluggy==0.6.0 psutil==5.4.2 pyerfa==1.7.0 "
        "pytest-arraydiff==0.1 pytest-astropy-header==0.1 pytest-astropy==0.2.1 pytest-cov==2.5.1 "
        "pytest-doctestplus==0.1.2 pytest-filter-subpackage==0.1 pytest-forked==0.2 pytest-mock==1.6.3 "
        "pytest-openfiles==0.2.0 pytest-remotedata==0.2.0 pytest-xdist==1.20.1 pytest==3.3.1 PyYAML==3.12 "
        "sortedcontainers==1.5.9 tomli==0.2.0"
    ),
    test_cmd=TEST_ASTROPY_PYTEST,
)
_set(
    "astropy/astropy",
    "4.1 4.2 4.3 5.0 5.1 5.2 v5.3",
    pre_install=('sed -i \'s/requires = \\["setuptools",/requires = \\["setuptools==68.0.0",/\' pyproject.toml',),
)
_set("astropy/astropy", ["v5.3"], python="3.10")

# ---------------------------------------------------------------------------------------------
# sympy/sympy: its own runner, bin/test -> sympy/utilities/runtests.py (sympy/testing/runtests.py
# in later versions); XFAIL, raises and skip come from sympy/utilities/pytest.py (sympy/testing/)
# ---------------------------------------------------------------------------------------------
_repo(
    "sympy/sympy",
    parser="sympy",
    protected=(
        "bin/test",
        "sympy/utilities/runtests.py",
        "sympy/testing/runtests.py",
        "sympy/utilities/pytest.py",
        "sympy/testing/pytest.py",
        *_PACKAGING,
    ),
    requirements_paths=("requirements-dev.txt", "requirements-test.txt"),
)
_add(
    "sympy/sympy",
    "0.7 1.0 1.1 1.2 1.4 1.5 1.6 1.7 1.8 1.9 1.10 1.11 1.12",
    python="3.9",
    packages="mpmath flake8",
    pip_packages="mpmath==1.3.0 flake8-comprehensions",
    install=_PIP_EDITABLE,
    test_cmd=TEST_SYMPY,
)
_add(
    "sympy/sympy",
    "1.13 1.14",
    python="3.9",
    packages="requirements.txt",
    install=_PIP_EDITABLE,
    pip_packages=("mpmath==1.3.0",),
    test_cmd=TEST_SYMPY,
)

# ---------------------------------------------------------------------------------------------
# pylint-dev/pylint
# ---------------------------------------------------------------------------------------------
_repo("pylint-dev/pylint", parser="pytest_options", requirements_paths=("requirements_test.txt",))
_add(
    "pylint-dev/pylint",
    "2.10 2.11 2.13 2.14 2.15 2.16 2.17 2.8 2.9 3.0 3.1 3.2 3.3 4.0",
    python="3.9",
    packages="requirements.txt",
    install=_PIP_EDITABLE,
    test_cmd=TEST_PYTEST,
)
_set(
    "pylint-dev/pylint",
    ["2.8"],
    pip_packages=("pyenchant==3.2",),
    pre_install=("apt-get update && apt-get install -y libenchant-2-dev hunspell-en-us",),
)
_set("pylint-dev/pylint", "3.0 3.1 3.2 3.3 4.0", pip_packages="astroid==3.0.0a6 setuptools")
_set("pylint-dev/pylint", "2.14 2.15 2.17 3.0 3.1 3.2 3.3 4.0", nano_cpus=2_000_000_000)

# ---------------------------------------------------------------------------------------------
# pydata/xarray
# ---------------------------------------------------------------------------------------------
_repo(
    "pydata/xarray",
    parser="pytest",
    protected=(*_PYTEST_RUNNER, "xarray/conftest.py"),
    environment_paths=("ci/requirements/environment.yml", "environment.yml"),
)
_add(
    "pydata/xarray",
    "0.12 0.18 0.19 0.20 2022.03 2022.06 2022.09 2023.07 2024.05",
    python="3.10",
    packages="environment.yml",
    install=_PIP_EDITABLE,
    pip_packages=(
        "numpy==1.23.0 packaging==23.1 pandas==1.5.3 pytest==7.4.0 python-dateutil==2.8.2 pytz==2023.3 six==1.16.0 "
        "scipy==1.11.1 setuptools==68.0.0 dask==2022.8.1"
    ),
    no_use_env=True,
    test_cmd=TEST_PYTEST,
)

# ---------------------------------------------------------------------------------------------
# The harness's other repositories (SWE-bench's development split)
# ---------------------------------------------------------------------------------------------
_repo("sqlfluff/sqlfluff", parser="pytest", requirements_paths=("requirements_dev.txt",))
_add(
    "sqlfluff/sqlfluff",
    "0.10 0.11 0.12 0.13 0.4 0.5 0.6 0.8 0.9 1.0 1.1 1.2 1.3 1.4 2.0 2.1 2.2",
    python="3.9",
    packages="requirements.txt",
    install=_PIP_EDITABLE,
    test_cmd=TEST_PYTEST,
)
# dbt-core: the harness gives no test_cmd and no parser (its evaluation would fail with a
# KeyError); the pytest defaults stand in, marked in the origin.
_repo(
    "dbt-labs/dbt-core",
    parser="pytest",
    requirements_paths=("dev-requirements.txt", "dev_requirements.txt"),
    origin=ORIGIN_SWE_BENCH + "; no test_cmd or parser in the harness: pytest defaults (pytest -rA, pytest)",
)
_add(
    "dbt-labs/dbt-core",
    "0.13 0.14 0.15 0.16 0.17 0.18 0.19 0.20 0.21 1.0 1.1 1.2 1.3 1.4 1.5 1.6 1.7",
    python="3.9",
    packages="requirements.txt",
    install=_PIP_EDITABLE,
    test_cmd=TEST_PYTEST,
)
_repo("pyvista/pyvista", parser="pytest", requirements_paths=("requirements_test.txt", "requirements.txt"))
_add(
    "pyvista/pyvista",
    "0.20 0.21 0.22 0.23",
    python="3.9",
    install=_PIP_EDITABLE,
    pip_packages=("pytest",),
    test_cmd=TEST_PYTEST,
)
_add(
    "pyvista/pyvista",
    [f"0.{minor}" for minor in range(24, 44)],
    python="3.9",
    packages="requirements.txt",
    install=_PIP_EDITABLE,
    pip_packages=("pytest",),
    test_cmd=TEST_PYTEST,
    pre_install=("apt-get update && apt-get install -y ffmpeg libsm6 libxext6 libxrender1",),
)
_repo("pylint-dev/astroid", parser="pytest")
_add(
    "pylint-dev/astroid",
    "2.10 2.12 2.13 2.14 2.15 2.16 2.5 2.6 2.7 2.8 2.9 3.0",
    python="3.9",
    install=_PIP_EDITABLE,
    pip_packages=("pytest",),
    test_cmd=TEST_PYTEST,
)
_repo("marshmallow-code/marshmallow", parser="pytest")
_add(
    "marshmallow-code/marshmallow",
    "2.18 2.19 2.20 3.0 3.1 3.10 3.11 3.12 3.13 3.15 3.16 3.19 3.2 3.4 3.8 3.9",
    python="3.9",
    install="python -m pip install -e '.[dev]'",
    test_cmd=TEST_PYTEST,
)
_repo("pvlib/pvlib-python", parser="pytest")
_add(
    "pvlib/pvlib-python",
    [f"0.{minor}" for minor in range(1, 10)],
    python="3.9",
    install="python -m pip install -e .[all]",
    packages="pandas scipy",
    pip_packages="jupyter ipython matplotlib pytest flake8",
    test_cmd=TEST_PYTEST,
)
_repo("pydicom/pydicom", parser="pytest_options")
for _versions, _python in (
    (["1.0", "1.1", "1.2", "1.3"], "3.6"),
    (["1.4", "2.0"], "3.8"),
    (["2.1", "2.2"], "3.9"),
    (["2.3"], "3.10"),
    (["2.4", "3.0"], "3.11"),
):
    _add(
        "pydicom/pydicom",
        _versions,
        python=_python,
        install=_PIP_EDITABLE,
        packages="numpy",
        pip_packages=("pytest",),
        test_cmd=TEST_PYTEST,
    )

# =============================================================================================
# SWE-Gym (origin: _SWE_GYM). Every parser is the harness's pytest parser except pydantic's.
# =============================================================================================
# python/mypy: the fork runs ``test_cmd "CaseA or CaseB"``, the [case ...] names of the test
# patch (mypy's test cases live in test-data/*.test files, which pytest cannot be pointed at).
# The ``-k`` in test_cmd is from the fork's main branch as reproduced by downstream copies
# (SWE-fficiency's make_test_command, MemGym's patch); the copy pinned at 242429c1 shows
# "pytest -rA" / "pytest -n0 -rA" without it.
_repo(
    "python/mypy",
    parser="pytest",
    directives="mypy",
    protected=(*_PYTEST_RUNNER, "test-requirements.txt", "mypy/test/data.py"),
    origin=_SWE_GYM + "; test_cmd's -k and the [case] directives: the fork's main branch via downstream copies",
)
_MYPY_PRE = ("git submodule update --init mypy/typeshed || true",)
_MYPY_INSTALL = "python -m pip install -r test-requirements.txt; python -m pip install -e .; hash -r"
_add(
    "python/mypy",
    "1.7 1.8 1.9 1.10 1.11",
    pre_install=_MYPY_PRE,
    python="3.12",
    install=_MYPY_INSTALL,
    test_cmd="pytest -rA -k",
)
_add(
    "python/mypy",
    "1.0 1.1 1.2 1.3 1.4 1.5 1.6",
    pre_install=_MYPY_PRE,
    python="3.11",
    install=_MYPY_INSTALL,
    test_cmd="pytest -n0 -rA -k",
)
_MYPY_INSTALL_XDIST = (
    "python -m pip install -r test-requirements.txt; python -m pip install -e .; "
    "pip install pytest pytest-xdist; hash -r"
)
_add(
    "python/mypy",
    "0.990 0.980 0.970 0.960 0.950 0.940",
    pre_install=_MYPY_PRE,
    python="3.10",
    install=_MYPY_INSTALL_XDIST,
    test_cmd="pytest -n0 -rA -k",
)
_add(
    "python/mypy",
    "0.920 0.910 0.820 0.810 0.800",
    # types-typing-extensions was yanked: the fork pins it by hand
    pre_install=(*_MYPY_PRE, "sed -i '1i types-typing-extensions==3.7.3' test-requirements.txt"),
    python="3.9",
    install=_MYPY_INSTALL_XDIST + ";",
    test_cmd="pytest -n0 -rA -k",
)

_repo("getmoto/moto", parser="pytest", protected=(*_PYTEST_RUNNER, "Makefile"), origin=_SWE_GYM)
_add(
    "getmoto/moto",
    "0.4 1.0 1.2 1.3 2.0 2.1 2.2 2.3 3.0 3.1 4.0 4.1 4.2 5.0",
    python="3.12",
    install="make init",
    test_cmd="pytest -n0 -rA",
)

_CONAN_REQUIREMENTS = ("conans/requirements.txt", "conans/requirements_server.txt", "conans/requirements_dev.txt")
_repo("conan-io/conan", parser="pytest", protected=(*_PYTEST_RUNNER, *_CONAN_REQUIREMENTS), origin=_SWE_GYM)
_CONAN_INSTALL = "; ".join(f"python -m pip install -r {path}" for path in _CONAN_REQUIREMENTS) + " "
_CONAN = {
    "python": "3.10",
    "pre_install": ("apt-get -y update && apt-get -y upgrade && apt-get install -y build-essential cmake",),
    "eval_commands": ("export PYTHONPATH=${PYTHONPATH:-}:$(pwd)",),
    "test_cmd": "pytest -n0 -rA",
}
_add(
    "conan-io/conan",
    "1.33 1.34 1.36 2.0 1.35 1.37 1.46 1.38 1.39 1.40 1.41 1.42 1.45 1.43 1.44 1.47 1.48 1.49 1.50 1.51 1.52 1.53 "
    "1.55 1.54 1.57 1.58 1.59",
    # cython 3 breaks the older requirements (conan-io/conan#14319)
    install="echo 'cython<3' > /tmp/constraint.txt; export PIP_CONSTRAINT=/tmp/constraint.txt; " + _CONAN_INSTALL,
    **_CONAN,
)
_add("conan-io/conan", "2.1 1.60 1.61 1.62 2.2 2.3 2.4", install=_CONAN_INSTALL, **_CONAN)

# dask/dask: the fork sets no python (environment.yml decides; MemGym's copy adds 3.10).
_repo(
    "dask/dask",
    parser="pytest",
    protected=(*_PYTEST_RUNNER, "dask/conftest.py"),
    environment_paths=(
        "continuous_integration/environment-3.10.yaml",
        "continuous_integration/environment-3.9.yaml",
        "continuous_integration/environment-3.8.yaml",
        "continuous_integration/travis/travis-37.yaml",
    ),
    origin=_SWE_GYM,
)
_add(
    "dask/dask",
    [f"2.{minor}" for minor in (11, 12, 13, 14, 15, 16, 17, 18, 19, 21, 22, 23, 25, 26, 27, 28, 29, 30)]
    + ["2020.12"]
    + [f"2021.{month:02d}" for month in range(1, 13)]
    + [f"2022.{month:02d}" for month in range(1, 6)]
    + [f"2022.{month}" for month in range(6, 13)]
    + [f"2023.{month}" for month in range(1, 13)]
    + [f"2024.{month}" for month in range(1, 6)],
    python=None,
    # dask's environment.yml installs dask itself from GitHub: those lines go
    env_patches=("sed -i '/- pip:/,/^ *-/d' environment.yml",),
    packages="environment.yml",
    install="python -m pip install --no-deps -e .",
    test_cmd="pytest -n0 -rA  --color=no",
)

_repo("Project-MONAI/MONAI", parser="pytest", protected=(*_PYTEST_RUNNER, "requirements-dev.txt"), origin=_SWE_GYM)
_add(
    "Project-MONAI/MONAI",
    "0.1 0.2 0.3 0.4 0.5 0.6 0.7 0.8 0.9 0.11 0.105 1.0 1.1 1.2 1.3",
    python="3.8",
    # MONAI's requirements-dev.txt installs MONAI itself from git: that line goes
    install=(
        r"sed -i '/^git+https:\/\/github.com\/Project-MONAI\//d' requirements-dev.txt; "
        "python -m pip install types-pkg-resources==0.1.3 pytest; pip install -r requirements-dev.txt;"
        "python setup.py develop;"
    ),
    test_cmd="pytest -rA ",
    requirements_paths=("requirements-dev.txt",),
)

_repo(
    "iterative/dvc",
    parser="pytest",
    protected=(*_PYTEST_RUNNER, "tests/requirements.txt", "test-requirements.txt"),
    origin=_SWE_GYM,
)
_DVC_OLD = [
    "0.1",
    "0.8",
    "0.9",
    *[f"0.{minor}" for minor in (12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 27, 28, 29, 30)],
    *[f"0.{minor}" for minor in (31, 32, 33, 34, 35, 40, 41, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60)],
    *[f"0.{minor}" for minor in (61, 62, 63, 65, 66, 68, 69, 70, 71, 74, 75, 76, 77, 78, 80, 81, 82, 83)],
    *[f"0.{minor}" for minor in (84, 85, 86, 87, 88, 89, 90, 91, 92, 93)],
]
_DVC_MIDDLE = [
    *[f"1.{minor}" for minor in range(12)],
    *[f"2.{minor}" for minor in range(14)],
    *[f"2.{minor}" for minor in (15, 17, 19, 20, 21, 22, 23, 24, 27, 28, 30, 33, 34, 35, 38, 41, 43, 44)],
    *[f"2.{minor}" for minor in (45, 46, 48, 50, 51, 52, 54, 55, 56, 57, 58)],
    "3.0",
    "3.1",
    "3.2",
    "3.3",
]
_DVC_NEW = [
    f"3.{minor}" for minor in (4, 5, 6, 10, 11, 12, 13, 14, 15, 17, 19, 23, 24, 28, 29, 36, 37, 38, 43, 47, 48, 49)
]
_add(
    "iterative/dvc",
    _DVC_OLD + _DVC_MIDDLE + _DVC_NEW,
    python="3.10",
    pre_install=(
        "apt-get -y update && apt-get -y upgrade && apt-get install -y cmake",
        # a moto dev release that is gone from PyPI; pyarrow and boto3 pins that conflict
        r"[ -f setup.py ] && sed -E -i 's/moto==([0-9]+\.[0-9]+\.[0-9]+)\.dev[0-9]+/moto==\1/' setup.py",
        "[ -f setup.py ] && sed -i 's/pyarrow==0.15.1/pyarrow==0.16/' setup.py",
        "[ -f setup.py ] && sed -i 's/boto3==1.9.115/boto3==1.9.201/' setup.py",
    ),
    install=(
        'python -m pip install --upgrade pip wheel GitPython; python -m pip install "cython<3.0.0" && '
        "python -m pip install --no-build-isolation pyyaml==5.4.1; "
        "python -m pip install git+https://github.com/iterative/mock-ssh-server.git || true; "
        "python -m pip install -r tests/requirements.txt || true; "
        "python -m pip install -r test-requirements.txt || true; "
        'python -m pip install -e ".[tests,dev,all_remotes,all,testing]";'
    ),
    test_cmd="pytest -rA",
)
# pytest 8 breaks pytest-lazy-fixture; old dvc needs old numpy
_set("iterative/dvc", _DVC_OLD, python="3.8")
_set("iterative/dvc", _DVC_MIDDLE, python="3.9")
_append_install(
    "iterative/dvc",
    _DVC_OLD + _DVC_MIDDLE,
    suffix=' python -m pip install "numpy<=1.20"; python -m pip install "pytest<8";',
)

_repo(
    "bokeh/bokeh",
    parser="pytest",
    environment_paths=("conda/environment-test-3.10.yml", "environment.yml"),
    origin=_SWE_GYM,
)
_BOKEH_JS = ("cd bokehjs && npm install --location=global npm && npm ci && cd ../",)
_add(
    "bokeh/bokeh",
    "3.0 3.3 3.4 3.5",
    python="3.10",
    packages="environment.yml",
    pre_install=_BOKEH_JS,
    install="python -m pip install -e .; python -m pip install bokeh_sampledata;",
    test_cmd="pytest -rA -n0",
)
_add(
    "bokeh/bokeh",
    "2.0 2.1 2.3 2.4 0.4 0.5 0.6 0.7 0.8 0.9 0.10 0.11 0.12 0.13 0.1181316818 1.0 1.1 1.2 1.3 1.4",
    python="3.8",
    packages="environment.yml",
    env_patches=(": \"${CONDA_MKL_INTERFACE_LAYER_BACKUP:=''}\"",),
    pre_install=_BOKEH_JS,
    # sic: the fork's printf argument holds a newline character, not a backslash-n
    install='pip install "setuptools<66" "jinja2<3.1"; printf "1\n" | python setup.py develop; bokeh sampledata;',
    test_cmd="pytest -rA -n0",
)

# modin: numpy 2 support came in June 2024 (modin-project/modin#7312), so numpy stays below 2
_repo(
    "modin-project/modin",
    parser="pytest",
    protected=(*_PYTEST_RUNNER, "requirements-dev.txt", "modin/conftest.py"),
    environment_paths=("environment-dev.yml",),
    origin=_SWE_GYM,
)
_MODIN_VERSIONS = [f"0.{minor}" for minor in (1, 2, 3, 4, 6, 8, 9, *range(10, 31))]
_add(
    "modin-project/modin",
    _MODIN_VERSIONS,
    python="3.9",
    pre_install=("apt-get -y update && apt-get -y upgrade && apt-get install -y libpq-dev",),
    packages="environment.yml",
    install=(
        "python -m pip install 'numpy<2.0'; python -m pip install --upgrade Cython; "
        "python -m pip install -r requirements-dev.txt; python -m pip install -e ."
    ),
    test_cmd="pytest -n0 -rA",
)
_MODIN_OLD = [v for v in _MODIN_VERSIONS if int(v.split(".")[1]) <= 19]
_set("modin-project/modin", _MODIN_OLD, python="3.8")
_append_install("modin-project/modin", _MODIN_OLD, suffix=" python -m pip install numpy==1.23.1 protobuf==3.20.1;")

_repo("pydantic/pydantic", parser="pydantic", protected=(*_PYTEST_RUNNER, "Makefile"), origin=_SWE_GYM)
_PYDANTIC_V1 = ["0.2", "0.41", "0.4", "0.6", "0.9", "0.10", "0.11", "0.13", "0.14", "0.151", "0.15", "0.17"]
_PYDANTIC_V1 += ["0.18", "0.201", "0.20", "0.24", "0.27", "0.29", "1.01", "0.32", "1.4", "1.31", "1.41", "1.51"]
_PYDANTIC_V1 += ["1.5", "1.71", "1.6", "1.7", "1.8", "1.9", "1.10"]


def _pydantic_pre(pdm: str) -> tuple[str, ...]:
    return (
        "apt-get update && apt-get install -y locales",
        "apt-get install -y pipx",
        "pipx ensurepath",
        pdm,
        'export PATH="$HOME/.local/bin:$PATH"',
        "which python",
        "python --version",
    )


_add(
    "pydantic/pydantic",
    [*_PYDANTIC_V1, "2.0", "2.01", "2.02", "2.03", "2.04", "2.6", "2.5", "2.4", "2.7"],
    python="3.8",
    pre_install=_pydantic_pre("pipx install pdm"),
    install='export PATH="$HOME/.local/bin:$PATH"; pdm add pre-commit; make install;',
    test_cmd="pytest -rA --tb=short -vv -o console_output_style=classic --no-header",
)
# the fork marks these "not working yet"
_set("pydantic/pydantic", _PYDANTIC_V1, python="3.7", pre_install=_pydantic_pre("pipx install pdm  --python python3.7"))

_repo("pandas-dev/pandas", parser="pytest", protected=(*_PYTEST_RUNNER, "pandas/conftest.py"), origin=_SWE_GYM)
_PANDAS_VERSIONS = [f"0.{minor}" for minor in range(16, 27)] + ["1.0", "1.1", "1.2", "1.3", "1.4", "1.5"]
_add(
    "pandas-dev/pandas",
    [*_PANDAS_VERSIONS, "2.0", "2.1", "2.2", "3.0"],
    # the fork sets no python (environment.yml decides; MemGym's copy adds 3.10)
    python=None,
    packages="environment.yml",
    pre_install=("git remote add upstream https://github.com/pandas-dev/pandas.git", "git fetch upstream --tags"),
    install="python -m pip install -ve . --no-build-isolation -Ceditable-verbose=true; pip uninstall pytest-qt -y;",
    test_cmd="pytest -rA --tb=long",
    environment_paths=("environment.yml",),
)
# numpy 2 is supported from pandas 2.2 on
_append_install("pandas-dev/pandas", [*_PANDAS_VERSIONS, "2.0", "2.1"], prefix="python -m pip install 'numpy<2'; ")

_HYDRA_REQUIREMENTS = ("requirements/dev.txt", "requirements/requirements.txt")
_repo(
    "facebookresearch/hydra",
    parser="pytest",
    protected=(*_PYTEST_RUNNER, *_HYDRA_REQUIREMENTS),
    requirements_paths=("requirements/dev.txt",),
    origin=_SWE_GYM,
)
_add(
    "facebookresearch/hydra",
    "0.1 0.9 0.10 0.11 0.12 1.0 1.1 1.2 1.3 1.4",
    python="3.8",
    pre_install=("apt-get -y update && apt-get -y upgrade && apt-get install -y openjdk-17-jdk openjdk-17-jre",),
    install="pip install -r requirements/dev.txt; pip install -e .;",
    test_cmd="pytest -rA --tb=long",
)
# the fork pins pip 24.0 ("fix omegaconf pip version issue"); isort's git:// URL moved to https
_append_install(
    "facebookresearch/hydra",
    "0.1 0.9 0.10 0.11 0.12 1.0 1.1 1.2",
    prefix=(
        "sed -i "
        "'s|isort@git+git://github.com/timothycrosley/isort|isort@git+https://github.com/timothycrosley/isort|g' "
        "requirements/dev.txt; "
        '{ tail -n1 requirements/requirements.txt | grep -q "." && echo ""; } >> requirements/requirements.txt; '
        'echo "pip==24.0" >> requirements/requirements.txt;pip install "pip==24.0"; '
    ),
)

#: Every spec, by ``(repo, version)``, repositories spelled as in the datasets.
SPECS: Mapping[tuple[str, str], RepoSpec] = MappingProxyType(dict(_TABLE))
_BY_REPO: dict[str, dict[str, RepoSpec]] = {}
for (_name, _version), _spec in _TABLE.items():
    _BY_REPO.setdefault(_name.lower(), {})[_version] = _spec

#: The fallback for repositories the table does not have (SWE-smith's PythonProfile defaults).
FALLBACK_TEST_CMD = "pytest --disable-warnings --color=no --tb=no --verbose"


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version))


def spec_for(repo: str, version: str | None = None) -> RepoSpec:
    """The spec of `repo` at `version`; never raises for a string pair.

    The rule, in order:

    1. ``(repo, version)`` is in `SPECS` (the repository's name compared case-insensitively,
       as the SWE-Gym fork does): that spec.
    2. The repository is in `SPECS`, the version is not: the spec of the highest known version
       not above it (versions compared by their numbers, ``"v5.3"`` as 5.3), or of the lowest
       known version if every known one is above it, or of the newest known version if the
       version has no number (None, ``""``); its ``version`` is the one asked for and its
       ``origin`` says which spec stood in.
    3. An unknown repository (a SWE-smith row, a repository of your own): SWE-smith's Python
       default, ``pytest --disable-warnings --color=no --tb=no --verbose`` read by the
       ``swesmith`` parser, Python 3.10, ``python -m pip install -e .``, test files as
       directives, pytest's configuration and the packaging files protected.
    """
    version = "" if version is None else str(version)
    known = _BY_REPO.get(repo.lower())
    if known is None:
        return RepoSpec(
            repo=repo,
            version=version,
            python="3.10",
            test_cmd=FALLBACK_TEST_CMD,
            parser="swesmith",
            install=_PIP_EDITABLE,
            protected=_PYTEST_RUNNER,
            origin=FALLBACK_ORIGIN,
        )
    if version in known:
        return known[version]
    wanted = _version_key(version)
    ordered = sorted(known, key=_version_key)
    if not wanted:  # None, "", no number at all: the newest known version
        stand_in = known[ordered[-1]]
    else:
        below = [v for v in ordered if _version_key(v) <= wanted]
        stand_in = known[below[-1] if below else ordered[0]]
    return replace(
        stand_in,
        version=version,
        origin=f"{stand_in.origin}; version {version!r} is not in the table: the spec of {stand_in.version!r}",
    )


#: Parser names as SWE-rebench / SWE-bench-extra rows spell them (``install_config["log_parser"]``,
#: the harness's function names), to the parsers here.
_HARNESS_PARSER_NAMES: Mapping[str, str] = MappingProxyType(
    {
        **{f"parse_log_{name}": name for name in PARSERS},
        "parse_log_pytest_pydantic": "pydantic",
        **{f"parse_log_{alias}": "pytest" for alias in ("astroid", "flask", "marshmallow", "pvlib", "pyvista")},
        **{f"parse_log_{alias}": "pytest" for alias in ("sqlfluff", "xarray")},
        **{f"parse_log_{alias}": "pytest_options" for alias in ("pydicom", "requests", "pylint")},
        **{f"parse_log_{alias}": "pytest_v2" for alias in ("astropy", "scikit", "sphinx")},
    }
)


def spec_from_install_config(repo: str, version: str, config: Mapping[str, Any]) -> RepoSpec:
    """A spec from a dataset row's own ``install_config`` (SWE-rebench, SWE-bench-extra).

    Those datasets carry the harness's spec keys per instance instead of a table; the keys
    read here are the harness's (``python``, ``install``, ``test_cmd``, ``pip_packages``,
    ``packages``, ``pre_install``, ``eval_commands``, ``log_parser``, ``reqs_path``,
    ``env_yml_path``, ``no_use_env``). `ValueError` for a ``test_cmd`` that is not a string
    (a list of commands: their meaning is the dataset's, not checked here) and for a parser
    this package does not have. The row's repository gets the fallback's protected paths.
    """
    test_cmd = config.get("test_cmd")
    if not isinstance(test_cmd, str):
        raise ValueError(f"install_config test_cmd must be a string, got {type(test_cmd).__name__}")
    name = str(config.get("log_parser") or "parse_log_pytest")
    parser = _HARNESS_PARSER_NAMES.get(name, name if name in PARSERS else "")
    if not parser:
        raise ValueError(f"unknown log parser {name!r} (known: {sorted(_HARNESS_PARSER_NAMES)})")

    def strings(key: str) -> tuple[str, ...]:
        value = config.get(key) or ()
        return (value,) if isinstance(value, str) else tuple(str(item) for item in value)

    python = config.get("python")
    return RepoSpec(
        repo=repo,
        version=str(version),
        python=None if python is None else str(python),
        test_cmd=test_cmd,
        parser=parser,
        install=str(config.get("install") or ""),
        pip_packages=strings("pip_packages"),
        packages=str(config.get("packages") or ""),
        pre_install=strings("pre_install"),
        eval_commands=strings("eval_commands"),
        no_use_env=bool(config.get("no_use_env", False)),
        requirements_paths=strings("reqs_path"),
        environment_paths=strings("env_yml_path"),
        directives="django" if repo.lower() == "django/django" else "paths",
        protected=_PYTEST_RUNNER,
        origin=f"the dataset row's install_config for {repo} {version}",
    )
