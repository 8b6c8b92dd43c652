import pytest

import confkit
from confkit import ParseError


def test_sections_and_keys_keep_file_order():
    cfg = confkit.loads(
        """
[b]
z = 1
a = 2
[a]
m = 3
"""
    )
    assert cfg.sections() == ["b", "a"]
    assert cfg.options("b") == ["z", "a"]


def test_keys_are_case_insensitive_but_keep_spelling():
    cfg = confkit.loads("[s]\nMaxConnections = 10\n")
    assert cfg.get("s", "maxconnections") == "10"
    assert cfg.get("s", "MAXCONNECTIONS") == "10"
    assert cfg.options("s") == ["MaxConnections"]
    assert cfg.has_option("s", "maxConnections")


def test_colon_separator_and_whitespace():
    cfg = confkit.loads("[s]\n  name:   value with spaces   \nother=x=y\n")
    assert cfg.get("s", "name") == "value with spaces"
    assert cfg.get("s", "other") == "x=y"


@pytest.mark.parametrize(
    "line, expected",
    [
        ("key = value # comment", "value"),
        ("key = value ; comment", "value"),
        ("key = http://host/#anchor", "http://host/#anchor"),
        ("key = a;b", "a;b"),
        ("key = # only a comment", ""),
        ('key = "quoted # not a comment"  # a comment', "quoted # not a comment"),
        ("key = 'it is ; literal' ; trailing", "it is ; literal"),
    ],
)
def test_inline_comments(line, expected):
    cfg = confkit.loads(f"[s]\n{line}\n")
    assert cfg.get("s", "key") == expected


def test_full_line_comments_are_ignored():
    cfg = confkit.loads("# top\n; also\n[s]\n  # indented comment\nk = v\n")
    assert cfg.items("s") == [("k", "v")]


def test_continuation_lines():
    cfg = confkit.loads(
        """
[s]
hosts = alpha
    beta   # second
    # a comment inside the value
    gamma
next = 1
"""
    )
    assert cfg.get("s", "hosts") == "alpha\nbeta\ngamma"
    assert cfg.get("s", "next") == "1"


def test_continuation_after_empty_first_line():
    cfg = confkit.loads("[s]\npaths =\n    /usr/bin\n    /bin\n")
    assert cfg.get("s", "paths") == "/usr/bin\n/bin"


def test_blank_line_ends_value():
    cfg = confkit.loads("[s]\na = 1\n\n  b = 2\n")
    assert cfg.get("s", "a") == "1"
    assert cfg.get("s", "b") == "2"


def test_double_quoted_escapes():
    cfg = confkit.loads(r'''[s]
msg = "  line one\n\tline \"two\"\\ "
raw = 'no \n escapes here'
''')
    assert cfg.get("s", "msg") == '  line one\n\tline "two"\\ '
    assert cfg.get("s", "raw") == "no \\n escapes here"


def test_reopened_section_adds_keys():
    cfg = confkit.loads("[s]\na = 1\n[t]\nb = 2\n[s]\nc = 3\n")
    assert cfg.options("s") == ["a", "c"]


@pytest.mark.parametrize(
    "text, lineno, fragment",
    [
        ("[s]\nk = v\nnot a pair\n", 3, "expected 'key = value'"),
        ("key = v\n", 1, "outside of any section"),
        ("[s]\n\n[broken\n", 3, "malformed section header"),
        ("[s]\nk = \"open\n", 2, "unterminated quoted string"),
        ('[s]\nk = "a\\qb"\n', 2, "invalid escape"),
        ('[s]\nk = "a" b\n', 2, "unexpected text after closing quote"),
        ("[s]\n = v\n", 2, "missing key"),
        ("[ ]\n", 1, "empty section name"),
        ('[s]\nk = "a"\n  more\n', 3, "cannot be continued"),
    ],
)
def test_parse_errors_carry_line_number(text, lineno, fragment):
    with pytest.raises(ParseError) as info:
        confkit.loads(text)
    assert info.value.lineno == lineno
    assert fragment in str(info.value)
    assert str(info.value).startswith(f"line {lineno}:")


def test_duplicate_key_reports_both_lines():
    text = "[s]\nPort = 1\nhost = h\nport = 2\n"
    with pytest.raises(ParseError) as info:
        confkit.loads(text)
    assert info.value.lineno == 4
    assert "first defined on line 2" in str(info.value)


def test_read_file_error_names_the_file(tmp_path):
    path = tmp_path / "app.ini"
    path.write_text("[s]\nok = 1\n???\n", encoding="utf-8")
    with pytest.raises(ParseError) as info:
        confkit.load(path)
    assert str(info.value).startswith(f"{path}, line 3:")
