"""Tools: a name, an OpenAI function schema and an implementation against the sandbox protocol.

A tool's implementation receives the sandbox, a `ToolContext` (limits of this episode) and the
call's arguments, and returns the text the model reads. Expected failures raise `ToolError`
(their message is shown to the model); `SandboxError` means the sandbox itself broke and
propagates, so the env can mark the episode failed.

The nano-agent's two tools live here:

- `shell`: one command in restricted bash (see `swerepair.envs.sandbox.rbin`);
- `apply_patch`: replace exactly one occurrence of a search string in one file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from swerepair.core import ExecResult, Sandbox

__all__ = [
    "APPLY_PATCH",
    "MAX_COMMAND_BYTES",
    "SHELL",
    "Tool",
    "ToolContext",
    "ToolError",
    "check_arguments",
    "cut_output",
    "format_exec_result",
]


class ToolError(Exception):
    """A tool failed in a way the model should read about (no match, bad path, ...)."""


@dataclass(frozen=True)
class ToolContext:
    """Per-episode settings a tool may need.

    Attributes:
        timeout_s: wall-clock limit for one command.
        max_output_chars: tool output longer than this is cut (head and tail kept).
    """

    timeout_s: float = 30.0
    max_output_chars: int = 8000


ToolFn = Callable[[Sandbox, ToolContext, Mapping[str, Any]], str]


@dataclass(frozen=True)
class Tool:
    """A tool the agent can call.

    Attributes:
        name: the function name the model writes.
        description: what the tool does, shown to the model.
        parameters: JSON Schema (an ``object``) of the arguments.
        fn: the implementation.
    """

    name: str
    description: str
    parameters: Mapping[str, Any]
    fn: ToolFn = field(repr=False)

    def schema(self) -> dict[str, Any]:
        """OpenAI function-calling schema of this tool (a fresh dict each call)."""
        import copy

        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": copy.deepcopy(dict(self.parameters)),
            },
        }


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def check_arguments(tool: Tool, args: Mapping[str, Any]) -> None:
    """Raise `ToolError` if `args` does not fit the tool's schema (required, known, typed)."""
    props: Mapping[str, Any] = tool.parameters.get("properties", {})
    required = tool.parameters.get("required", [])
    missing = [r for r in required if r not in args]
    if missing:
        raise ToolError(f"{tool.name}: missing argument(s) {', '.join(missing)}")
    unknown = [a for a in args if a not in props]
    if unknown and not tool.parameters.get("additionalProperties", False):
        raise ToolError(f"{tool.name}: unknown argument(s) {', '.join(unknown)}; expected {', '.join(props)}")
    for name, value in args.items():
        expected = props.get(name, {}).get("type")
        types = _JSON_TYPES.get(expected) if isinstance(expected, str) else None
        bad_bool = expected in ("integer", "number") and isinstance(value, bool)
        if types is not None and (not isinstance(value, types) or bad_bool):
            raise ToolError(f"{tool.name}: argument '{name}' must be of type {expected}")


def cut_output(text: str, limit: int) -> str:
    """Cut `text` to at most `limit` characters, keeping its head (two thirds) and its tail
    around a marker that says how much was cut. Idempotent: cutting twice changes nothing.

    >>> cut_output("a" * 60 + "b" * 60, 50)
    'aaaaaaaaaaaaaa\\n[... 99 characters cut ...]\\nbbbbbbb'
    >>> len(cut_output("x" * 10_000, 500)), cut_output("short", 500)
    (500, 'short')
    """
    if limit <= 0 or len(text) <= limit:
        return text
    marker = ""
    for _ in range(3):  # the marker's length depends on the number it shows
        room = max(limit - len(marker), 0)
        head = (room * 2) // 3
        tail = room - head
        marker = f"\n[... {len(text) - head - tail} characters cut ...]\n"
    if len(marker) >= limit:
        return text[:limit]
    room = limit - len(marker)
    head = (room * 2) // 3
    tail = room - head
    return (
        f"{text[:head]}\n[... {len(text) - head - tail} characters cut ...]\n{text[len(text) - tail :] if tail else ''}"
    )


