"""Agents: the scaffold the env executes, and the model stack that plays it.

Three layers, each importing only the ones before it (checked by ``tests/test_layering.py``):

- `swerepair.agents.scaffold`: tools written against the sandbox protocol, the system prompt,
  tool-call parsing. The env imports this and nothing else of ``agents``.
- `swerepair.agents.inference`: token-level backends (in-process ``hf``, OpenAI-compatible
  servers), chat rendering, model loading, the embedded server, the vLLM launcher and worker
  extension, and the receiving side of live weight updates (`swerepair.agents.inference.weights`).
- `swerepair.agents.policies`: conversations in, assistant turns out (`Policy`, `ModelPolicy`,
  `OpenAIPolicy`, `ScriptedPolicy`) and token-exact episodes (`EpisodeBuilder`).

The names below are the scaffold's, for plugging a scaffold into the env without reaching into
subpackages.
"""

from __future__ import annotations

from swerepair.agents import scaffold as _scaffold
from swerepair.agents.scaffold import *  # noqa: F403  (the scaffold's names, listed in its __all__)

__all__ = list(_scaffold.__all__)
