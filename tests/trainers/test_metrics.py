"""Training metrics: episode statistics on hand-built episodes, the JSONL/TensorBoard logger, the plot."""

from __future__ import annotations

import json
import logging
import math
import struct
import sys
import time

import pytest

from swerepair.core import Episode
from swerepair.trainers.advantages import compute_advantages
from swerepair.trainers.metrics import (
    MetricsLogger,
    episode_metrics,
    learning_curve_figure,
    plot_learning_curve,
    read_metrics,
)


def make_episode(reward, *, n_tokens=4, generated=1, components=None, tool_stats=None, **info):
    info = dict(info)
    if components is not None:
        info["reward_components"] = components
    if tool_stats is not None:
        info["tool_stats"] = tool_stats
    mask = [0] * (n_tokens - generated) + [1] * generated
    return Episode(
        instance_id="t",
        messages=[],
        tokens=list(range(n_tokens)),
        loss_mask=mask,
        logprobs=[-0.5] * generated,
        reward=reward,
        info=info,
    )


def stats(calls, errors=0, malformed=0, timeouts=0, turns=1):
    return {
        "calls": calls,
        "errors": errors,
        "malformed": malformed,
        "timeouts": timeouts,
        "tool_calls": turns,
        "turns": turns,
    }


@pytest.fixture
def three() -> list[Episode]:
    return [
        make_episode(
            1.0,
            n_tokens=10,
            generated=4,
            components={"resolved": 1.0, "tests": 1.0, "similarity": 0.9},
            tool_stats=stats({"bash": 3, "edit": 1}, errors=1, timeouts=1, turns=5),
            exit_reason="agent_stopped",
            elapsed_s=2.0,
            context_tokens=100,
        ),
        make_episode(
            0.5,
            n_tokens=6,
            generated=2,
            components={"resolved": 0.0, "tests": 0.5},
            tool_stats=stats({"bash": 1}, errors=1, malformed=2, turns=3),
            exit_reason="max_turns",
            elapsed_s=4.0,
            context_tokens=300,
        ),
        make_episode(
            0.0,
            n_tokens=5,
            generated=1,
            components={"resolved": 0.0, "tests": 0.0, "similarity": 0.1},
            tool_stats=stats({}, malformed=1, turns=1),
            exit_reason="agent_stopped",
            elapsed_s=6.0,
        ),
    ]


# --- episode_metrics ---------------------------------------------------------------------------


def test_episode_metrics_exact_values(three: list[Episode]) -> None:
    result = compute_advantages([e.reward for e in three], ["a", "a", "b"])
    m = episode_metrics(three, dropped=1, advantages=result)
    expected = {
        "episodes/kept": 3.0,
        "episodes/dropped": 1.0,
        "episodes/failed_fraction": 0.25,
        "groups/count": 2.0,
        "groups/zero_variance": 1.0,  # "b" has one member
        "groups/informative": 1.0,
        "reward/mean": 0.5,
        "reward/std": math.sqrt(1 / 6),  # population: (0.25 + 0 + 0.25) / 3
        "reward/max": 1.0,
        "reward/min": 0.0,
        "resolve_rate": 1 / 3,
        "reward_components/resolved": 1 / 3,
        "reward_components/tests": 0.5,
        "reward_components/similarity": 0.5,  # over the two episodes that have it
        "episode/tokens_mean": 7.0,
        "episode/generated_tokens_mean": 7 / 3,
        "episode/turns_mean": 3.0,
        "episode/context_tokens_mean": 200.0,  # the third episode has none
        "episode/elapsed_s_mean": 4.0,
        "tools/calls_per_episode": 5 / 3,
        "tools/bash_calls_per_episode": 4 / 3,
        "tools/edit_calls_per_episode": 1 / 3,
        "tools/error_rate": 2 / 5,
        "tools/malformed_per_episode": 1.0,
        "tools/timeouts_per_episode": 1 / 3,
        "exit/agent_stopped": 2 / 3,
        "exit/max_turns": 1 / 3,
    }
    assert set(m) == set(expected)
    for key, value in expected.items():
        assert m[key] == pytest.approx(value, abs=1e-12), key
        assert isinstance(m[key], float), key


def test_resolve_rate_prefers_the_resolved_component() -> None:
    episodes = [
        make_episode(1.0, components={"resolved": 0.0}),  # full reward, but not resolved
        make_episode(0.3, components={"resolved": True}),  # shaped reward, resolved
        make_episode(0.3, components={"resolved": 1.0}),
        make_episode(1.0, components={"resolved": False}),
    ]
    assert episode_metrics(episodes, 0, None)["resolve_rate"] == 0.5


def test_resolve_rate_falls_back_to_full_reward() -> None:
    episodes = [
        make_episode(1.0),
        make_episode(1.0 - 1e-12, components={"tests": 1.0}),  # components without "resolved"
        make_episode(0.99),
        make_episode(0.0, components={}),
    ]
    m = episode_metrics(episodes, 0, None)
    assert m["resolve_rate"] == 0.5
    assert m["reward_components/tests"] == 1.0
    assert "reward_components/resolved" not in m


