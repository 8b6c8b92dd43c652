"""Harness parity: the spec table, the test directives and each runner's log parser.

The logs below are written the way each runner prints them (pytest ``-rA``, django's
``runtests.py --verbosity 2``, sympy's ``bin/test --verbose``), noise included, and the expected
results are what the SWE-bench harness's parsers read from them, quirks included (a django test
with a docstring is known by its docstring line; sympy's last test of a file shares its line with
``[OK]`` and is not read).
"""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swerepair.rewards.harness import (
    DIRECTIVE_STYLES,
    END_TEST_OUTPUT,
    FALLBACK_ORIGIN,
    PARSERS,
    SPECS,
    START_TEST_OUTPUT,
    RepoSpec,
    TestStatus,
    parse_log,
    spec_for,
    spec_from_install_config,
    test_command,
    test_directives,
)

P, F, S, E, X = TestStatus.PASSED, TestStatus.FAILED, TestStatus.SKIPPED, TestStatus.ERROR, TestStatus.XFAIL

# ---------------------------------------------------------------------------------------------
# pytest
# ---------------------------------------------------------------------------------------------

PYTEST_LOG = """\
+ pytest -rA tests/test_calc.py
============================= test session starts ==============================
platform linux -- Python 3.9.19, pytest-7.4.0, pluggy-1.3.0
rootdir: /testbed
configfile: setup.cfg
plugins: hypothesis-6.82.6, xdist-3.3.1
collected 9 items

tests/test_calc.py ..F.sxE..                                             [100%]

==================================== ERRORS ====================================
____________________ ERROR at setup of test_needs_fixture _____________________
file /testbed/tests/test_calc.py, line 40
  def test_needs_fixture(database):
E       fixture 'database' not found
>       available fixtures: cache, capfd, capsys, monkeypatch, tmp_path
/testbed/tests/test_calc.py:40
=================================== FAILURES ===================================
___________________________ test_sub[1-2--1 extra] ____________________________

a = 1, b = 2, expected = -1

    @pytest.mark.parametrize("a,b,expected", [(1, 2, -1)], ids=["1-2--1 extra"])
    def test_sub(a, b, expected):
>       assert sub(a, b) == expected
E       assert 3 == -1
E        +  where 3 = sub(1, 2)

tests/test_calc.py:21: AssertionError
=============================== warnings summary ===============================
tests/test_calc.py::test_add
  /testbed/calc/core.py:8: DeprecationWarning: add() is deprecated
    warnings.warn("add() is deprecated", DeprecationWarning)

-- Docs: https://docs.pytest.org/en/stable/how-to/capture-warnings.html
==================================== PASSES ====================================
=========================== short test summary info ============================
PASSED tests/test_calc.py::test_add
PASSED tests/test_calc.py::test_twice[2-4]
PASSED tests/test_calc.py::test_format[a b]
PASSED tests/test_calc.py::TestSuite::test_method
PASSED tests/test_calc.py::test_path[/tmp/pytest-of-root/pytest-0/test_path0/data.txt]
SKIPPED [1] tests/test_calc.py:30: needs network
XFAIL tests/test_calc.py::test_known_bug - reason: issue 12
ERROR tests/test_calc.py::test_needs_fixture
FAILED tests/test_calc.py::test_sub[1-2--1 extra] - assert 3 == -1
============== 1 failed, 5 passed, 1 skipped, 1 xfailed, 1 error in 0.12s ==============
"""


def test_pytest_parser_reads_the_summary():
    assert PARSERS["pytest"](PYTEST_LOG) == {
        "tests/test_calc.py::test_add": P,
        "tests/test_calc.py::test_twice[2-4]": P,
        # ids with spaces are cut at the space, as the harness (and the datasets' lists) have them
        "tests/test_calc.py::test_format[a": P,
        "tests/test_calc.py::TestSuite::test_method": P,
        "tests/test_calc.py::test_path[/tmp/pytest-of-root/pytest-0/test_path0/data.txt]": P,
        "tests/test_calc.py::test_known_bug": X,
        "tests/test_calc.py::test_needs_fixture": E,
        "tests/test_calc.py::test_sub[1-2--1": F,
    }


