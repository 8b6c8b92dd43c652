"""`SweRepairEnv`: one bug-repair episode per reset, one assistant turn per step.

Observation: the conversation so far as OpenAI-style chat messages (see `ConversationSpace`).
Action: one assistant turn, as raw completion text or an assistant message dict.
Reward: 0 on every step but the last; on the last, the configured reward of the final patch.

See docs/env.md for every field of `info`, the budgets and how to plug in a scaffold.

Faults. An episode the infrastructure spoiled ends with ``info["failed"] = True`` (a trainer drops
it; its 0.0 is no reward signal), never with an exception out of `step`:

- ``sandbox_error``: the sandbox could not be made at reset (a `SandboxError`, or an `OSError`
  such as a full disk, ENOSPC, while the workspace is prepared), or it broke during the episode
  (killed, its workspace gone: a tool or the final ``git diff`` raises `SandboxError`);
- ``reward_error``: the reward could not be computed (a verifier that timed out or crashed);
- ``policy_error`` (or any reason a caller names): the caller ended the episode with `abort`,
  e.g. a rollout whose inference server went away before the turn came back.

A tool's command is bounded by ``tool_timeout_s`` (a command past it is killed, and the model
reads ``[command timed out ...]``: an observation, not a failure). A tool's Python function is
bounded too: it runs on a daemon thread (one per env, reused from call to call), and one that has
not returned after ``tool_deadline_s`` (default ``2 * tool_timeout_s + 30``) is abandoned: the
model reads ``Error: the tool 'NAME' did not finish within Ns ...``, counted in
``tool_stats["errors"]`` and ``["timeouts"]``, and the episode goes on (the next call gets a new
thread). Python cannot stop a thread: an abandoned function runs on until it returns (its result
is discarded) and may still act on the workspace meanwhile; once the episode ends its
sandbox is closed under it.

Configuration errors still raise: `TaskRepositoryError` from `reset` for a task whose repository
or commit is missing (`swerepair.envs.rollout.run_episodes` turns it into a failed episode,
``repository_error``, so that a repository vanishing mid-training fails only its episodes).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, SupportsFloat

import gymnasium as gym

from swerepair.agents.scaffold import Scaffold, resolve_scaffold
from swerepair.agents.scaffold.parsing import ToolCall, ToolCallError, tool_call_from_openai
from swerepair.agents.scaffold.tools import ToolContext, ToolError, check_arguments, cut_output
from swerepair.core import Sandbox, SandboxError, Task
from swerepair.envs.sandbox import (
    SandboxConfig,
    TaskRepositoryError,
    bwrap_available,
    make_sandbox,
    resolve_kind,
)
from swerepair.envs.spaces import AssistantTurnSpace, ConversationSpace
from swerepair.envs.stepping import CHARS_PER_TOKEN as CHARS_PER_TOKEN  # re-exported
from swerepair.envs.stepping import TokenTally, ToolOverran, ToolRunner, copy_messages, estimate_tokens
from swerepair.envs.tasks import TaskSource, load_tasks
from swerepair.rewards import REWARDS, RewardFn, evaluate, resolve_reward

__all__ = ["RENAMED_BUDGETS", "Budgets", "SweRepairEnv", "estimate_tokens"]

log = logging.getLogger(__name__)

Message = dict[str, Any]
SandboxFactory = Callable[[Task], Sandbox]

#: Budget names that were renamed: old -> (new, what it is). The old names are rejected (by
#: `Budgets`, `SweRepairEnv` and so ``gymnasium.make``) with a message that names the new one.
RENAMED_BUDGETS: Mapping[str, tuple[str, str]] = {
    "max_steps": ("max_tool_calls", "the tool-call budget per episode: tool calls plus turns without any call"),
    "warn_steps": ("warn_tool_calls", "the budget warning from this many tool calls left on"),
}


def _reject_renamed(kwargs: Mapping[str, Any], where: str) -> None:
    """Raise `TypeError` naming the new name of each renamed budget in `kwargs`."""
    old = [k for k in kwargs if k in RENAMED_BUDGETS]
    if old:
        raise TypeError(
            f"{where}: " + "; ".join(f"{k} was renamed {RENAMED_BUDGETS[k][0]} ({RENAMED_BUDGETS[k][1]})" for k in old)
        )


@dataclass(frozen=True)
class Budgets:
    """When an episode is cut short (``truncated=True``).

    Attributes:
        max_tool_calls: tool calls (well-formed or not) plus turns without any call.
        max_context_tokens: the conversation's size, by `token_counter`.
        max_wall_s: seconds since reset.
        warn_tool_calls: from this many tool calls left on, tool output carries a budget warning.
        warn_context_fraction: the same, once the context is this full (this fraction of
            `max_context_tokens`).
        warn_wall_fraction: the same, once this fraction of `max_wall_s` has passed.

    The old names ``max_steps`` and ``warn_steps`` are rejected with the new ones named:

    >>> Budgets(max_steps=5)
    Traceback (most recent call last):
    ...
    TypeError: Budgets: max_steps was renamed max_tool_calls (the tool-call budget per episode: ...)
    """

    max_tool_calls: int = 30
    max_context_tokens: int = 8192
    max_wall_s: float = 1800.0
    warn_tool_calls: int = 3
    warn_context_fraction: float = 0.85
    warn_wall_fraction: float = 0.85

    def __new__(cls, *args: Any, **kwargs: Any) -> Budgets:
        _reject_renamed(kwargs, "Budgets")
        return super().__new__(cls)


@dataclass
class _Episode:
    task: Task
    messages: list[Message]
    sandbox: Sandbox | None
    started: float
    failure: str | None = None
    tool_calls: int = 0
    turns: int = 0
    calls: Counter[str] = field(default_factory=Counter)
    errors: int = 0
    malformed: int = 0
    timeouts: int = 0
    done: bool = False
    tokens: TokenTally = field(default_factory=TokenTally)  # estimate_tokens, message by message


class SweRepairEnv(gym.Env[list[Message], Any]):
    """Repository-level bug repair as a Gymnasium environment.

    Args:
        tasks: a task set: ``"bundled"``, ``"bundled-synth"``, a task file, a ``datasets.Dataset`` or a list of tasks.
        sandbox: ``"auto"`` (bubblewrap where it works, else local), ``"bubblewrap"``,
            ``"local"``, or a callable ``task -> Sandbox``.
        scaffold: the agent's prompt, tools and parser (default: the nano-agent), or its name
            (`swerepair.agents.scaffold.resolve_scaffold`: ``"nano"``, an entry point of the group
            ``swerepair.scaffolds``, or ``module:attr``).
        reward: a name from `swerepair.rewards.REWARDS` or `SANDBOX_REWARDS` (``tests_pass``,
            run in a fresh verifier sandbox made like the agent's), an entry point of the group
            ``swerepair.rewards``, an import path ``module:function``, or a callable
            ``(patch, task) -> float`` (or an object with ``evaluate``, such as a `Rubric`).
            The default, ``functional_similarity``, scores the gold patch exactly 1.
        budgets: tool-call, context and wall-clock budgets; any `Budgets` field may also be
            given as a keyword argument (``max_tool_calls=10``), over `budgets`.
        tool_timeout_s: wall-clock limit of one tool command.
        tool_deadline_s: wall-clock limit of one tool function (default ``2 * tool_timeout_s +
            30``); a tool past it is abandoned and answered with an error (see the module
            docstring).
        max_output_chars: tool output beyond this many characters is cut (head and tail kept).
        token_counter: counts a conversation's tokens for the context budget
            (default: `estimate_tokens`).
        verifier_timeout_s: time limit of one test run of a test-executing reward.
        sandbox_config: resource limits and interpreter for the built-in sandboxes.
        docker: settings of ``sandbox="docker"`` over `sandbox_config`'s: ``image``, ``runtime``,
            and the warm pool's and image budget's (`PoolConfig` keys: ``pool_size``,
            ``per_host_limit``, ``image_budget_bytes`` or ``image_budget_gb``, ``pull``,
            ``prefetch``, ``host``; see docs/docker.md).
        repos: where task repositories live, as for `load_tasks`.
        render_mode: ``"ansi"`` makes `render()` return the transcript as text.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        tasks: TaskSource = "bundled",
        *,
        sandbox: str | SandboxFactory = "auto",
        scaffold: Scaffold | str | None = None,
        reward: str | RewardFn = "functional_similarity",
        budgets: Budgets | None = None,
        tool_timeout_s: float = 30.0,
        tool_deadline_s: float | None = None,
        max_output_chars: int = 8000,
        token_counter: Callable[[Sequence[Message]], int] | None = None,
        verifier_timeout_s: float = 300.0,
        sandbox_config: SandboxConfig | None = None,
        docker: Mapping[str, Any] | None = None,
        repos: Any = None,
        render_mode: str | None = None,
        **budget_overrides: Any,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}")
        self.render_mode = render_mode
        self.tasks: list[Task] = load_tasks(tasks, repos=repos)
        if not self.tasks:
            raise ValueError("the task set is empty")
        self._by_id = {t.instance_id: t for t in self.tasks}
        self.scaffold = resolve_scaffold(scaffold)
        _reject_renamed(budget_overrides, "SweRepairEnv")
        unknown = set(budget_overrides) - set(Budgets.__dataclass_fields__)
        if unknown:
            raise TypeError(f"unknown argument(s) {sorted(unknown)}")
        self.budgets = Budgets(**{**(budgets or Budgets()).__dict__, **budget_overrides})
        self.tool_ctx = ToolContext(timeout_s=tool_timeout_s, max_output_chars=max_output_chars)
        self.tool_deadline_s = 2 * tool_timeout_s + 30.0 if tool_deadline_s is None else float(tool_deadline_s)
        if not self.tool_deadline_s > 0:
            raise ValueError(f"tool_deadline_s must be > 0, got {tool_deadline_s!r}")
        self.token_counter = token_counter or estimate_tokens
        self.sandbox_config = sandbox_config or SandboxConfig()
        if docker:
            self.sandbox_config = _with_docker(self.sandbox_config, docker)
        verifier_factory: Callable[[Task], Sandbox]
        if callable(sandbox):
            self.sandbox_kind, self._factory = getattr(sandbox, "__name__", "custom"), sandbox
            verifier_factory = sandbox
        else:
            kind = resolve_kind(sandbox)
            if kind == "bubblewrap" and not bwrap_available():
                raise RuntimeError("sandbox='bubblewrap' but bubblewrap cannot run here (apt-get install bubblewrap)")
            # a Docker image may hold the repository itself (SWE-bench layout: /testbed)
            no_source = [t.instance_id for t in self.tasks if t.repo_source is None and kind != "docker"]
            if no_source:
                raise TaskRepositoryError(
                    f"{len(no_source)} task(s) have no repository source (first: {no_source[0]}); "
                    "pass repos=... or give each row a 'repo_source'"
                )
            self.sandbox_kind = kind
            self._factory = lambda task: make_sandbox(kind, task, self.sandbox_config)
            # The verifier's sandboxes are fresh ones, never the agent's, with a bubblewrap per
            # command (no session): a handful of commands, each in namespaces of its own.
            verifier_config = dataclasses.replace(self.sandbox_config, session=False)
            verifier_factory = lambda task: make_sandbox(kind, task, verifier_config)  # noqa: E731
        self.reward_name, self.reward_fn = resolve_reward(reward, verifier_factory, timeout=verifier_timeout_s)
        self.observation_space = ConversationSpace()
        self.action_space = AssistantTurnSpace()
        self._ep: _Episode | None = None
        self._tools = ToolRunner()  # the tools' deadline thread, reused from call to call

    # -- reset -----------------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[list[Message], dict[str, Any]]:
        """Start an episode on ``options["task_id"]``, or on a task drawn with the seeded RNG.

        Returns the conversation so far (system message, then the issue as a user message)
        and ``info`` with ``task_id``, ``repo``, ``tools`` (OpenAI function schemas),
        ``scaffold``, ``sandbox`` and ``failed`` (True if the workspace could not be made;
        the first step then ends the episode as failed).
        """
        super().reset(seed=seed)
        self._close_episode()
        options = options or {}
        task_id = options.get("task_id")
        if task_id is not None:
            if task_id not in self._by_id:
                raise KeyError(f"unknown task_id {task_id!r}")
            task = self._by_id[task_id]
        else:
            task = self.tasks[int(self.np_random.integers(len(self.tasks)))]
        sandbox: Sandbox | None = None
        failure = failed_host = None
        try:
            sandbox = self._factory(task)
        except (SandboxError, OSError) as exc:  # OSError: a full disk, too many open files, ...
            failure = f"sandbox: {exc}" if isinstance(exc, SandboxError) else f"sandbox: {type(exc).__name__}: {exc}"
            failed_host = getattr(exc, "docker_host", None)  # several Docker hosts: the one that failed
            log.error("task %s: could not create the sandbox: %s", task.instance_id, failure)
        workdir = sandbox.workdir if sandbox is not None else "/workspace"
        messages: list[Message] = [
            {"role": "system", "content": self.scaffold.render_system(workdir)},
            {"role": "user", "content": task.problem_statement},
        ]
        self._ep = _Episode(task, messages, sandbox, time.monotonic(), failure=failure)
        info = {
            "task_id": task.instance_id,
            "repo": task.repo,
            "tools": self.scaffold.tool_schemas(),
            "scaffold": self.scaffold.name,
            "sandbox": self.sandbox_kind,
            "failed": failure is not None,
        }
        info.update(_docker_info(sandbox))
        if failed_host is not None:
            info["docker"] = {"host": failed_host}
        return copy_messages(messages), info

    # -- step ------------------------------------------------------------------------------
    def step(self, action: Any) -> tuple[list[Message], SupportsFloat, bool, bool, dict[str, Any]]:
        """Run one assistant turn. See the module docstring and docs/env.md for the fields."""
        ep = self._ep
        if ep is None or ep.done:
            raise RuntimeError("the episode is over (or never started): call reset()")
        ep.turns += 1
        if ep.failure is not None:
            return self._finish(ep, terminated=False, exit_reason="sandbox_error")
        content, items = self._decode_action(action, ep.turns)
        calls = [i for i in items if isinstance(i, ToolCall)]
        message: Message = {"role": "assistant", "content": content}
        if calls:
            message["tool_calls"] = [c.to_openai() for c in calls]
        ep.messages.append(message)
        try:
            for k, item in enumerate(items):
                if ep.tool_calls >= self.budgets.max_tool_calls:
                    call_id = item.id if isinstance(item, ToolCall) else item.id or f"invalid_{ep.turns}_{k}"
                    name = item.name if isinstance(item, ToolCall) else "invalid_tool_call"
                    self._tool_message(ep, call_id, name, "Not executed: the tool-call budget is exhausted.")
                    continue
                ep.tool_calls += 1
                if isinstance(item, ToolCall):
                    self._tool_message(ep, item.id, item.name, self._run_tool(ep, item))
                else:
                    ep.malformed += 1
                    self._tool_message(
                        ep,
                        item.id or f"invalid_{ep.turns}_{k}",
                        "invalid_tool_call",
                        f"Error: could not parse your tool call: {item.message}",
                    )
            if not items:
                ep.tool_calls += 1
                if self._diff(ep).strip():
                    return self._finish(ep, terminated=True, exit_reason="agent_stopped")
                ep.messages.append({"role": "user", "content": self.scaffold.nudge})
        except SandboxError as exc:
            log.error("task %s: sandbox failed: %s", ep.task.instance_id, exc)
            ep.failure = f"sandbox: {exc}"
            return self._finish(ep, terminated=False, exit_reason="sandbox_error")
        reason = self._budget_exceeded(ep)
        if reason is not None:
            return self._finish(ep, terminated=False, exit_reason=reason)
        self._add_budget_warning(ep)
        return copy_messages(ep.messages), 0.0, False, False, self._step_info(ep)

    def _decode_action(self, action: Any, turn: int) -> tuple[str, list[ToolCall | ToolCallError]]:
        prefix = f"call_{turn}"
        if isinstance(action, str):
            parsed = self.scaffold.parser.parse(action, call_id_prefix=prefix)
            return parsed.content, list(parsed.items)
        if isinstance(action, dict) and action.get("role", "assistant") == "assistant":
            content = action.get("content") or ""
            if not isinstance(content, str):
                raise TypeError("an assistant message's content must be a string or None")
            raw_calls = action.get("tool_calls") or []
            if not isinstance(raw_calls, list):
                raise TypeError("an assistant message's tool_calls must be a list")
            items: list[ToolCall | ToolCallError] = []
            for k, entry in enumerate(raw_calls):
                try:
                    items.append(tool_call_from_openai(entry, f"{prefix}_{k}"))
                except ValueError as exc:
                    given = entry.get("id") if isinstance(entry, dict) else None
                    raw = json.dumps(entry, default=str)[:500]
                    items.append(ToolCallError(raw, str(exc), given if isinstance(given, str) else None))
            return content, items
        raise TypeError(
            "an action is one assistant turn: completion text (str) or "
            f"{{'role': 'assistant', 'content': ..., 'tool_calls': [...]}}; got {type(action).__name__}"
        )

    def _run_tool(self, ep: _Episode, call: ToolCall) -> str:
        tool = self.scaffold.tools.get(call.name)
        if tool is None:
            ep.errors += 1
            return f"Error: unknown tool '{call.name}'. Available tools: {', '.join(self.scaffold.tools)}."
        ep.calls[call.name] += 1
        assert ep.sandbox is not None
        try:
            check_arguments(tool, call.arguments)
            args = (ep.sandbox, self.tool_ctx, call.arguments)
            output = self._tools.call(tool.fn, args, self.tool_deadline_s, call.name)
        except ToolOverran:
            log.error(
                "task %s: the tool %s did not finish within %gs", ep.task.instance_id, call.name, self.tool_deadline_s
            )
            ep.errors += 1
            ep.timeouts += 1
            return (
                f"Error: the tool '{call.name}' did not finish within {self.tool_deadline_s:g}s and was abandoned; "
                "its result is lost"
            )
        except ToolError as exc:
            ep.errors += 1
            return f"Error: {exc}"
        except SandboxError:
            raise
        except Exception as exc:  # a bug in a tool must not kill training
            log.exception("tool %s raised", call.name)
            ep.errors += 1
            return f"Error: the tool '{call.name}' failed internally: {type(exc).__name__}: {exc}"
        if not isinstance(output, str):
            ep.errors += 1
            return f"Error: the tool '{call.name}' returned {type(output).__name__}, not text"
        if "[command timed out" in output:
            ep.timeouts += 1
        return cut_output(output, self.tool_ctx.max_output_chars)

    def _tool_message(self, ep: _Episode, call_id: str, name: str, content: str) -> None:
        ep.messages.append({"role": "tool", "tool_call_id": call_id, "name": name, "content": content})

    def _diff(self, ep: _Episode) -> str:
        assert ep.sandbox is not None
        return ep.sandbox.diff()

    # -- budgets ---------------------------------------------------------------------------
    def _budget_exceeded(self, ep: _Episode) -> str | None:
        b = self.budgets
        if ep.tool_calls >= b.max_tool_calls:
            return "tool_call_budget"
        if self._count_tokens(ep) >= b.max_context_tokens:
            return "context_budget"
        if time.monotonic() - ep.started >= b.max_wall_s:
            return "time_budget"
        return None

    def _add_budget_warning(self, ep: _Episode) -> None:
        b = self.budgets
        notes = []
        left = b.max_tool_calls - ep.tool_calls
        if left <= b.warn_tool_calls:
            notes.append(f"{left} tool call{'s' if left != 1 else ''} left")
        used = self._count_tokens(ep)
        if used >= b.warn_context_fraction * b.max_context_tokens:
            notes.append(f"context {used}/{b.max_context_tokens} tokens used")
        elapsed = time.monotonic() - ep.started
        if elapsed >= b.warn_wall_fraction * b.max_wall_s:
            notes.append(f"{max(b.max_wall_s - elapsed, 0.0):.0f}s of wall-clock time left")
        if notes:
            last = ep.messages[-1]
            last["content"] = f"{last['content']}\n[budget warning: {'; '.join(notes)}. Finish your fix now.]"
            ep.tokens.edited(len(ep.messages) - 1, last)

    def _count_tokens(self, ep: _Episode) -> int:
        """``token_counter(ep.messages)``; the default one counts only the messages it has not
        seen (exactly `estimate_tokens`, see `TokenTally`)."""
        if self.token_counter is estimate_tokens:
            return ep.tokens.count(ep.messages)
        return self.token_counter(ep.messages)

    # -- the end -----------------------------------------------------------------------------
    def _tool_stats(self, ep: _Episode) -> dict[str, Any]:
        return {
            "calls": dict(ep.calls),
            "errors": ep.errors,
            "malformed": ep.malformed,
            "timeouts": ep.timeouts,
            "tool_calls": ep.tool_calls,
            "turns": ep.turns,
        }

    def _step_info(self, ep: _Episode) -> dict[str, Any]:
        return {"task_id": ep.task.instance_id, "tool_stats": self._tool_stats(ep)}

    def _finish(
        self, ep: _Episode, *, terminated: bool, exit_reason: str
    ) -> tuple[list[Message], float, bool, bool, dict[str, Any]]:
        ep.done = True
        patch = ""
        if ep.failure is None:
            try:
                patch = self._diff(ep)
            except SandboxError as exc:
                ep.failure = f"sandbox: {exc}"
                exit_reason, terminated = "sandbox_error", False
        components: dict[str, float] = {}
        verifier: dict[str, Any] = {}
        reward = 0.0
        if ep.failure is None:
            outcome = evaluate(self.reward_fn, patch, ep.task)
            verifier = dict(outcome.details)
            if outcome.failed or outcome.value is None:
                log.error("task %s: the reward could not be computed: %s", ep.task.instance_id, outcome.reason)
                ep.failure = f"reward: {outcome.reason}"
                exit_reason, terminated = "reward_error", False
            else:
                reward = outcome.value
                components = {name: float(fn(patch, ep.task)) for name, fn in REWARDS.items()}
                components.update(outcome.components)
                components[self.reward_name] = reward
        failed = ep.failure is not None
        info = self._step_info(ep) | {
            "patch": patch,
            "reward_components": components,
            "verifier": verifier,
            "exit_reason": exit_reason,
            "failed": failed,
            "failure": ep.failure,
            "elapsed_s": time.monotonic() - ep.started,
            "context_tokens": self._count_tokens(ep),
        }
        info.update(_docker_info(ep.sandbox))
        self._release_sandbox(ep)
        return copy_messages(ep.messages), reward, terminated, not terminated, info

    def abort(
        self, failure: str, exit_reason: str = "policy_error"
    ) -> tuple[list[Message], float, bool, bool, dict[str, Any]]:
        """End the current episode as failed for a reason outside the env (the policy's server
        went away before the turn came back, say): the final step's tuple, as `step` returns it,
        with ``failed=True``, `exit_reason`, ``info["failure"] = failure``, no patch and no reward;
        the sandbox is released. Raises `RuntimeError` if no episode is running."""
        ep = self._ep
        if ep is None or ep.done:
            raise RuntimeError("the episode is over (or never started): nothing to abort")
        log.error("task %s: episode aborted (%s): %s", ep.task.instance_id, exit_reason, failure)
        ep.failure = failure
        return self._finish(ep, terminated=False, exit_reason=exit_reason)

    def _release_sandbox(self, ep: _Episode) -> None:
        if ep.sandbox is not None:
            try:
                ep.sandbox.close()
            except Exception:  # closing must never mask the episode's result
                log.exception("closing the sandbox failed")
            ep.sandbox = None

    def _close_episode(self) -> None:
        if self._ep is not None:
            self._release_sandbox(self._ep)
            self._ep = None

    # -- gymnasium API -----------------------------------------------------------------------
    @property
    def task(self) -> Task | None:
        """The current episode's task."""
        return self._ep.task if self._ep is not None else None

    @property
    def sandbox(self) -> Sandbox | None:
        """The current episode's sandbox (``None`` once the episode ended)."""
        return self._ep.sandbox if self._ep is not None else None

    def render(self) -> str | None:
        """With ``render_mode="ansi"``: the transcript so far as plain text."""
        if self.render_mode != "ansi" or self._ep is None:
            return None
        return render_transcript(self._ep.messages)

    def close(self) -> None:
        """Remove the current episode's workspace. Safe to call more than once."""
        self._close_episode()
        self._tools.close()
        super().close()


