from datetime import timedelta

import pytest

import confkit
from confkit import ConversionError, NoOptionError, NoSectionError

TEXT = """
[DEFAULT]
retries = 3

[net]
port = 8080
mask = 0xff
neg = -12
big = 1_000_000
ratio = 0.75
enabled = Yes
verbose = off
hosts = a.example, b.example ,, c.example
words = one two
    three
timeout = 1h30m
bad = twelve
"""


@pytest.fixture
def cfg():
    return confkit.loads(TEXT)


def test_get_int(cfg):
    assert cfg.get_int("net", "port") == 8080
    assert cfg.get_int("net", "mask") == 255
    assert cfg.get_int("net", "neg") == -12
    assert cfg.get_int("net", "big") == 1_000_000
    assert cfg.get_int("net", "retries") == 3


def test_get_float(cfg):
    assert cfg.get_float("net", "ratio") == 0.75
    assert cfg.get_float("net", "port") == 8080.0


@pytest.mark.parametrize(
    "text, expected",
    [("yes", True), ("On", True), ("TRUE", True), ("1", True),
     ("no", False), ("OFF", False), ("false", False), ("0", False)],
)
def test_get_bool_values(text, expected):
    cfg = confkit.loads(f"[s]\nflag = {text}\n")
    assert cfg.get_bool("s", "flag") is expected


def test_get_bool_from_fixture(cfg):
    assert cfg.get_bool("net", "enabled") is True
    assert cfg.get_bool("net", "verbose") is False


def test_get_list(cfg):
    assert cfg.get_list("net", "hosts") == ["a.example", "b.example", "c.example"]
    assert cfg.get_list("net", "words", sep=None) == ["one", "two", "three"]


def test_get_list_configurable_separator():
    cfg = confkit.loads("[s]\npath = /bin:/usr/bin\n", list_separator=":")
    assert cfg.get_list("s", "path") == ["/bin", "/usr/bin"]
    assert cfg.get_list("s", "path", sep=",") == ["/bin:/usr/bin"]


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("90", 90),
        ("-90", -90),
        ("2.5", 2.5),
        ("45s", 45),
        ("1h30m", 5400),
        ("1h 30m 15s", 5415),
        ("1.5h", 5400),
        ("2d", 172800),
        ("1w", 604800),
        ("250ms", 0.25),
        ("1m500ms", 60.5),
        ("-5m", -300),
        ("10M", 600),
    ],
)
def test_get_duration(text, seconds):
    cfg = confkit.loads(f"[s]\nd = {text}\n")
    assert cfg.get_duration("s", "d") == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "h", "5x", "1h30", "-", "1h-", "inf"])
def test_get_duration_invalid(text):
    cfg = confkit.loads(f"[s]\nd = {text}\n")
    with pytest.raises(ConversionError):
        cfg.get_duration("s", "d")


def test_conversion_error_carries_line_number(cfg):
    with pytest.raises(ConversionError) as info:
        cfg.get_int("net", "bad")
    assert info.value.lineno == 17
    assert "cannot convert 'twelve' to int" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_get_bool_rejects_unknown_words(cfg):
    with pytest.raises(ConversionError, match="to bool"):
        cfg.get_bool("net", "bad")


def test_typed_getters_interpolate():
    cfg = confkit.loads("[s]\nbase = 8000\nport = 8${offset}\noffset = 080\n")
    assert cfg.get_int("s", "port") == 8080


def test_missing_values_and_fallbacks(cfg):
    assert cfg.get("net", "nope", fallback=None) is None
    assert cfg.get_int("net", "nope", fallback=7) == 7
    assert cfg.get_int("nosuch", "port", fallback=1) == 1
    with pytest.raises(NoOptionError):
        cfg.get("net", "nope")
    with pytest.raises(NoSectionError):
        cfg.get("nosuch", "port")
    with pytest.raises(KeyError):
        cfg.get_bool("net", "nope")