def test_pytest_v2_keeps_ids_with_spaces_and_drops_the_failure_message():
    result = PARSERS["pytest_v2"](PYTEST_LOG)
    assert result["tests/test_calc.py::test_format[a b]"] == P
    assert result["tests/test_calc.py::test_sub[1-2--1 extra]"] == F
    assert result["tests/test_calc.py::test_needs_fixture"] == E
    # the XFAIL line keeps its " - reason" (only FAILED lines are cut), as in the harness
    assert result["tests/test_calc.py::test_known_bug - reason: issue 12"] == X
    assert "[1]" not in result  # "SKIPPED [1] path:line: reason" is a count, not a test
    assert not any(name.startswith("[") for name in result)


def test_pytest_v2_reads_coloured_and_verbose_output():
    log = (
        "\x1b[1m============================= test session starts ==============================\x1b[0m\n"
        "astropy/units/tests/test_format.py::test_unicode[m\u207b\xb9-unit3 extra] \x1b[32mPASSED\x1b[0m\n"
        "astropy/io/fits/tests/test_core.py::TestCore::test_slow SKIPPED\n"
        "astropy/io/fits/tests/test_core.py::TestCore::test_bug XFAIL\n"
        "astropy/io/fits/tests/test_core.py::TestCore::test_new FAILED\n"
        "\x1b[31mFAILED\x1b[0m astropy/io/fits/tests/test_core.py::TestCore::test_new - ValueError: nope\n"
    )
    assert PARSERS["pytest_v2"](log) == {
        "astropy/units/tests/test_format.py::test_unicode[m\u207b\xb9-unit3 extra]": P,
        "astropy/io/fits/tests/test_core.py::TestCore::test_slow": S,
        "astropy/io/fits/tests/test_core.py::TestCore::test_bug": X,
        "astropy/io/fits/tests/test_core.py::TestCore::test_new": F,
    }


def test_pytest_options_cuts_absolute_path_parameters():
    result = PARSERS["pytest_options"](PYTEST_LOG)
    assert result["tests/test_calc.py::test_path[/data.txt]"] == P
    assert "tests/test_calc.py::test_path[/tmp/pytest-of-root/pytest-0/test_path0/data.txt]" not in result
    assert result["tests/test_calc.py::test_twice[2-4]"] == P
    # a "//" or glob parameter is not a path of the run: kept whole
    log = "PASSED tests/test_x.py::test_url[//host/a]\nPASSED tests/test_x.py::test_glob[/tmp/*.py]\n"
    assert set(PARSERS["pytest_options"](log)) == {
        "tests/test_x.py::test_url[//host/a]",
        "tests/test_x.py::test_glob[/tmp/*.py]",
    }


def test_matplotlib_spells_mouse_buttons_as_numbers():
    log = (
        "PASSED lib/matplotlib/tests/test_widgets.py::test_span[MouseButton.LEFT]\n"
        "FAILED lib/x.py::t[MouseButton.RIGHT] - E\n"
    )
    assert PARSERS["matplotlib"](log) == {
        "lib/matplotlib/tests/test_widgets.py::test_span[1]": P,
        "lib/x.py::t[3]": F,
    }


def test_seaborn_reads_progress_and_summary_lines():
    log = """\
tests/test_core.py::TestHue::test_map PASSED                            [ 25%]
tests/test_core.py::TestHue::test_norm FAILED                           [ 50%]
tests/test_core.py::TestHue::test_skip SKIPPED (needs scipy)            [ 75%]
PASSED
=========================== short test summary info ============================
PASSED tests/test_core.py::TestSize::test_map
FAILED tests/test_core.py::TestHue::test_norm - AssertionError
"""
    assert PARSERS["seaborn"](log) == {
        "tests/test_core.py::TestHue::test_map": P,
        "tests/test_core.py::TestSize::test_map": P,
        "tests/test_core.py::TestHue::test_norm": F,
    }


def test_non_status_tokens_are_not_verdicts():
    log = (
        "PASSED tests/t.py::test_a\nERROR: file or directory not found: tests/missing.py\nPASSEDx tests/t.py::test_a\n"
    )
    assert PARSERS["pytest"](log) == {}  # PASSEDx overwrote test_a: no pass remains


# ---------------------------------------------------------------------------------------------
# django
# ---------------------------------------------------------------------------------------------