def test_missing_info_is_left_out_and_exit_reason_unknown() -> None:
    m = episode_metrics([make_episode(0.0), make_episode(1.0, exit_reason="agent_stopped")], 0, None)
    assert not any(k.startswith("tools/") for k in m)
    assert "episode/turns_mean" not in m
    assert "episode/context_tokens_mean" not in m
    assert m["exit/unknown"] == 0.5
    assert m["exit/agent_stopped"] == 0.5


def test_error_rate_with_no_calls_is_finite() -> None:
    m = episode_metrics([make_episode(0.0, tool_stats=stats({}, errors=2))], 0, None)
    assert m["tools/error_rate"] == 2.0
    assert m["tools/calls_per_episode"] == 0.0


def test_empty_episodes_give_only_counts() -> None:
    assert episode_metrics([], 2, None) == {
        "episodes/kept": 0.0,
        "episodes/dropped": 2.0,
        "episodes/failed_fraction": 1.0,
    }
    m = episode_metrics([], 0, compute_advantages([], []))
    assert m == {
        "episodes/kept": 0.0,
        "episodes/dropped": 0.0,
        "episodes/failed_fraction": 0.0,
        "groups/count": 0.0,
        "groups/zero_variance": 0.0,
        "groups/informative": 0.0,
    }


# --- MetricsLogger and read_metrics ------------------------------------------------------------


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_logger_writes_flushed_jsonl_lines(tmp_path) -> None:
    before = time.time()
    logger = MetricsLogger(tmp_path / "run", tensorboard=False)
    path = tmp_path / "run" / "metrics.jsonl"
    logger.log(1, {"reward/mean": 0.25, "loss": 1})
    assert lines(path)[0]["step"] == 1  # flushed before close
    logger.log(2, {"reward/mean": 0.5})
    logger.log(3, {"reward/mean": 0.75})
    logger.close()
    records = lines(path)
    assert [r["step"] for r in records] == [1, 2, 3]
    assert [r["reward/mean"] for r in records] == [0.25, 0.5, 0.75]
    assert records[0]["loss"] == 1.0
    assert all(before <= r["time"] <= time.time() for r in records)
    assert read_metrics(path) == records


def test_logger_writes_non_finite_as_null(tmp_path) -> None:
    with MetricsLogger(tmp_path, tensorboard=False) as logger:
        logger.log(0, {"a": float("nan"), "b": float("inf"), "c": -float("inf"), "d": 2.0})
    text = (tmp_path / "metrics.jsonl").read_text()
    assert "NaN" not in text and "Infinity" not in text
    record = json.loads(text)
    assert (record["a"], record["b"], record["c"], record["d"]) == (None, None, None, 2.0)


def test_logger_rejects_reserved_names_and_use_after_close(tmp_path) -> None:
    logger = MetricsLogger(tmp_path, tensorboard=False)
    with pytest.raises(ValueError, match="reserved"):
        logger.log(0, {"step": 1.0})
    logger.close()
    logger.close()  # idempotent
    with pytest.raises(RuntimeError):
        logger.log(1, {"a": 1.0})


def test_resume_truncates_later_steps_and_appends(tmp_path) -> None:
    with MetricsLogger(tmp_path, tensorboard=False) as logger:
        for step in range(1, 6):
            logger.log(step, {"x": float(step)})
    with MetricsLogger(tmp_path, tensorboard=False, resume_step=3) as logger:
        assert [r["step"] for r in lines(tmp_path / "metrics.jsonl")] == [1, 2, 3]
        logger.log(4, {"x": 40.0})
        assert logger.truncate_after(3) == 1  # also works on an open logger
        logger.log(4, {"x": 41.0})
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert [(r["step"], r["x"]) for r in records] == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 41.0)]


