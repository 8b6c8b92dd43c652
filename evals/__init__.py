"""Evaluation: run a policy over a task set and report what it achieved, with denominators and
confidence intervals (`summarize`), as SWE-bench predictions, Markdown and plots; compare two
runs on the same tasks (`compare`). docs/evaluation.md."""

from swerepair.evals.outcomes import CATEGORIES, Outcome, outcome_of
from swerepair.evals.report import compare, load_outcomes, markdown, summarize, write_predictions
from swerepair.evals.stats import Interval, bootstrap_ci, mcnemar_exact, paired_difference_ci, pass_at_k

__all__ = [
    "CATEGORIES",
    "Interval",
    "Outcome",
    "bootstrap_ci",
    "compare",
    "load_outcomes",
    "markdown",
    "mcnemar_exact",
    "outcome_of",
    "paired_difference_ci",
    "pass_at_k",
    "summarize",
    "write_predictions",
]
