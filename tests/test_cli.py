"""The command line's renamed names: an old flag or command is a one-line parser error (exit status
2, no traceback) that names the new one; the new names parse."""

from __future__ import annotations

import json
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from swerepair import cli
from swerepair.core import Task

from helpers import make_repo


def run_main(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    return int(info.value.code), capsys.readouterr().err


def test_max_steps_of_solve_names_max_tool_calls(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--max-steps", "4"], ["--max-steps=4"]):
        code, err = run_main(capsys, ["solve", "--model", "tiny-qwen3", "--out", "x.jsonl", *argv])
        assert code == 2
        last = err.strip().splitlines()[-1]
        assert last == (
            "swerepair solve: error: --max-steps was renamed --max-tool-calls (the tool-call budget per episode)"
        )
        assert "Traceback" not in err


def test_solve_takes_max_tool_calls(capsys: pytest.CaptureFixture[str]) -> None:
    args = cli.build_parser().parse_args(["solve", "--model", "m", "--out", "o", "--max-tool-calls", "5"])
    assert args.max_tool_calls == 5 and not hasattr(args, "max_steps")
    with pytest.raises(SystemExit):
        cli.main(["solve", "--help"])
    text = capsys.readouterr().out
    assert "--max-tool-calls" in text and "--max-steps" not in text


def test_demo_command_names_check(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["demo"], ["demo", "--task-id", "x"], ["-v", "demo"]):
        code, err = run_main(capsys, argv)
        assert code == 2
        last = err.strip().splitlines()[-1]
        assert last.startswith("swerepair: error: the command demo was renamed check (")
        assert "Traceback" not in err


def test_check_validates_then_plays(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, object]] = []
    monkeypatch.setattr(cli, "cmd_tasks_validate", lambda args: calls.append(("validate", args.task_id)) or 0)
    monkeypatch.setattr(cli, "cmd_play", lambda args: calls.append(("play", args.task_id)) or 0)
    assert cli.main(["check", "--task-id", "swerepair__confkit-2"]) == 0
    assert calls == [("validate", None), ("play", "swerepair__confkit-2")]


def test_help_lists_check_not_demo() -> None:
    text = cli.build_parser().format_help()
    assert "check" in text and "demo" not in text


def test_train_max_turns_names_max_tool_calls(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["train", "--model", "tiny-qwen3", "--max-turns", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "swerepair train: error: command line: --max-turns was renamed --max-tool-calls "
        "(the tool-call budget per episode: tool calls plus turns without any call)"
    )


def test_old_flag_from_a_shell_exits_2_without_a_traceback() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "swerepair", "solve", "--model", "m", "--out", "o", "--max-steps", "4"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "--max-steps was renamed --max-tool-calls" in out.stderr


# -- a newcomer's first hour (issue 20): every failure a user can cause is one line --------------


def _rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _row(task: Task, **changes: object) -> dict:
    row = {k: v for k, v in task.__dict__.items() if k not in ("extra", "repo_source")}
    row |= {"FAIL_TO_PASS": list(task.FAIL_TO_PASS), "PASS_TO_PASS": list(task.PASS_TO_PASS)}
    if task.repo_source is not None:
        row["repo_source"] = task.repo_source
    return row | changes


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_a_broken_task_row_is_one_line_in_every_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], toy_task: Task
) -> None:
    bad = _row(toy_task, instance_id="toy__calc-2")
    del bad["patch"]
    path = _rows(tmp_path / "broken.jsonl", [_row(toy_task), bad])
    for argv in (
        ["play", "--tasks", str(path)],
        ["solve", "--model", "tiny-qwen3", "--tasks", str(path), "--out", str(tmp_path / "o.jsonl")],
        ["tasks", "validate", "--tasks", str(path)],
        ["tasks", "list", "--tasks", str(path)],
        ["train", "--tasks", str(path), "--output-dir", str(tmp_path / "run")],
    ):
        assert cli.main(argv) == 2, argv
        line = one_line(capsys.readouterr().err)
        command = " ".join(argv[:2] if argv[0] == "tasks" else argv[:1])
        assert line == f"swerepair {command}: error: {path}:2: missing field(s) patch", line
    assert not (tmp_path / "run").exists()