DJANGO_LOG = """\
+ ./tests/runtests.py --verbosity 2 --settings=test_sqlite --parallel 1 admin_views.tests
Testing against Django installed in '/testbed/django' with up to 8 processes
Importing application admin_views
Skipping setup of unused database(s): other.
Operations to perform:
  Synchronize unmigrated apps: admin_views, auth, contenttypes, messages, sessions, staticfiles
  Apply all migrations: admin, sites
Synchronizing apps without migrations:
  Creating tables...
    Creating table django_content_type
    Running deferred SQL...
Running migrations:
  Applying admin.0001_initial... OK
  Applying sites.0001_initial... OK
System check identified no issues (1 silenced).
test_add_view (admin_views.tests.AdminViewBasicTest) ... ok
test_change_view (admin_views.tests.AdminViewBasicTest) ... FAIL
test_delete_view (admin_views.tests.AdminViewBasicTest) ... ERROR
test_gis (admin_views.tests.GISTest) ... skipped 'GIS is not available'
test_known (admin_views.tests.KnownTest) ... expected failure
test_lucky (admin_views.tests.KnownTest) ... unexpected success
test_ordering (admin_views.tests.ChangeListTest)
Regression test for #12345: the changelist honours ordering. ... ok
test_prints (admin_views.tests.PrintTest) ... Deprecated setting used
ok

======================================================================
ERROR: test_delete_view (admin_views.tests.AdminViewBasicTest)
----------------------------------------------------------------------
Traceback (most recent call last):
  File "/testbed/tests/admin_views/tests.py", line 40, in test_delete_view
    raise ValueError("boom")
ValueError: boom

======================================================================
FAIL: test_change_view (admin_views.tests.AdminViewBasicTest)
----------------------------------------------------------------------
Traceback (most recent call last):
  File "/testbed/tests/admin_views/tests.py", line 30, in test_change_view
    self.assertEqual(1, 2)
AssertionError: 1 != 2

----------------------------------------------------------------------
Ran 9 tests in 0.321s

FAILED (failures=1, errors=1, skipped=1, expected failures=1, unexpected successes=1)
"""


def test_django_parser_reads_runtests_verbosity_2():
    assert PARSERS["django"](DJANGO_LOG) == {
        "test_add_view (admin_views.tests.AdminViewBasicTest)": P,
        "test_change_view (admin_views.tests.AdminViewBasicTest)": F,
        "test_delete_view (admin_views.tests.AdminViewBasicTest)": E,
        "test_gis (admin_views.tests.GISTest)": S,
        # a test with a docstring is reported under its docstring's first line
        "Regression test for #12345: the changelist honours ordering.": P,
        # "ok" on a line of its own after the test printed something
        "test_prints (admin_views.tests.PrintTest)": P,
        # the FAIL:/ERROR: headers give the bare method name
        "test_delete_view": E,
        "test_change_view": F,
        # "expected failure" and "unexpected success" are not read (absent, as in the harness)
    }


def test_django_parser_reads_the_python_311_format():
    log = """\
test_add_view (admin_views.tests.AdminViewBasicTest.test_add_view) ... ok
test_change_view (admin_views.tests.AdminViewBasicTest.test_change_view) ... FAIL
test_gis (admin_views.tests.GISTest.test_gis) ... skipped 'GIS is not available'
test_ordering (admin_views.tests.ChangeListTest.test_ordering)
Regression test for #12345. ... ERROR
FAIL:
"""
    assert PARSERS["django"](log) == {
        "test_add_view (admin_views.tests.AdminViewBasicTest.test_add_view)": P,
        "test_change_view (admin_views.tests.AdminViewBasicTest.test_change_view)": F,
        "test_gis (admin_views.tests.GISTest.test_gis)": S,
        "Regression test for #12345.": E,
    }


def test_django_parser_reads_results_split_by_django_messages():
    log = (
        "test_runner_deprecation (test_runner.tests.Tests) ... System check identified no issues (0 silenced)\n"
        "ok\n"
        "test_view (view_tests.tests.Tests) ... Internal Server Error: /raises/\nok\n"
    )
    result = PARSERS["django"](log)
    assert result["test_runner_deprecation (test_runner.tests.Tests)"] == P
    assert result["test_view (view_tests.tests.Tests)"] == P


