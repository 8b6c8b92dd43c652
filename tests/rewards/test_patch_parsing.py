"""Unified-diff parsing on what git and the SWE-bench datasets produce; similarity basics."""

from __future__ import annotations

from types import SimpleNamespace

from swerepair.rewards import (
    context_similarity,
    file_targeting,
    functional_similarity,
    normalize_file,
    parse_patch,
    patch_similarity,
    testing_alignment,
)

GIT_PATCH = """\
diff --git a/pkg/core.py b/pkg/core.py
index 83db48f..bf269f4 100644
--- a/pkg/core.py
+++ b/pkg/core.py
@@ -10,7 +10,7 @@ def f(x):
     a = 1
     b = 2
     c = 3
-    return a + b
+    return a + c
     # tail
     pass
     pass
diff --git a/new.txt b/new.txt
new file mode 100644
index 0000000..e69de29
--- /dev/null
+++ b/new.txt
@@ -0,0 +1,2 @@
+hello
+world
\\ No newline at end of file
diff --git a/old.py b/old.py
deleted file mode 100644
index 1111111..0000000
--- a/old.py
+++ /dev/null
@@ -1 +0,0 @@
-gone = True
diff --git a/a.py b/b.py
similarity index 90%
rename from a.py
rename to b.py
diff --git a/run.sh b/run.sh
old mode 100644
new mode 100755
diff --git a/img.png b/img.png
index 0000000..1111111 100644
Binary files a/img.png and b/img.png differ
diff --git "a/caf\\303\\251 menu.py" "b/caf\\303\\251 menu.py"
--- "a/caf\\303\\251 menu.py"
+++ "b/caf\\303\\251 menu.py"
@@ -1 +1 @@
-x
+y
"""


def test_git_features() -> None:
    files = {f.path: f for f in parse_patch(GIT_PATCH)}
    assert list(files) == ["pkg/core.py", "new.txt", "old.py", "b.py", "run.sh", "img.png", "café menu.py"]
    assert files["pkg/core.py"].status == "modified"
    hunk = files["pkg/core.py"].hunks[0]
    assert (hunk.old_start, hunk.new_start, hunk.section) == (10, 10, "def f(x):")
    assert hunk.removed == ("    return a + b",) and hunk.added == ("    return a + c",)
    assert files["new.txt"].status == "added" and files["new.txt"].hunks[0].lines[-1].startswith("\\")
    assert files["old.py"].status == "deleted"
    assert files["b.py"].status == "renamed" and files["b.py"].old_path == "a.py"
    assert (files["run.sh"].old_mode, files["run.sh"].new_mode) == ("100644", "100755")
    assert files["img.png"].binary


def test_crlf_and_plain_diff_u() -> None:
    plain = (
        "--- a/x.py\t2024-01-01\n+++ b/x.py\t2024-01-02\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n"
        "--- y.py\n+++ y.py\n@@ -1 +1 @@\n-1\n+2\n"
    )
    files = parse_patch(plain.replace("\n", "\r\n"))
    assert [f.path for f in files] == ["x.py", "y.py"]
    assert files[0].hunks[0].lines == (" a", "-b", "+c")


def test_garbage_parses_to_nothing() -> None:
    for text in ["", "hello", "@@ -1 +1 @@\n-a\n+b\n", "diff --git\n", "\x00\ufffd" * 10, None, 42]:
        assert parse_patch(text) == [] or all(f.path for f in parse_patch(text))  # type: ignore[arg-type]


def test_truncated_hunk_keeps_what_is_there() -> None:
    files = parse_patch("--- a/x.py\n+++ b/x.py\n@@ -1,10 +1,10 @@\n a\n-b\n+c\n")
    assert files[0].hunks[0].lines == (" a", "-b", "+c")


def test_normalisation_ignores_line_numbers_index_and_whitespace() -> None:
    a = parse_patch(
        "diff --git a/x b/x\nindex 1..2\n--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@ ctx\n keep\n-old  =  1\n+new = 1\n"
    )
    b = parse_patch("--- a/x\n+++ b/x\n@@ -40,2 +41,2 @@\n keep\n-old = 1\n+new   =   1   \n")
    assert normalize_file(a[0]) == normalize_file(b[0]) == "@@\n keep\n-old = 1\n+new = 1"
    c = parse_patch("--- a/x\n+++ b/x\n@@ -1 +1 @@\n-x = 1  # one\n+x = 2  # two\n")
    assert normalize_file(c[0], strip_comments=True) == "@@\n-x = 1\n+x = 2"


def test_similarity_rewards() -> None:
    gold = "--- a/m.py\n+++ b/m.py\n@@ -1,3 +1,3 @@\n a\n-b = 1\n+b = 2\n c\n"
    tests = "--- a/tests/test_m.py\n+++ b/tests/test_m.py\n@@ -1 +1,2 @@\n x\n+assert b == 2\n"
    task = SimpleNamespace(patch=gold, test_patch=tests)
    assert functional_similarity(gold, task) == 1.0
    assert functional_similarity("", task) == 0.0
    near = gold.replace("b = 2", "b = 3")
    assert functional_similarity(near, task) == 0.0  # the right line, changed wrongly: no part of the fix
    assert 0.8 < context_similarity(near, task) < 1.0  # the thesis form pays for the shared context
    other_file = gold.replace("m.py", "n.py")
    assert functional_similarity(other_file, task) == 0.0 and file_targeting(other_file, task) == 0.0
    both = gold + other_file
    assert file_targeting(both, task) == 0.5 and functional_similarity(both, task) == 0.5
    assert testing_alignment(tests, task) == 1.0 and testing_alignment(gold, task) == 0.0
    assert patch_similarity(gold + tests, task) == 1.0
    assert abs(patch_similarity(gold, task) - 0.6) < 1e-9
    for reward in (functional_similarity, file_targeting, testing_alignment, patch_similarity):
        assert reward("not a patch \x00", task) == 0.0
        assert reward(None, task) == 0.0  # type: ignore[arg-type]
        assert reward(gold, object()) in (0.0, 1.0) or 0.0 <= reward(gold, object()) <= 1.0


def test_removed_and_added_lines_that_look_like_headers() -> None:
    """`-- x` removed and `++ y` added inside a hunk are lines, not a new file's header."""
    files = parse_patch("--- a/q.sql\n+++ b/q.sql\n@@ -1,2 +1,2 @@\n--- old comment\n+++ new\n x\n")
    assert [f.path for f in files] == ["q.sql"]
    assert files[0].hunks[0].lines == ("--- old comment", "+++ new", " x")


def test_renaming_the_wrong_file_is_not_the_right_rename() -> None:
    gold = "diff --git a/old.py b/new.py\nsimilarity index 100%\nrename from old.py\nrename to new.py\n"
    wrong = gold.replace("old.py", "other.py")
    task = SimpleNamespace(patch=gold, test_patch="")
    assert functional_similarity(gold, task) == 1.0
    assert functional_similarity(wrong, task) < 1.0