def test_an_unknown_task_id_names_it_and_a_close_one(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert cli.main(["play", "--task-id", "swerepair__confkit-22"]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith("swerepair play: error: unknown task id(s) swerepair__confkit-22 in --tasks bundled")
    assert "did you mean swerepair__confkit-2?" in line
    out = str(tmp_path / "o.jsonl")
    assert cli.main(["solve", "--model", "tiny-qwen3", "--task-id", "nope", "--out", out]) == 2
    assert one_line(capsys.readouterr().err).startswith("swerepair solve: error: unknown task id(s) nope in")


def test_repos_that_lack_the_repository_name_the_directory_and_the_paths_tried(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], toy_task: Task
) -> None:
    path = _rows(tmp_path / "t.jsonl", [{k: v for k, v in _row(toy_task).items() if k != "repo_source"}])
    empty = tmp_path / "empty"
    empty.mkdir()
    for command in (["play"], ["tasks", "validate"], ["tasks", "list"]):
        assert cli.main([*command, "--tasks", str(path), "--repos", str(empty)]) == 2
        line = one_line(capsys.readouterr().err)
        assert f"repos directory {empty} holds no repository toy/calc (task toy__calc-1)" in line
        for tried in ("toy__calc.bundle", "toy__calc.git", "toy__calc", "toy/calc"):
            assert f"{empty / tried}" in line
    assert cli.main(["play", "--tasks", str(path), "--repos", str(tmp_path / "nowhere")]) == 2
    assert "repos directory" in one_line(capsys.readouterr().err)
    # a bare clone, owner__name.git, is found
    subprocess.run(["git", "clone", "-q", "--bare", toy_task.repo_source, str(empty / "toy__calc.git")], check=True)
    assert cli.main(["tasks", "list", "--tasks", str(path), "--repos", str(empty)]) == 0
    assert "toy__calc-1" in capsys.readouterr().out


def test_a_cached_checkout_does_not_hide_a_wrong_repos(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], toy_task: Task
) -> None:
    """Scored 1.0 from the cache before: the cache is keyed by the repository source."""
    path = _rows(tmp_path / "t.jsonl", [{k: v for k, v in _row(toy_task).items() if k != "repo_source"}])
    good, other = tmp_path / "good", tmp_path / "other"
    good.mkdir()
    (good / "toy__calc").symlink_to(toy_task.repo_source)
    make_repo(other / "toy__calc", {"calc.py": "def add(a, b):\n    return 0\n"})
    assert cli.main(["play", "--tasks", str(path), "--repos", str(good)]) == 0
    assert '"reward": 1.0' in capsys.readouterr().out
    assert cli.main(["play", "--tasks", str(path), "--repos", str(other)]) == 2
    captured = capsys.readouterr()
    assert '"reward": 1.0' not in captured.out
    line = one_line(captured.err)
    assert f"base_commit {toy_task.base_commit} is not in {other / 'toy__calc'}" in line, line


def test_unknown_models_and_bad_ports_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "o.jsonl")
    for argv, command in (
        (["solve", "--model", "nope", "--out", out], "solve"),
        (["solve", "--model", "someone/not-cached", "--out", out], "solve"),
        (["serve", "--model", "nope"], "serve"),
        (["train", "--model", "nope", "--output-dir", str(tmp_path / "run")], "train"),
    ):
        assert cli.main(argv) == 2, argv
        line = one_line(capsys.readouterr().err)
        assert line.startswith(f"swerepair {command}: error: ") and "unknown model" in line, line
        assert "nothing is downloaded" in line
    assert not (tmp_path / "run").exists()
    for port in ("99999", "-1", "http"):
        code, err = run_main(capsys, ["serve", "--port", port])
        assert code == 2 and "Traceback" not in err
        assert err.strip().splitlines()[-1].startswith("swerepair serve: error: argument --port: ")
    with socket.socket() as busy:  # a port in use: the address is named
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert cli.main(["serve", "--port", str(port)]) == 2
        last = capsys.readouterr().err.strip().splitlines()[-1]
        assert last.startswith(f"swerepair serve: error: cannot listen on 127.0.0.1:{port}: "), last