# ---------------------------------------------------------------------------------------------
# sympy
# ---------------------------------------------------------------------------------------------

SYMPY_LOG = """\
+ PYTHONWARNINGS='ignore::UserWarning,ignore::SyntaxWarning' bin/test -C --verbose sympy/core/tests/test_basic.py
============================= test process starts ==============================
executable:         /opt/miniconda3/envs/testbed/bin/python  (3.9.19-final-0) [CPython]
architecture:       64-bit
cache:              no
ground types:       python
numpy:              None
random seed:        34518362
hash randomization: on (PYTHONHASHSEED=2154725436)

sympy/core/tests/test_basic.py[7]
test__aresame ok
test_structure ok
test_equality F
test_subs E
test_xfail_known f
test_slow_thing Slow w
test_atoms ok                                                               [FAIL]

sympy/core/tests/test_expr.py[2]
test_basic ok
test_as_leading_term ok                                                     [OK]


________________________________________________________________________________
_______________ sympy/core/tests/test_basic.py:test_subs _______________________
Traceback (most recent call last):
  File "/testbed/sympy/core/tests/test_basic.py", line 92, in test_subs
    assert b21.subs([(b2, b1), (b1, b2)]) == Basic(b2, b2)
  File "/testbed/sympy/core/basic.py", line 950, in subs
    raise ValueError("bad")
ValueError: bad
________________________________________________________________________________
_____________ sympy/core/tests/test_basic.py:test_equality _____________________
Traceback (most recent call last):
  File "/testbed/sympy/core/tests/test_basic.py", line 40, in test_equality
    assert b1 != b2
AssertionError

= tests finished: 4 passed, 1 failed, 1 skipped, 1 expected to fail, 1 exceptions, in 0.35 seconds =
DO *NOT* COMMIT!
"""


def test_sympy_parser_reads_bin_test_verbose():
    assert PARSERS["sympy"](SYMPY_LOG) == {
        "test__aresame": P,
        "test_structure": P,
        "test_equality": F,
        "test_subs": E,
        "test_basic": P,
        # the failure report's headers, by file and test
        "sympy/core/tests/test_basic.py:test_subs": F,
        "sympy/core/tests/test_basic.py:test_equality": F,
        # not read, as the harness does not read them: "f" (expected failure), "w"/"s" (skipped),
        # and the last test of each file, whose line ends with the file's [OK]/[FAIL]
    }


# ---------------------------------------------------------------------------------------------
# SWE-Gym's pydantic parser and SWE-smith's
# ---------------------------------------------------------------------------------------------


def test_pydantic_parser_reads_classic_verbose_lines():
    log = """\
tests/test_main.py::test_success PASSED
tests/test_main.py::test_post_init FAILED [ 12%]
tests/test_main.py::test_skip SKIPPED
=========================== short test summary info ============================
FAILED [ 40%] tests/test_main.py::test_post_init - AssertionError: x
"""
    assert PARSERS["pydantic"](log) == {
        "tests/test_main.py::test_success": P,
        "tests/test_main.py::test_post_init": F,
        "tests/test_main.py::test_skip": S,
    }


def test_swesmith_parser_reads_verbose_progress_lines():
    log = """\
+ pytest --disable-warnings --color=no --tb=no --verbose tests/test_api.py
tests/test_api.py::test_get PASSED                                       [ 33%]
tests/test_api.py::test_post[a b] FAILED                                 [ 66%]
tests/test_api.py::test_put XFAIL (flaky)                                [100%]
PASSED tests/test_api.py::test_summary_line_is_not_read
"""
    assert PARSERS["swesmith"](log) == {
        "tests/test_api.py::test_get": P,
        "tests/test_api.py::test_put": X,
    }


# ---------------------------------------------------------------------------------------------
# parse_log: the harness's output markers
# ---------------------------------------------------------------------------------------------


