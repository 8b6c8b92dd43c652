"""The command line's renamed names: an old flag or command is a one-line parser error (exit status
2, no traceback) that names the new one; the new names parse."""

from __future__ import annotations

import subprocess
import sys

import pytest

from swerepair import cli


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
        "swerepair train: command line: --max-turns was renamed --max-tool-calls "
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
