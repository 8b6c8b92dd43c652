"""Rewards, episode rewards and scaffolds by name: built-ins, entry points of another installed
package, and ``module:attr`` import paths; what a config file stores and what ``--resume`` loads."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import gymnasium as gym
import pytest

import swerepair  # noqa: F401
from swerepair.agents.scaffold import SCAFFOLDS, Scaffold, resolve_scaffold
from swerepair.core import PluginError, load_plugin, plugin_name
from swerepair.rewards import functional_similarity, registered_reward_name, resolve_reward
from swerepair.trainers.config import ConfigError, TrainConfig, load_config
from swerepair.trainers.episodes import resolve_episode_reward
from swerepair.trainers.startup import bind_episode_reward

PLUGIN = """
from swerepair.agents.scaffold import nano_agent
from swerepair.agents.scaffold.base import Scaffold


def touches(patch, task):
    return 1.0 if patch else 0.0


def short_episodes(episode, task):
    return 1.0


def unregistered(patch, task):
    return 0.5


def tiny_scaffold():
    nano = nano_agent()
    return Scaffold("tiny", "Fix the bug in {workdir}. Tools: {tool_names}.", nano.tools, nano.parser)
"""

ENTRY_POINTS = """
[swerepair.rewards]
touches = swerepair_test_plugin:touches

[swerepair.episode_rewards]
short_episodes = swerepair_test_plugin:short_episodes

[swerepair.scaffolds]
tiny = swerepair_test_plugin:tiny_scaffold
"""


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An installed distribution (a dist-info on sys.path) that registers one of each."""
    (tmp_path / "swerepair_test_plugin.py").write_text(textwrap.dedent(PLUGIN))
    info = tmp_path / "swerepair_test_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: swerepair-test-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    importlib.invalidate_caches()
    module = importlib.import_module("swerepair_test_plugin")
    yield module
    sys.modules.pop("swerepair_test_plugin", None)


def test_load_plugin_builtin_entry_point_and_import_path(plugin) -> None:
    assert load_plugin("swerepair.rewards", "touches") is plugin.touches
    assert load_plugin("swerepair.rewards", "swerepair_test_plugin:unregistered") is plugin.unregistered
    assert load_plugin("swerepair.scaffolds", "nano", SCAFFOLDS) is SCAFFOLDS["nano"]
    with pytest.raises(PluginError, match="touches"):  # the message lists what is known
        load_plugin("swerepair.rewards", "nope")
    with pytest.raises(PluginError, match="cannot be imported"):
        load_plugin("swerepair.rewards", "no_such_module_xyz:f")
    assert plugin_name(plugin.touches, "swerepair.rewards") == "touches"
    assert plugin_name(plugin.unregistered, "swerepair.rewards") == "swerepair_test_plugin:unregistered"
    assert plugin_name(lambda p, t: 1.0, "swerepair.rewards") is None


def test_rewards_by_name_in_the_env(plugin) -> None:
    assert resolve_reward("touches") == ("touches", plugin.touches)
    assert resolve_reward("swerepair_test_plugin:unregistered")[1] is plugin.unregistered
    with pytest.raises(ValueError, match=r"entry point of the group swerepair\.rewards"):
        resolve_reward("nope")
    assert registered_reward_name(functional_similarity) == "functional_similarity"
    assert registered_reward_name(plugin.touches) == "touches"
    env = gym.make("SweRepair-v0", reward="touches", max_tool_calls=1)
    try:
        assert (env.unwrapped.reward_name, env.unwrapped.reward_fn) == ("touches", plugin.touches)
        env.reset(options={"task_id": "swerepair__intervals-5"})
        _, reward, _, truncated, info = env.step("Nothing to change.")
        assert truncated and reward == 0.0 and info["reward_components"]["touches"] == 0.0
    finally:
        env.close()


def test_scaffolds_by_name(plugin) -> None:
    assert resolve_scaffold("tiny").name == "tiny"
    assert resolve_scaffold(None).name == "nano-agent"
    scaffold = resolve_scaffold("swerepair_test_plugin:tiny_scaffold")
    assert isinstance(scaffold, Scaffold) and scaffold.name == "tiny"
    env = gym.make("SweRepair-v0", scaffold="tiny")
    try:
        obs, info = env.reset(options={"task_id": "swerepair__intervals-5"})
        assert info["scaffold"] == "tiny" and obs[0]["content"].startswith("Fix the bug in")
    finally:
        env.close()
    with pytest.raises(PluginError):
        resolve_scaffold("no-such-scaffold")


def test_the_config_takes_a_callable_and_stores_its_name(plugin, tmp_path: Path) -> None:
    config = TrainConfig(
        reward=plugin.touches, episode_reward=plugin.short_episodes, scaffold=plugin.tiny_scaffold, output_dir="r"
    )
    assert (config.reward, config.episode_reward, config.scaffold) == ("touches", "short_episodes", "tiny")
    assert TrainConfig(reward=functional_similarity).reward == "functional_similarity"
    assert TrainConfig(reward=plugin.unregistered).reward == "swerepair_test_plugin:unregistered"
    with pytest.raises(ConfigError, match="no name a config file can carry"):
        TrainConfig(reward=lambda patch, task: 1.0)
    with pytest.raises(ConfigError, match=r"swerepair\.episode_rewards"):
        TrainConfig(episode_reward=lambda episode, task: 1.0)
    # the names survive config.yaml, and a resumed run loads the function from the name
    config.to_yaml(tmp_path / "config.yaml")
    saved = load_config(config=tmp_path / "config.yaml", saved_run=True)
    assert (saved.reward, saved.episode_reward, saved.scaffold) == ("touches", "short_episodes", "tiny")
    assert resolve_episode_reward(saved, None)[1] is plugin.short_episodes
    assert bind_episode_reward(saved, None).episode_reward == "short_episodes"  # --resume no longer refuses it
    # a registered function given in code is recorded by its entry point's name
    assert bind_episode_reward(TrainConfig(), plugin.short_episodes).episode_reward == "short_episodes"
    by_path = TrainConfig(episode_reward="swerepair_test_plugin:short_episodes")
    assert resolve_episode_reward(by_path, None)[1] is plugin.short_episodes
    # an unregistered function recorded as module.name still has to be given again
    with pytest.raises(ConfigError, match="cannot carry"):
        bind_episode_reward(TrainConfig(episode_reward="some_module.some_function"), None)
    with pytest.raises(ConfigError, match=r"episode_reward: .*cannot be imported"):
        resolve_episode_reward(TrainConfig(episode_reward="no_such_module_xyz:f"), None)