def test_parse_log_reads_between_the_markers():
    spec = spec_for("pallets/flask", "2.3")
    log = (
        "+ git apply -v -\nPASSED tests/test_setup.py::test_printed_before\n"
        f"+ : '{START_TEST_OUTPUT}'\n+ pytest -rA tests/test_basic.py\n"
        "PASSED tests/test_basic.py::test_a\nFAILED tests/test_basic.py::test_b - AssertionError\n"
        f"+ : '{END_TEST_OUTPUT}'\nPASSED tests/test_basic.py::test_b\n"
    )
    assert parse_log(spec, log) == {"tests/test_basic.py::test_a": P, "tests/test_basic.py::test_b": F}
    # nothing between the markers: the whole log (the harness's fallback)
    assert parse_log("pytest", f"{START_TEST_OUTPUT}\n{END_TEST_OUTPUT}\nPASSED t::x\n") == {"t::x": P}


# ---------------------------------------------------------------------------------------------
# Directives and commands
# ---------------------------------------------------------------------------------------------


def _diff(*paths: str) -> str:
    return "".join(
        f"diff --git a/{path} b/{path}\nindex 1111111..2222222 100644\n--- a/{path}\n+++ b/{path}\n"
        "@@ -1,3 +1,4 @@\n context\n+added\n context\n"
        for path in paths
    )


def test_django_directives_are_module_labels():
    patch = _diff("tests/admin_views/tests.py", "tests/admin_views/models.py", "tests/fixtures/data.json")
    assert test_directives("django/django", patch) == ["admin_views.tests", "admin_views.models"]
    assert test_command(spec_for("django/django", "3.0"), patch) == (
        "./tests/runtests.py --verbosity 2 --settings=test_sqlite --parallel 1 admin_views.tests admin_views.models"
    )


def test_sympy_directives_are_test_file_paths():
    patch = _diff("sympy/core/tests/test_basic.py", "doc/src/modules/core.rst", "sympy/core/tests/data.txt")
    assert test_directives(spec_for("sympy/sympy", "1.12"), patch) == [
        "sympy/core/tests/test_basic.py",
        "doc/src/modules/core.rst",  # the harness keeps every file without a listed extension
    ]
    assert test_command(spec_for("sympy/sympy", "1.12"), _diff("sympy/core/tests/test_basic.py")) == (
        "PYTHONWARNINGS='ignore::UserWarning,ignore::SyntaxWarning' bin/test -C --verbose "
        "sympy/core/tests/test_basic.py"
    )


def test_pytest_directives_skip_data_files():
    patch = _diff("tests/test_api.py", "tests/data/sample.csv", "tests/conftest.py", "pyproject.toml", "README.md")
    assert test_directives("pallets/flask", patch) == ["tests/test_api.py", "tests/conftest.py"]
    assert test_command(spec_for("pallets/flask", "2.3"), patch) == "pytest -rA tests/test_api.py tests/conftest.py"
    assert test_command(spec_for("psf/requests", "2.0"), "") == "pytest -rA"


def test_mypy_directives_are_case_names():
    patch = (
        "diff --git a/test-data/unit/check-classes.test b/test-data/unit/check-classes.test\n"
        "--- a/test-data/unit/check-classes.test\n+++ b/test-data/unit/check-classes.test\n"
        "@@ -10,3 +10,9 @@\n [case testExisting]\n x = 1\n+[case testNewOverload]\n+from typing import overload\n"
        "+[case testNewProtocol-xfail]\n+x: int\n"
    )
    assert test_directives("python/mypy", patch) == ["testExisting", "testNewOverload", "testNewProtocol-xfail"]
    assert test_command(spec_for("python/mypy", "1.4"), patch) == (
        'pytest -n0 -rA -k "testExisting or testNewOverload or testNewProtocol-xfail"'
    )


def test_odd_paths_are_quoted_for_the_shell():
    assert (
        test_command(spec_for("pallets/flask", "2.3"), _diff("tests/test_a b.py")) == "pytest -rA 'tests/test_a b.py'"
    )


