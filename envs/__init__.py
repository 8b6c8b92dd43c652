"""The SweRepair-v0 environment, its sandboxes, task loading and task validation."""

from __future__ import annotations

from swerepair.envs.env import Budgets, SweRepairEnv, estimate_tokens, render_transcript
from swerepair.envs.spaces import AssistantTurnSpace, ConversationSpace
from swerepair.envs.tasks import Task, TaskFormatError, load_tasks

__all__ = [
    "AssistantTurnSpace",
    "Budgets",
    "ConversationSpace",
    "SweRepairEnv",
    "Task",
    "TaskFormatError",
    "estimate_tokens",
    "load_tasks",
    "render_transcript",
]
