"""swerepair: Gymnasium environments for agent-in-the-loop RL on repository-level bug repair.

Importing the package registers ``SweRepair-v0``::

    import gymnasium as gym
    import swerepair  # noqa: F401

    env = gym.make("SweRepair-v0")          # bundled tasks, bubblewrap sandbox where possible
    obs, info = env.reset(seed=0)
"""

from __future__ import annotations

import gymnasium as _gym

__version__ = "0.1.0"

#: Environment ids this package registers, with their entry points.
ENV_IDS = {"SweRepair-v0": "swerepair.envs.env:SweRepairEnv"}

for _env_id, _entry_point in ENV_IDS.items():
    if _env_id not in _gym.registry:
        _gym.register(id=_env_id, entry_point=_entry_point)

__all__ = ["ENV_IDS", "__version__"]