# ---------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("repo", "version", "test_cmd"),
    [
        ("django/django", "3.0", "./tests/runtests.py --verbosity 2 --settings=test_sqlite --parallel 1"),
        ("django/django", "1.9", "./tests/runtests.py --verbosity 2"),
        ("sympy/sympy", "1.12", "PYTHONWARNINGS='ignore::UserWarning,ignore::SyntaxWarning' bin/test -C --verbose"),
        ("astropy/astropy", "1.3", "pytest -rA -vv -o console_output_style=classic --tb=no"),
        ("astropy/astropy", "5.2", "pytest -rA"),
        ("sphinx-doc/sphinx", "7.2", "tox --current-env -epy39 -v --"),
        ("mwaskom/seaborn", "0.12", "pytest --no-header -rA"),
        ("scikit-learn/scikit-learn", "1.3", "pytest -rA"),
        ("getmoto/moto", "5.0", "pytest -n0 -rA"),
        ("pydantic/pydantic", "2.7", "pytest -rA --tb=short -vv -o console_output_style=classic --no-header"),
        ("dask/dask", "2024.5", "pytest -n0 -rA  --color=no"),
    ],
)
def test_spec_lookup(repo, version, test_cmd):
    spec = spec_for(repo, version)
    assert (spec.repo, spec.version, spec.test_cmd) == (repo, version, test_cmd)
    assert spec is SPECS[(repo, version)]


def test_spec_details_match_the_harness():
    django = spec_for("django/django", "2.2")
    assert django.python == "3.5" and django.install == "python setup.py install"
    assert dict(django.env_vars) == {
        "LANG": "en_US.UTF-8",
        "LC_ALL": "en_US.UTF-8",
        "PYTHONIOENCODING": "utf8",
        "LANGUAGE": "en_US:en",
    }
    assert django.requirements_paths == ("tests/requirements/py3.txt",) and django.packages == "requirements.txt"
    assert spec_for("astropy/astropy", "v5.3").python == "3.10"
    assert spec_for("pylint-dev/pylint", "3.0").pip_packages == ("astroid==3.0.0a6", "setuptools")
    assert spec_for("pylint-dev/pylint", "2.15").nano_cpus == 2_000_000_000
    assert spec_for("pydata/xarray", "2022.06").no_use_env
    assert spec_for("sphinx-doc/sphinx", "4.2").pre_install[0] == "sed -i 's/pytest/pytest -rA/' tox.ini"
    assert spec_for("sphinx-doc/sphinx", "8.1").pre_install[-1] == "apt-get update && apt-get install -y graphviz"
    assert spec_for("sympy/sympy", "1.13").packages == "requirements.txt"
    assert spec_for("conan-io/conan", "2.1").env_vars == {}  # PYTHONPATH is computed by the shell
    assert spec_for("dask/dask", "2023.1").python is None
    assert spec_for("iterative/dvc", "0.93").python == "3.8"
    assert spec_for("iterative/dvc", "3.49").python == "3.10"


def test_table_covers_every_repository():
    repos = {repo for repo, _ in SPECS}
    swe_bench = {
        "astropy/astropy",
        "django/django",
        "matplotlib/matplotlib",
        "mwaskom/seaborn",
        "pallets/flask",
        "psf/requests",
        "pydata/xarray",
        "pylint-dev/pylint",
        "pytest-dev/pytest",
        "scikit-learn/scikit-learn",
        "sphinx-doc/sphinx",
        "sympy/sympy",
    }
    swe_gym = {
        "getmoto/moto",
        "python/mypy",
        "pandas-dev/pandas",
        "dask/dask",
        "iterative/dvc",
        "conan-io/conan",
        "pydantic/pydantic",
        "facebookresearch/hydra",
        "bokeh/bokeh",
        "modin-project/modin",
        "Project-MONAI/MONAI",
    }
    assert swe_bench | swe_gym <= repos
    assert sum(1 for repo, _ in SPECS if repo == "django/django") == 20
    assert sum(1 for repo, _ in SPECS if repo == "sympy/sympy") == 15


def test_every_spec_is_well_formed():
    for (repo, version), spec in SPECS.items():
        assert (spec.repo, spec.version) == (repo, version)
        assert spec.parser in PARSERS, spec
        assert spec.directives in DIRECTIVE_STYLES, spec
        assert spec.test_cmd and spec.origin and spec.protected, spec
        for path in spec.protected:
            assert path and not path.startswith(("/", "~")) and "\\" not in path, (repo, path)
            assert not PurePosixPath(path).is_absolute() and ".." not in PurePosixPath(path).parts, (repo, path)
        hash(spec)  # frozen and hashable


def test_runner_files_are_protected():
    assert {"bin/test", "sympy/utilities/runtests.py", "sympy/testing/runtests.py"} <= set(
        spec_for("sympy/sympy", "1.12").protected
    )
    assert "tests/runtests.py" in spec_for("django/django", "4.2").protected
    assert {"conftest.py", "tox.ini", "setup.py"} <= set(spec_for("sphinx-doc/sphinx", "7.2").protected)


