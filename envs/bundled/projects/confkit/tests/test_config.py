import io

import pytest

import confkit
from confkit import NoSectionError

BASE = """
[DEFAULT]
env = dev

[db]
host = localhost
port = 5432

[cache]
ttl = 5m
"""

PROD = """
[DEFAULT]
env = prod

[db]
host = db.internal
user = app

[metrics]
enabled = yes
"""


def test_defaults_visible_and_overridable():
    cfg = confkit.loads("[DEFAULT]\na = 1\nb = 2\n[s]\nb = 3\nc = 4\n")
    assert cfg.items("s") == [("b", "3"), ("c", "4"), ("a", "1")]
    assert cfg.get("DEFAULT", "a") == "1"
    assert "DEFAULT" not in cfg.sections()


def test_custom_default_section_name():
    cfg = confkit.loads("[common]\nx = 1\n[s]\ny = ${x}\n", default_section="common")
    assert cfg.sections() == ["s"]
    assert cfg.get("s", "y") == "1"


def test_set_and_remove():
    cfg = confkit.loads("[s]\nName = a\n")
    cfg.set("s", "NAME", "b")
    cfg.set("s", "new", "c")
    assert cfg.items("s") == [("Name", "b"), ("new", "c")]
    assert cfg.remove_option("s", "name") is True
    assert cfg.remove_option("s", "name") is False
    with pytest.raises(TypeError):
        cfg.set("s", "n", 3)
    with pytest.raises(NoSectionError):
        cfg.set("missing", "k", "v")


def test_add_and_remove_section():
    cfg = confkit.Config()
    cfg.add_section("a")
    cfg.set("a", "k", "v")
    cfg.add_section("a")
    assert cfg.get("a", "k") == "v"
    cfg.remove_section("a")
    assert not cfg.has_section("a")
    with pytest.raises(NoSectionError):
        cfg.remove_section("a")


def test_load_several_files_later_wins(tmp_path):
    (tmp_path / "base.ini").write_text(BASE, encoding="utf-8")
    (tmp_path / "prod.ini").write_text(PROD, encoding="utf-8")
    cfg = confkit.load(tmp_path / "base.ini", tmp_path / "prod.ini")
    assert cfg.sections() == ["db", "cache", "metrics"]
    assert cfg.items("db") == [
        ("host", "db.internal"),
        ("port", "5432"),
        ("user", "app"),
        ("env", "prod"),
    ]


def test_merge_configs():
    merged = confkit.merge(confkit.loads(BASE), confkit.loads(PROD))
    assert merged.get("db", "host") == "db.internal"
    assert merged.get("db", "port") == "5432"
    assert merged.get("cache", "env") == "prod"
    assert merged.get_bool("metrics", "enabled") is True


def test_merge_keeps_line_numbers_of_winning_file():
    merged = confkit.merge(confkit.loads("[s]\na = 1\nb = x\n"), confkit.loads("[s]\n\n\nb = y\n"))
    with pytest.raises(confkit.ConversionError) as info:
        merged.get_int("s", "b")
    assert info.value.lineno == 4


def test_to_dict():
    cfg = confkit.loads("[DEFAULT]\nr = /x\n[s]\np = ${r}/y\n")
    assert cfg.to_dict() == {"s": {"p": "/x/y", "r": "/x"}}
    assert cfg.to_dict(raw=True) == {"s": {"p": "${r}/y", "r": "/x"}}


def test_to_string_layout():
    cfg = confkit.loads(
        "[DEFAULT]\nroot = /srv   # where\n[web]\nHosts = a\n  b\nempty =\nport = 80\n"
    )
    assert cfg.to_string() == (
        "[DEFAULT]\n"
        "root = /srv\n"
        "\n"
        "[web]\n"
        "Hosts = a\n"
        "    b\n"
        "empty =\n"
        "port = 80\n"
    )


@pytest.mark.parametrize(
    "value",
    [
        "plain",
        "",
        "  padded  ",
        "has # hash",
        "trailing ;",
        "# leading hash",
        "'single'",
        "C:\\temp\\new",
        "tab\there",
        "multi\nline\nvalue",
        "gap\n\nin between",
        "\nleading newline",
        'say "hi" to them',
        "${not:expanded}",
        "ends with backslash \\",
    ],
)
def test_round_trip_values(value):
    cfg = confkit.Config()
    cfg.add_section("s")
    cfg.set("s", "key", value)
    again = confkit.loads(cfg.to_string())
    assert again.get("s", "key", raw=True) == value


def test_round_trip_whole_file():
    cfg = confkit.loads(BASE + PROD.replace("[DEFAULT]", "[stage]").replace("[db]", "[replica]"))
    out = io.StringIO()
    cfg.write(out)
    again = confkit.loads(out.getvalue())
    assert again.to_dict(raw=True) == cfg.to_dict(raw=True)
    assert again.to_string() == out.getvalue()
