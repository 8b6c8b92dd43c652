"""The per-step bookkeeping of `SweRepairEnv`, made cheap: the observation's copy, the running
token estimate and the tool's deadline thread.

- `copy_messages`: a copy of the conversation that shares nothing mutable with it, exact for
  what messages hold (dicts of str keys to strings, numbers, None, and lists/dicts of those, as
  in ``tool_calls``), with `copy.deepcopy` for anything else; about 20x cheaper than a deepcopy.
- `TokenTally`: `estimate_tokens` of a conversation that only grows, counting each message once
  (a message edited in place after it was counted must be reported with `TokenTally.edited`).
- `ToolRunner`: runs a tool's function on one reusable daemon thread with a deadline, instead of
  a new thread per call; a function past its deadline is abandoned with its thread, and the next
  call starts a new one.
"""

from __future__ import annotations

import copy
import json
import queue
import threading
import weakref
from collections.abc import Callable, Sequence
from itertools import islice
from typing import Any

__all__ = ["CHARS_PER_TOKEN", "TokenTally", "ToolOverran", "ToolRunner", "copy_messages", "estimate_tokens"]

Message = dict[str, Any]

#: Characters per token assumed by `estimate_tokens` (BPE vocabularies of Qwen/Llama class
#: average 3.3-4 characters per token on code and English).
CHARS_PER_TOKEN = 3.5


def message_chars(m: Message) -> int:
    """The characters `estimate_tokens` counts for one message: its content and the JSON of
    each tool call's function."""
    chars = len(m.get("content") or "")
    for call in m.get("tool_calls", ()):
        chars += len(json.dumps(call["function"]))
    return chars


def estimate_tokens(messages: Sequence[Message]) -> int:
    """Rough token count of a conversation: characters / 3.5, plus 6 per message for the chat
    template's role markers. Replace it with a real count through ``token_counter=``."""
    chars = 0
    for m in messages:
        chars += message_chars(m)
    return int(chars / CHARS_PER_TOKEN) + 6 * len(messages)


class TokenTally:
    """`estimate_tokens` of one growing conversation at the cost of its new messages: messages
    already counted are not read again, so whoever edits one in place after a count calls
    `edited` with its index. A conversation that shrank is counted afresh."""

    def __init__(self) -> None:
        self._chars: list[int] = []
        self._total = 0

    def count(self, messages: Sequence[Message]) -> int:
        """Exactly ``estimate_tokens(messages)``."""
        if len(messages) < len(self._chars):
            self._chars, self._total = [], 0
        for m in islice(messages, len(self._chars), None):
            c = message_chars(m)
            self._chars.append(c)
            self._total += c
        return int(self._total / CHARS_PER_TOKEN) + 6 * len(messages)

    def edited(self, index: int, message: Message) -> None:
        """Message `index` (counted or not) changed in place: its count is redone."""
        if index < 0:
            index += len(self._chars)
        if 0 <= index < len(self._chars):
            c = message_chars(message)
            self._total += c - self._chars[index]
            self._chars[index] = c


def _copy_value(v: Any) -> Any:
    """`v` rebuilt down to its immutable leaves (str, int, float, bool, None); deepcopy'd below
    anything else (a dict with a key that is not a str included)."""
    t = type(v)
    if t is dict:
        out = v.copy()
        for k, x in out.items():
            if type(k) is not str:
                return copy.deepcopy(v)
            if type(x) is not str:
                out[k] = _copy_value(x)  # a value replaced, no key added: safe while iterating
        return out
    if t is list:
        return [x if type(x) is str else _copy_value(x) for x in v]
    if t is str or t is int or t is float or t is bool or v is None:
        return v
    return copy.deepcopy(v)


def copy_messages(messages: Sequence[Message]) -> list[Message]:
    """A fresh list of fresh messages equal to `messages`, sharing no mutable object with them:
    strings, numbers and None are shared (immutable), plain dicts with str keys and lists are
    rebuilt, anything else is `copy.deepcopy`'d. Equal to ``copy.deepcopy(list(messages))``."""
    return [_copy_value(m) for m in messages]


class ToolOverran(Exception):
    """A tool's function did not return within its deadline."""


def _serve(jobs: queue.SimpleQueue, results: queue.SimpleQueue) -> None:
    """The worker thread: runs ``fn(*args)`` for each job until it reads None."""
    me = threading.current_thread()
    while True:
        job = jobs.get()
        if job is None:
            return
        fn, args, name = job
        me.name = f"swerepair-tool-{name}"
        try:
            out = (True, fn(*args))
        except BaseException as exc:  # handed to the caller's thread
            out = (False, exc)
        results.put(out)
        del job, fn, args, out  # hold no sandbox, result or traceback while idle


class ToolRunner:
    """Calls functions on one daemon thread, reused from call to call, each with a deadline.

    The guarantee is the one of a thread per call: `call` returns the function's result or
    raises what it raised, or raises `ToolOverran` once `deadline_s` has passed; the function
    then runs on alone (Python cannot stop a thread), its result discarded, and its thread takes
    no more work (the next call starts another). A caller interrupted while waiting
    (KeyboardInterrupt) abandons the thread the same way. After a fork the child starts its own.
    Calls from several threads at once never share the thread: one made while another is running
    gets a thread of its own. `close` lets the idle thread end; it also ends when the runner is
    garbage-collected.
    """

    def __init__(self) -> None:
        self._worker: tuple[threading.Thread, queue.SimpleQueue, queue.SimpleQueue] | None = None
        self._finalizer: weakref.finalize | None = None
        self._busy = threading.Lock()

    def call(self, fn: Callable[..., Any], args: tuple[Any, ...], deadline_s: float, name: str = "tool") -> Any:
        """``fn(*args)`` on the runner's thread: its result or exception, or `ToolOverran` once
        `deadline_s` seconds have passed."""
        if not self._busy.acquire(blocking=False):  # another thread is in a call: a thread of its own
            other = ToolRunner()
            try:
                return other.call(fn, args, deadline_s, name)
            finally:
                other.close()
        try:
            return self._call(fn, args, deadline_s, name)
        finally:
            self._busy.release()

    def _call(self, fn: Callable[..., Any], args: tuple[Any, ...], deadline_s: float, name: str) -> Any:
        worker = self._worker
        if worker is None or not worker[0].is_alive():  # first call, abandoned, or after a fork
            worker = self._start()
        _, jobs, results = worker
        jobs.put((fn, args, name))
        try:
            ok, value = results.get(timeout=deadline_s)
        except queue.Empty:
            self._abandon()
            raise ToolOverran from None
        except BaseException:
            self._abandon()
            raise
        if ok:
            return value
        raise value

    def _start(self) -> tuple[threading.Thread, queue.SimpleQueue, queue.SimpleQueue]:
        self._abandon()
        jobs: queue.SimpleQueue = queue.SimpleQueue()
        results: queue.SimpleQueue = queue.SimpleQueue()
        thread = threading.Thread(target=_serve, args=(jobs, results), name="swerepair-tool", daemon=True)
        thread.start()
        self._worker = (thread, jobs, results)
        self._finalizer = weakref.finalize(self, jobs.put, None)
        return self._worker

    def _abandon(self) -> None:
        """Tell the current thread to end once it is idle, and forget it."""
        if self._finalizer is not None:
            self._finalizer()  # puts the None that ends the thread (once)
        self._worker = self._finalizer = None

    def close(self) -> None:
        self._abandon()