def test_unknown_version_takes_the_nearest_lower_version():
    spec = spec_for("django/django", "4.3")
    assert spec.version == "4.3" and spec.python == SPECS[("django/django", "4.2")].python
    assert "'4.2'" in spec.origin
    assert spec_for("django/django", "0.9").python == SPECS[("django/django", "1.4")].python  # below all
    assert spec_for("astropy/astropy", "5.3").python == "3.10"  # "v5.3" compares as 5.3
    assert spec_for("project-monai/monai", "1.3") is SPECS[("Project-MONAI/MONAI", "1.3")]


def test_unknown_repository_falls_back_to_the_pytest_default():
    spec = spec_for("swesmith/pallets__click.fde47b4b", "0.1")
    assert spec.test_cmd == "pytest --disable-warnings --color=no --tb=no --verbose"
    assert spec.parser == "swesmith" and spec.origin == FALLBACK_ORIGIN
    assert test_command(spec, _diff("tests/test_x.py")) == spec.test_cmd + " tests/test_x.py"
    assert spec_for("someone/else").version == ""


def test_spec_from_install_config():
    config = {
        "python": "3.11",
        "install": "pip install -e .[test]",
        "test_cmd": "pytest --no-header -rA --tb=no -p no:cacheprovider -W ignore::DeprecationWarning",
        "log_parser": "parse_log_pytest",
        "pip_packages": ["pytest", "hypothesis"],
        "packages": "requirements.txt",
        "reqs_path": ["requirements/test.txt"],
    }
    spec = spec_from_install_config("owner/project", "0.3", config)
    assert isinstance(spec, RepoSpec) and spec.parser == "pytest" and spec.pip_packages == ("pytest", "hypothesis")
    assert spec.requirements_paths == ("requirements/test.txt",)
    assert spec_from_install_config("o/p", "1", {**config, "log_parser": "parse_log_astropy"}).parser == "pytest_v2"
    with pytest.raises(ValueError, match="unknown log parser"):
        spec_from_install_config("o/p", "1", {**config, "log_parser": "parse_log_jest"})
    with pytest.raises(ValueError, match="string"):
        spec_from_install_config("o/p", "1", {**config, "test_cmd": ["a", "b"]})


# ---------------------------------------------------------------------------------------------
# Properties: no parser, directive or command raises on any text
# ---------------------------------------------------------------------------------------------

_LOG_PIECES = st.sampled_from(
    [
        "PASSED",
        "FAILED",
        "SKIPPED",
        "ERROR",
        "XFAIL",
        "FAIL:",
        "ERROR:",
        " ... ",
        " ... ok",
        "ok",
        " - ",
        "[1]",
        "[100%]",
        "test_",
        " F",
        " E",
        "____ a.py:b ____",
        ".py:",
        "\x1b[32m",
        "[32m",
        "\t",
        "\r",
        "\n",
        " ",
        "::",
        "[",
        "]",
        "/",
        "MouseButton.LEFT",
        "System check identified no issues (0 silenced)\nok",
        START_TEST_OUTPUT,
        END_TEST_OUTPUT,
        "[case x]",
        "diff --git a/x b/y",
    ]
)
_TEXT = st.one_of(st.text(), st.lists(st.one_of(_LOG_PIECES, st.text(max_size=5)), max_size=40).map("".join))


@settings(max_examples=300, deadline=None)
@given(log=_TEXT)
def test_parsers_never_raise(log):
    for name, parser in PARSERS.items():
        result = parser(log)
        assert isinstance(result, dict)
        assert all(isinstance(key, str) and isinstance(value, TestStatus) for key, value in result.items()), name
        assert parse_log(name, log) is not None


@settings(max_examples=200, deadline=None)
@given(patch=_TEXT, repo=st.sampled_from(["django/django", "python/mypy", "sympy/sympy", "x/unknown"]))
def test_directives_never_raise(patch, repo):
    assert all(isinstance(d, str) for d in test_directives(repo, patch))
    assert test_command(spec_for(repo, "1.0"), patch).startswith(spec_for(repo, "1.0").test_cmd)
