"""swerepair: Gymnasium environments for agent-in-the-loop RL on repository-level bug repair.

Importing the package registers ``SweRepair-v0``::

    import gymnasium as gym
    import swerepair  # noqa: F401

    env = gym.make("SweRepair-v0")          # bundled tasks, bubblewrap sandbox where possible
    obs, info = env.reset(seed=0)
"""

from __future__ import annotations

import logging as _logging
import warnings as _warnings

import gymnasium as _gym

__version__ = "0.1.0"

#: Environment ids this package registers, with their entry points.
ENV_IDS = {"SweRepair-v0": "swerepair.envs.env:SweRepairEnv"}

for _env_id, _entry_point in ENV_IDS.items():
    if _env_id not in _gym.registry:
        _gym.register(id=_env_id, entry_point=_entry_point)

#: Third-party warnings that tell a swerepair user nothing they can act on, each matched by its
#: category, its message and (where the library warns from its own code) its module: (category,
#: message regex, module regex). Anything else still shows.
QUIET_WARNINGS = (
    # transformers 5 renamed gradient checkpointing to activation checkpointing; peft, trl and
    # transformers' own Trainer still call the old names (swerepair calls the new ones)
    (
        FutureWarning,
        r"`(is_)?gradient_checkpointing(_enable|_disable|_kwargs)?` is deprecated and will be removed in v6",
        r"transformers\.",
    ),
    # swerepair's TRL backend is built on rollout_func, and pins the TRL version it was tested with
    (UserWarning, r"You are using 'rollout_func', which is an experimental feature", r""),
)

#: Log records of third-party loggers that say nothing to a user: (logger, message prefix).
QUIET_LOG_RECORDS = (
    # DeepSpeed, on every import on a machine without a GPU (swerepair imports it for ZeRO)
    ("DeepSpeed", "Setting accelerator to CPU."),
)


class _DropRecords(_logging.Filter):
    def __init__(self, prefixes: tuple[str, ...]) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: _logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefixes)


def quiet_third_party_warnings() -> None:
    """Hide the third-party warnings of `QUIET_WARNINGS` and the log records of
    `QUIET_LOG_RECORDS` (called when the package is imported; calling it again adds nothing).

    Each filter names one message; there is no blanket ``ignore``, so a new warning from any
    library, or any of these from a user's own code where no module is named, still shows.
    """
    for category, message, module in QUIET_WARNINGS:
        _warnings.filterwarnings("ignore", message=message, category=category, module=module)
    for name, prefix in QUIET_LOG_RECORDS:
        logger = _logging.getLogger(name)
        # (by name: the package may be imported twice under two names, as by some test runners)
        if not any(type(f).__name__ == "_DropRecords" and prefix in f.prefixes for f in logger.filters):
            logger.addFilter(_DropRecords((prefix,)))


quiet_third_party_warnings()

__all__ = ["ENV_IDS", "QUIET_LOG_RECORDS", "QUIET_WARNINGS", "__version__", "quiet_third_party_warnings"]
