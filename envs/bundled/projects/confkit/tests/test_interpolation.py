import pytest

import confkit
from confkit import InterpolationCycleError, InterpolationError

TEXT = """
[DEFAULT]
root = /srv
log_dir = ${root}/log/${name}

[web]
name = web
static = ${root}/static
port = 8080
url = http://localhost:${port}/
price = $$5 per ${unit}
unit = hour

[worker]
name = worker
upstream = ${web:url}jobs
"""


@pytest.fixture
def cfg():
    return confkit.loads(TEXT)


def test_same_section_and_default_references(cfg):
    assert cfg.get("web", "static") == "/srv/static"
    assert cfg.get("web", "url") == "http://localhost:8080/"


def test_default_values_expand_in_the_reading_section(cfg):
    assert cfg.get("web", "log_dir") == "/srv/log/web"
    assert cfg.get("worker", "log_dir") == "/srv/log/worker"


def test_cross_section_reference(cfg):
    assert cfg.get("worker", "upstream") == "http://localhost:8080/jobs"


def test_dollar_escape_and_raw(cfg):
    assert cfg.get("web", "price") == "$5 per hour"
    assert cfg.get("web", "price", raw=True) == "$$5 per ${unit}"


def test_lone_dollar_is_literal():
    cfg = confkit.loads("[s]\ncost = $5\n")
    assert cfg.get("s", "cost") == "$5"


def test_references_are_case_insensitive():
    cfg = confkit.loads("[Paths]\nBase = /opt\n[s]\ndir = ${Paths:BASE}/x\nalias = ${DIR}\n")
    assert cfg.get("s", "alias") == "/opt/x"


def test_unknown_key_error_has_line_number():
    cfg = confkit.loads("[s]\na = 1\nb = ${missing}\n")
    with pytest.raises(InterpolationError) as info:
        cfg.get("s", "b")
    assert info.value.lineno == 3
    assert "unknown key 'missing'" in str(info.value)


def test_unknown_section_error():
    cfg = confkit.loads("[s]\nb = ${nope:key}\n")
    with pytest.raises(InterpolationError, match="unknown section 'nope'"):
        cfg.get("s", "b")


def test_malformed_reference():
    cfg = confkit.loads("[s]\nb = ${}\n")
    with pytest.raises(InterpolationError, match="malformed reference"):
        cfg.get("s", "b")


def test_direct_cycle():
    cfg = confkit.loads("[s]\na = ${a}\n")
    with pytest.raises(InterpolationCycleError) as info:
        cfg.get("s", "a")
    assert info.value.chain == [("s", "a"), ("s", "a")]


def test_indirect_cycle_reports_chain():
    cfg = confkit.loads("[s]\na = x${b}\nb = ${t:c}\n[t]\nc = ${s:a}\n")
    with pytest.raises(InterpolationCycleError) as info:
        cfg.get("s", "a")
    assert "interpolation cycle: [s] a -> [s] b -> [t] c -> [s] a" in str(info.value)
    assert info.value.lineno == 5