def format_exec_result(result: ExecResult, ctx: ToolContext | None = None) -> str:
    """What the model reads after a command: its output, then notes on how it ended.

    The text is not cut here: the env cuts every tool's output to `max_output_chars`, keeping
    the tail, so the notes survive.
    """
    text = result.output
    notes: list[str] = []
    if result.truncated:
        notes.append(f"[output was {result.output_bytes} bytes; only the first part was kept]")
    if result.timed_out:
        timeout = f" after {ctx.timeout_s:g}s" if ctx is not None else ""
        notes.append(f"[command timed out{timeout} and was killed]")
    elif result.exit_code != 0:
        notes.append(f"[exit code: {result.exit_code}]")
    if not text.strip() and not notes:
        return "[no output]"
    return "\n".join(part for part in [text.rstrip("\n"), *notes] if part)


#: The longest command line `shell` runs, in bytes. The kernel refuses a single argument over
#: 128 KiB (MAX_ARG_STRLEN) when the sandbox starts bash, which would fail the episode as an
#: infrastructure error: a longer command is the model's mistake and gets an observation.
MAX_COMMAND_BYTES = 64 * 1024


def _shell(sandbox: Sandbox, ctx: ToolContext, args: Mapping[str, Any]) -> str:
    cmd = args["cmd"]
    if not cmd.strip():
        raise ToolError("shell: empty command")
    size = len(cmd.encode("utf-8", errors="surrogatepass"))
    if size > MAX_COMMAND_BYTES:
        raise ToolError(
            f"shell: the command is {size} bytes; the limit is {MAX_COMMAND_BYTES} bytes. "
            "Write long content with apply_patch instead."
        )
    return format_exec_result(sandbox.run(cmd, ctx.timeout_s, restricted=True), ctx)


def _apply_patch(sandbox: Sandbox, ctx: ToolContext, args: Mapping[str, Any]) -> str:
    path, search, replace = args["file"], args["search"], args["replace"]
    try:
        text = sandbox.read_file(path)
    except ValueError as exc:
        raise ToolError(f"apply_patch: {exc}") from None
    except FileNotFoundError:
        if search == "":
            _write(sandbox, path, replace)
            return f"Created {path}."
        raise ToolError(f"apply_patch: {path}: no such file") from None
    except IsADirectoryError:
        raise ToolError(f"apply_patch: {path} is a directory") from None
    if search == "":
        raise ToolError("apply_patch: 'search' is empty; give the exact text to replace")
    count = text.count(search)
    if count == 0:
        hint = ""
        if search.strip() and text.count(search.strip()) == 1:
            hint = " (it matches once if leading/trailing whitespace is dropped)"
        raise ToolError(f"apply_patch: the search text was not found in {path}{hint}")
    if count > 1:
        raise ToolError(
            f"apply_patch: the search text occurs {count} times in {path}; include more "
            "surrounding lines so that it matches exactly once"
        )
    _write(sandbox, path, text.replace(search, replace, 1))
    line = text[: text.index(search)].count("\n") + 1
    return f"Replaced 1 occurrence in {path} (at line {line})."


def _write(sandbox: Sandbox, path: str, text: str) -> None:
    try:
        sandbox.write_file(path, text)
    except ValueError as exc:
        raise ToolError(f"apply_patch: {exc}") from None
    except OSError as exc:
        raise ToolError(f"apply_patch: cannot write {path}: {exc.strerror or exc}") from None


SHELL = Tool(
    name="shell",
    description=(
        "Run one command in a restricted bash shell in the repository root and return its "
        "output. Available: ls, cat, head, tail, grep, find, sed (no -i), awk, sort, uniq, wc, "
        "diff, cut, tr, nl, git (read-only subcommands), python, pytest. No cd, no output "
        "redirection; use apply_patch to edit files."
    ),
    parameters={
        "type": "object",
        "properties": {"cmd": {"type": "string", "description": "the command line to run"}},
        "required": ["cmd"],
    },
    fn=_shell,
)

APPLY_PATCH = Tool(
    name="apply_patch",
    description=(
        "Edit a file: replace exactly one occurrence of `search` with `replace`. `search` "
        "must match the file's text exactly (whitespace included) and occur exactly once. "
        "With an empty `search` and a file that does not exist yet, the file is created."
    ),
    parameters={
        "type": "object",
        "properties": {
            "file": {"type": "string", "description": "path relative to the repository root"},
            "search": {"type": "string", "description": "exact text to find"},
            "replace": {"type": "string", "description": "text to put in its place"},
        },
        "required": ["file", "search", "replace"],
    },
    fn=_apply_patch,
)