def test_debug_shows_the_traceback(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(cli.UserError, match="unknown task id"):
        cli.main(["--debug", "play", "--task-id", "nope"])
    monkeypatch.setenv("SWEREPAIR_DEBUG", "1")
    with pytest.raises(cli.UserError, match="unknown task id"):
        cli.main(["play", "--task-id", "nope"])
    monkeypatch.setenv("SWEREPAIR_DEBUG", "0")
    assert cli.main(["play", "--task-id", "nope"]) == 2


def test_tasks_list_into_a_closed_pipe_exits_quietly() -> None:
    out = subprocess.run(
        f"{shlex.quote(sys.executable)} -m swerepair tasks list --tasks bundled-synth | head -1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.stdout.count("\n") == 1 and out.stderr == "", out.stderr


def test_validate_reports_the_real_tests_and_names_a_missing_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], toy_task: Task
) -> None:
    missing = "tests/test_calc.py::test_does_not_exist"
    row = _row(toy_task, FAIL_TO_PASS=[*toy_task.FAIL_TO_PASS, missing])
    path = _rows(tmp_path / "t.jsonl", [row])
    assert cli.main(["tasks", "validate", "--tasks", str(path), "--jobs", "1"]) == 1
    err = capsys.readouterr().err
    assert f"{missing} not found (" in err
    assert "before the fix: FAIL_TO_PASS 1 failed; PASS_TO_PASS 1 passed" in err
    assert "after the fix: FAIL_TO_PASS 1 passed; PASS_TO_PASS 1 passed" in err
    assert "MISSING" not in err and "missing" not in err.replace(missing, "")


def test_other_commands_fail_in_one_line_before_loading_a_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "o")
    for argv, where in (
        (["tasks", "list", "--tasks", str(tmp_path)], "unknown task file type"),
        (["expert", "--model", "nope", "--out", out], "unknown model 'nope'"),
        (["train", "--resume", str(tmp_path / "nowhere")], "not a run directory"),
        (["eval", "--model", "tiny-qwen3", "--split", str(tmp_path / "no.txt"), "--out", out], "no.txt"),
        (["solve", "--model", "tiny-qwen3", "--adapter", str(tmp_path / "none"), "--out", out], "no LoRA adapter"),
        (["envs", "build", "--tasks", str(tmp_path / "none.jsonl")], "none.jsonl does not exist"),
    ):
        assert cli.main(argv) == 2, argv
        line = one_line(capsys.readouterr().err)
        command = " ".join(argv[:2] if argv[0] in ("tasks", "envs") else argv[:1])
        assert line.startswith(f"swerepair {command}: error: ") and where in line, line


def test_train_says_when_no_group_had_a_signal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The tiny random model never edits: every group is zero-variance, and the run says so."""
    argv = ["train", "--model", "tiny-qwen3", "--output-dir", str(tmp_path / "run"), "--max-steps", "1"]
    argv += ["--group-size", "2", "--max-tool-calls", "1", "--max-new-tokens", "8", "--no-progress", "--no-tensorboard"]
    assert cli.main(argv) == 0
    err = capsys.readouterr().err
    assert "note: in each of the 1 group(s) every episode scored the same, so no update was made" in err


def test_play_takes_a_reward_and_a_scaffold_by_name(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "play.jsonl"
    argv = ["play", "--task-id", "swerepair__confkit-2", "--reward", "patch_similarity", "--out", str(out)]
    assert cli.main([*argv, "--scaffold", "nano"]) == 0
    record = json.loads(out.read_text().splitlines()[-1])
    # the gold fix without its test changes: the episode's reward is patch_similarity's, not the default's
    components = record["info"]["reward_components"]
    assert record["reward"] == components["patch_similarity"] < components["functional_similarity"] == 1.0
    capsys.readouterr()
    assert cli.main(["play", "--reward", "no_such_reward"]) == 2
    assert one_line(capsys.readouterr().err).startswith("swerepair play: error: unknown reward 'no_such_reward'")
    assert cli.main(["play", "--scaffold", "no_such_scaffold"]) == 2
    assert one_line(capsys.readouterr().err).startswith("swerepair play: error: --scaffold: unknown name")


def test_solve_against_a_server_writes_token_exact_episodes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("transformers")
    from swerepair.agents.inference.models import load_model
    from swerepair.agents.inference.server import InferenceServer

    out = tmp_path / "ep.jsonl"
    with InferenceServer(*load_model("tiny-qwen3"), model_name="tiny", default_max_tokens=8) as srv:
        argv = ["solve", "--model", "tiny", "--backend", "openai", "--base-url", srv.url, "--out", str(out)]
        argv += ["--task-id", "swerepair__confkit-2", "--max-tool-calls", "2", "--max-new-tokens", "8"]
        assert cli.main([*argv, "--tokenizer", "tiny-qwen3"]) in (0, 1)
        episode = json.loads(out.read_text().splitlines()[-1])
        assert episode["info"]["token_exact"] is True
        assert len(episode["tokens"]) == len(episode["loss_mask"]) and sum(episode["loss_mask"]) > 0
        assert len(episode["logprobs"]) == sum(episode["loss_mask"])
        capsys.readouterr()
        assert cli.main([*argv, "--tokenizer", str(tmp_path / "none")]) == 2
        assert "--tokenizer: cannot load" in one_line(capsys.readouterr().err)