def _with_docker(config: SandboxConfig, docker: Mapping[str, Any]) -> SandboxConfig:
    """`config` with the ``docker={...}`` settings of `SweRepairEnv` over it."""
    import dataclasses

    from swerepair.envs.sandbox.docker.pool import PoolConfig

    pool_keys = set(PoolConfig.__dataclass_fields__) | {"image_budget_gb"}
    unknown = set(docker) - pool_keys - {"image", "runtime"}
    if unknown:
        raise TypeError(f"docker: unknown setting(s) {sorted(unknown)}")
    changes: dict[str, Any] = {}
    if "image" in docker:
        changes["docker_image"] = docker["image"]
    if "runtime" in docker:
        changes["docker_runtime"] = docker["runtime"]
    if set(docker) & pool_keys:
        base = dataclasses.asdict(config.docker_pool) if config.docker_pool is not None else {}
        changes["docker_pool"] = PoolConfig.from_mapping({**base, **docker})
    return dataclasses.replace(config, **changes)


def _docker_info(sandbox: Sandbox | None) -> dict[str, Any]:
    """``{"docker": ...}`` for a Docker sandbox: this reset's container (``image``, ``pool_hit``,
    ``reset_wait_s``) and the process's pool and image cache counters (``docker/pulls``, ...)."""
    stats = getattr(sandbox, "docker_stats", None)
    if not callable(stats):
        return {}
    try:
        return {"docker": dict(stats())}
    except Exception:  # a report must never fail the episode
        log.exception("reading the Docker pool's stats failed")
        return {}


def render_transcript(messages: Sequence[Message]) -> str:
    """A readable transcript: one block per message, tool calls shown as name(arguments)."""
    blocks = []
    for m in messages:
        head = f"[{m['role']}{' ' + m['name'] if m.get('name') else ''}]"
        body = m.get("content") or ""
        for call in m.get("tool_calls", ()):
            fn = call["function"]
            body += f"\n-> {fn['name']}({fn['arguments']})"
        blocks.append(f"{head}\n{body.strip()}")
    return "\n\n".join(blocks) + "\n"
