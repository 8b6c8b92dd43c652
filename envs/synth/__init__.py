"""Task synthesis: validated bug-repair tasks from a local Python repository (``swerepair tasks synth``).

- `synthesize` / `SynthConfig`: the whole pipeline (baseline, bug makers, validation in the
  sandbox, task-set bundle, task file), see `swerepair.envs.synth.synthesize`;
- `MAKERS`, `candidates`, `mutants`: the bug makers over the AST (`swerepair.envs.synth.mutators`);
- `history_candidates`: commits that touch code and tests (`swerepair.envs.synth.history`);
- `issue_text`: issue texts from failing tests (`swerepair.envs.synth.issues`).

docs/synthesis.md describes the rules, the knobs and the bundled synthesized task set.
"""

from swerepair.envs.synth.history import HistoryCandidate, history_candidates
from swerepair.envs.synth.issues import IssueRewriter, facts_for, issue_text, parse_failures
from swerepair.envs.synth.mutators import MAKERS, Edit, apply_edit, candidates, mutants
from swerepair.envs.synth.synthesize import SynthConfig, SynthError, SynthResult, synthesize

__all__ = [
    "MAKERS",
    "Edit",
    "HistoryCandidate",
    "IssueRewriter",
    "SynthConfig",
    "SynthError",
    "SynthResult",
    "apply_edit",
    "candidates",
    "facts_for",
    "history_candidates",
    "issue_text",
    "mutants",
    "parse_failures",
    "synthesize",
]
