"""Two data-parallel ranks (``torchrun``, CPU, gloo) generating on two embedded servers (each in
its own process, with its weight endpoints), two steps: every rank sends its episodes' turns to
both servers, rank 0 alone pushes the weights to both after each step, the other rank waits for
the push before its next rollouts, and the turns' versions are the same on both ranks."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")


from helpers import TINY_RUN, get_json, tiny_model_server, torchrun_script  # noqa: E402

#: One rank: trains the steps, saves what it played (per step: instance, servers, versions of
#: each episode), its requests per server and the versions it believes the servers serve.
CHILD = r"""
import json
import os
import sys
from pathlib import Path

import torch

from swerepair.trainers.config import load_config
from swerepair.trainers.grpo import GRPOTrainer
from helpers import token_reward

settings, out = json.loads(sys.argv[1]), Path(sys.argv[2])
played = {}
with GRPOTrainer(load_config(overrides=settings), episode_reward=token_reward) as trainer:
    collect = trainer._collect

    def recording(step, bar=None):
        episodes, generated, seconds = collect(step, bar)
        played[step] = [
            (ep.instance_id, list(ep.info.get("policy_servers", [])), list(ep.info.get("policy_versions", [])))
            for ep in episodes
        ]
        return episodes, generated, seconds

    trainer._collect = recording
    records = trainer.train()
    result = {
        "rank": trainer.ranks.rank,
        "played": played,
        "records": records,
        "requests": dict(trainer.backend.requests),
        "versions": {url: trainer._server_version(url) for url in trainer.backend.urls},
        "pusher": trainer.pusher is not None,
        "tasks": {step: trainer.tasks_for_step(step) for step in played},
    }
(out / f"rank{os.environ['RANK']}.json").write_text(json.dumps(result), encoding="utf-8")
"""


def _launch(tmp: Path, settings: dict[str, Any]) -> list[dict[str, Any]]:
    out = torchrun_script(tmp, "child.py", CHILD, [json.dumps(settings)], 2)
    return [json.loads((out / f"rank{r}.json").read_text(encoding="utf-8")) for r in range(2)]


@pytest.mark.slow  # two servers and two ranks start: about 40 s on 2 cores
def test_two_ranks_generate_on_two_servers(tmp_path: Path) -> None:
    from swerepair.agents.inference.tiny_qwen3 import tiny_qwen3_path

    tiny_qwen3_path()  # built before the servers and ranks start (they would share one build anyway)
    with tiny_model_server() as a, tiny_model_server() as b:
        settings = {
            **TINY_RUN,
            "output_dir": str(tmp_path / "run"),
            "servers": [a, b],
            "weight_bucket_mb": 1,
            "tasks_per_step": 4,  # two groups of two per rank: each rank's first turns split over a and b
            "max_new_tokens": 8,
            "dtype": "float32",
        }
        r0, r1 = _launch(tmp_path, settings)
        status = {url: get_json(f"{url}/weights/status") for url in (a, b)}

    assert (r0["rank"], r1["rank"], r0["pusher"], r1["pusher"]) == (0, 1, True, False)  # rank 0 alone pushes
    assert status[a]["version"] == status[b]["version"] == 2 and status[a]["error"] is status[b]["error"] is None
    assert r0["versions"] == r1["versions"] == {a: 2, b: 2}  # the same versions on every rank
    for rank in (r0, r1):  # every rank dispatched over both servers
        assert rank["requests"][a] > 0 and rank["requests"][b] > 0, rank["requests"]
        assert [rec["servers/live"] for rec in rank["records"]] == [2.0, 2.0]
        assert [rec["servers/reconnects"] for rec in rank["records"]] == [0.0, 0.0]
        assert [rec["policy_version"] for rec in rank["records"]] == [1.0, 2.0]
    for step, version in (("1", 0), ("2", 1)):
        rows = r0["played"][step] + r1["played"][step]
        assert {s for _, servers, _ in rows for s in servers} == {a, b}, step  # both servers used
        for rank in (r0, r1):
            assert {s for _, servers, _ in rank["played"][step] for s in servers} == {a, b}, (step, rank["rank"])
        assert {v for _, _, versions in rows for v in versions} == {version}, step  # step 2: all version 1
        assert all(len(servers) == len(versions) > 0 for _, servers, versions in rows)
        ids0 = {i for i, _, _ in r0["played"][step]}
        ids1 = {i for i, _, _ in r1["played"][step]}
        assert ids0 and ids1 and not ids0 & ids1  # each task group played once, on one rank
        tasks = r0["tasks"][step]
        assert tasks == r1["tasks"][step]
        want = Counter({t: settings["group_size"] * tasks.count(t) for t in tasks})
        assert Counter(i for i, _, _ in rows) == want


def test_async_rollouts_with_servers_on_ranks_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Asynchronous rollouts would start a rank's next rollouts before rank 0's push: refused at
    start, before anything is written or connected."""
    from swerepair.trainers.config import ConfigError, load_config
    from swerepair.trainers.grpo import GRPOTrainer

    for key, value in {"WORLD_SIZE": "2", "RANK": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}.items():
        monkeypatch.setenv(key, value)
    settings = {**TINY_RUN, "output_dir": str(tmp_path / "run"), "servers": ["http://127.0.0.1:9"]}
    config = load_config(overrides={**settings, "async_rollouts": True})
    with pytest.raises(ConfigError, match="async_rollouts with servers on more than one training rank"):
        GRPOTrainer(config)
    assert not (tmp_path / "run").exists()