def test_resume_on_a_new_run_dir_and_torn_last_line(tmp_path) -> None:
    MetricsLogger(tmp_path / "fresh", tensorboard=False, resume_step=3).close()
    assert (tmp_path / "fresh" / "metrics.jsonl").read_text() == ""
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "x": 1}\n{"step": 2, "x": 2}\n{"step": 3, "x"')
    MetricsLogger(tmp_path, tensorboard=False, resume_step=5).close()
    assert [r["step"] for r in read_metrics(path)] == [1, 2]
    path.write_text('{"step": 1}\n\n{"step": 2, oops\n{"step": 3}\n')  # line 3: blank lines count
    with pytest.raises(ValueError, match=r"metrics\.jsonl:3"):
        MetricsLogger(tmp_path, tensorboard=False, resume_step=1)


def test_read_metrics_names_the_bad_line(tmp_path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text('{"step": 1}\n\n{"step": 2\n')
    with pytest.raises(ValueError, match=r"m\.jsonl:3"):
        read_metrics(path)
    path.write_text('{"step": 1}\n   \n[1, 2]\n')
    with pytest.raises(ValueError, match=r"m\.jsonl:3"):
        read_metrics(path)
    path.write_text('\n{"step": 1}\n\n')
    assert read_metrics(path) == [{"step": 1}]


def test_tensorboard_scalars_are_written(tmp_path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with MetricsLogger(tmp_path) as logger:
        assert logger.tensorboard
        for step in range(1, 4):
            logger.log(step, {"reward/mean": step / 10, "train/kl": 0.01 * step})
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    assert {"reward/mean", "train/kl"} <= set(acc.Tags()["scalars"])
    events = acc.Scalars("reward/mean")
    assert [e.step for e in events] == [1, 2, 3]
    assert [e.value for e in events] == pytest.approx([0.1, 0.2, 0.3])


def test_tensorboard_resume_purges_later_steps(tmp_path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with MetricsLogger(tmp_path) as logger:
        for step in range(1, 4):
            logger.log(step, {"x": float(step)})
    time.sleep(1.1)  # event file names carry the time in seconds
    with MetricsLogger(tmp_path, resume_step=1) as logger:
        logger.log(2, {"x": 20.0})
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("x")] == [(1, 1.0), (2, 20.0)]


def test_missing_tensorboard_warns_and_keeps_jsonl(tmp_path, monkeypatch, caplog) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # makes the import fail
    with caplog.at_level(logging.WARNING, logger="swerepair.trainers.metrics"):
        logger = MetricsLogger(tmp_path, tensorboard=True)
    assert not logger.tensorboard
    assert any("TensorBoard" in r.getMessage() for r in caplog.records)
    logger.log(1, {"x": 1.0})
    logger.close()
    assert read_metrics(tmp_path / "metrics.jsonl")[0]["x"] == 1.0
    assert not (tmp_path / "tensorboard").exists()


# --- plot_learning_curve -----------------------------------------------------------------------


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    return struct.unpack(">II", data[16:24])


def write_records(path, records) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_plot_multi_step(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    had_pyplot = "matplotlib.pyplot" in sys.modules
    metrics = tmp_path / "metrics.jsonl"
    records = []
    for step in range(1, 9):
        record = {"step": step, "time": 0.0, "reward/mean": step / 10, "reward/std": 0.1, "resolve_rate": step / 20}
        record |= {"train/kl": 0.01 * step, "train/clip_fraction": 0.1, "train/entropy": 1.0 - step / 20}
        record |= {"train/grad_norm": 2.0 / step, "train/lr": 1e-6, "time/generation_s": 30.0, "time/training_s": 5.0}
        if step % 2:
            record["time/weight_sync_s"] = 1.0
        records.append(record)
    records[3]["train/kl"] = None  # a NaN that was written as null
    write_records(metrics, records)
    out = plot_learning_curve(metrics, tmp_path / "plots" / "curve.png", title="run")
    assert out == tmp_path / "plots" / "curve.png"
    width, height = png_size(out)
    assert width > 300 and height > 300
    assert had_pyplot or "matplotlib.pyplot" not in sys.modules


def test_plot_single_step_and_missing_panels(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    metrics = tmp_path / "metrics.jsonl"
    write_records(metrics, [{"step": 0, "time": 0.0, "reward/mean": 0.5, "reward/std": 0.2}])
    width, height = png_size(plot_learning_curve(metrics, tmp_path / "one.png"))
    assert width > 300 and height > 300
    write_records(metrics, [{"step": 3, "time": 0.0, "episodes/kept": 4.0}])  # every panel "no data"
    assert png_size(plot_learning_curve(metrics, tmp_path / "none.png"))[0] > 300


def time_panel(fig) -> dict[str, list[float]]:
    """The time panel's stacked bars: label -> bar heights."""
    ax = next(a for a in fig.axes if a.get_title() == "time per step (s)")
    return {c.get_label(): [p.get_height() for p in c.patches] for c in ax.containers}


def test_the_time_panel_shows_environment_time(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    metrics = tmp_path / "metrics.jsonl"
    base = {"time": 0.0, "time/generation_s": 30.0, "time/training_s": 5.0}
    write_records(metrics, [{"step": 1, **base, "time/rollout_s": 50.0, "time/environment_s": 20.0}])
    bars = time_panel(learning_curve_figure(metrics))
    assert list(bars) == ["time/generation_s", "time/environment_s", "time/training_s"]
    assert bars["time/environment_s"] == [20.0]
    # a run that logged rollout time only: the environment's share is rollout minus generation
    write_records(metrics, [{"step": 1, **base, "time/rollout_s": 42.0}, {"step": 2, **base}])
    assert time_panel(learning_curve_figure(metrics))["time/environment_s"] == [12.0, 0.0]


def test_plot_empty_file_raises(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("\n\n")
    with pytest.raises(ValueError, match="no metrics records"):
        plot_learning_curve(metrics, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
