"""Lint of hyperparams/sppo.yml and hyperparams/sa2c.yml: every entry builds its env and model through RL-Zoo."""

from __future__ import annotations

import argparse
from pathlib import Path

import gymnasium as gym
import pytest
import yaml
from gymnasium import spaces

from sb3_symmetric import SymA2C, SymPPO, zoo
from sb3_symmetric.common.minatar import register_minatar_envs

ALGO_CLASSES = {"sppo": SymPPO, "sa2c": SymA2C}
# the envs issue 4 asks for; every one must have its own entry (Atari: the `atari` entry)
REQUIRED_ENVS = [
    "CartPole-v1",
    "Acrobot-v1",
    "MountainCar-v0",
    "LunarLander-v3",
    "LunarLanderContinuous-v3",
    "BipedalWalker-v3",
    "Pendulum-v1",
    "HalfCheetah-v5",
    "Hopper-v5",
    "Walker2d-v5",
    "Ant-v5",
    "Swimmer-v5",
    "InvertedDoublePendulum-v5",
    "Humanoid-v5",
    "HumanoidStandup-v5",
]
# the MinAtar games (issue 10), one entry each
MINATAR_ENVS = [f"MinAtar/{game}-v1" for game in ("Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders")]
# one id of each Atari family the `atari` entry serves
ATARI_IDS = ["PongNoFrameskip-v4", "ALE/Pong-v5"]
# The paper's env sets (docs/paper.rst, "Continuous actions" and "Hyperparameters"), at today's ids
PAPER_MUJOCO = [
    "Ant-v5",
    "HumanoidStandup-v5",
    "Walker2d-v5",
    "Hopper-v5",
    "HalfCheetah-v5",
    "Swimmer-v5",
    "InvertedDoublePendulum-v5",
    "Humanoid-v5",
]
PAPER_BOX2D = ["BipedalWalker-v3", "LunarLanderContinuous-v3"]
# the paper's example game in both Atari id families
PAPER_ATARI = ["WizardOfWorNoFrameskip-v4", "ALE/WizardOfWor-v5"]
# n_timesteps of the paper's runs (docs/paper.rst, "Hyperparameters"); the rest of the set has 2M
PAPER_BUDGETS = {
    "sppo": {"Walker2d-v5": 5e6, "HumanoidStandup-v5": 1e7, "Humanoid-v5": 1e7},
    "sa2c": {"Humanoid-v5": 1e7},
}
# envs no entry names: they get the `default` entry
UNLISTED_DISCRETE, UNLISTED_BOX = "CartPole-v0", "MountainCarContinuous-v0"
DISCRETIZE = {"sb3_symmetric.DiscretizeAction": {"n_bins": 11}}


def load(algo: str) -> dict:
    with open(zoo.hyperparams_file(algo)) as file:
        return yaml.safe_load(file)


def cases() -> list:
    return [
        pytest.param(algo, env_id, id=f"{algo}-{env_id}")
        for algo in ALGO_CLASSES
        for env_id in [*(key for key in load(algo) if key not in ("atari", "default")), *ATARI_IDS, UNLISTED_DISCRETE]
    ]


@pytest.mark.parametrize("algo", list(ALGO_CLASSES))
def test_entries_cover_the_issue_envs_and_set_the_symmetric_weights(algo, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MuJoCo writes its warnings to ./MUJOCO_LOG.TXT
    hyperparams = load(algo)
    assert sorted(hyperparams) == sorted(["atari", "default", *REQUIRED_ENVS, *MINATAR_ENVS])
    register_minatar_envs()
    assert hyperparams.pop("default") == {"n_timesteps": 1e6, "policy": "MlpPolicy"}
    for env_id, entry in hyperparams.items():
        assert entry["rce_z"] == -1.0, env_id
        assert entry["alpha"] > 0 and entry["beta"] > 0, env_id
        if env_id == "atari":
            assert entry["alpha"] == 0.5 and entry["beta"] == 1.0
            continue
        env = gym.make(env_id)
        env.close()
        if isinstance(env.action_space, spaces.Box):
            assert entry["env_wrapper"] == [DISCRETIZE], env_id
            assert entry["alpha"] == 0.5 and entry["beta"] == 20.0, env_id
        else:
            assert "env_wrapper" not in entry, env_id


def manager(algo: str, env_id: str, folder: Path, hyperparams: dict | None = None):
    """RL-Zoo's ExperimentManager as `rl_zoo3 train --algo <algo> --env <env_id> -f <folder>` builds it, without -conf."""
    from rl_zoo3.exp_manager import ExperimentManager

    zoo.register()
    flags = dict(n_timesteps=0, eval_freq=-1, seed=0, verbose=0, hyperparams=hyperparams)
    return ExperimentManager(argparse.Namespace(), algo, env_id, str(folder), **flags)


@pytest.mark.parametrize(("algo", "env_id"), cases())
def test_entry_builds_env_and_model(algo, env_id, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MuJoCo writes its warnings to ./MUJOCO_LOG.TXT
    experiment = manager(algo, env_id, tmp_path)
    assert experiment.config == str(zoo.hyperparams_file(algo))
    model, _ = experiment.setup_experiment()
    try:
        assert type(model) is ALGO_CLASSES[algo]
        assert isinstance(model.action_space, (spaces.Discrete, spaces.MultiDiscrete))
        assert model.alpha > 0 and model.beta > 0 and model.rce_z == -1.0
        if isinstance(model.action_space, spaces.MultiDiscrete):
            assert set(model.action_space.nvec) == {11}
        if env_id in ATARI_IDS:
            # the YAML's env_kwargs turn ALE v5 ids into their NoFrameskip-v4 twin (AtariWrapper does the skipping)
            assert model.env.envs[0].unwrapped._frameskip == 1
            assert model.observation_space.shape == (4, 84, 84)
    finally:
        model.env.close()


@pytest.mark.parametrize("algo", list(ALGO_CLASSES))
def test_unlisted_box_env_needs_the_wrapper_the_error_names(algo, tmp_path):
    with pytest.raises(ValueError, match=r"needs a discrete action space; got Box\(.*DiscretizeAction"):
        manager(algo, UNLISTED_BOX, tmp_path / "bare").setup_experiment()
    # the fix the `default` entry's comment gives: -params "env_wrapper:'sb3_symmetric.DiscretizeAction'"
    wrapped = manager(algo, UNLISTED_BOX, tmp_path / "wrapped", {"env_wrapper": "sb3_symmetric.DiscretizeAction"})
    model, _ = wrapped.setup_experiment()
    assert list(model.action_space.nvec) == [11]
    model.env.close()


@pytest.mark.parametrize("algo", list(ALGO_CLASSES))
def test_module_config_reads_the_same_entries_as_the_yaml(algo, tmp_path):
    """`-conf sb3_symmetric.hyperparams.<algo>` (RL-Zoo's module form) gives what the default YAML gives."""
    from rl_zoo3.exp_manager import ExperimentManager

    zoo.register()
    flags = dict(n_timesteps=0, eval_freq=-1, seed=0, verbose=0)
    for env_id in ("CartPole-v1", "Pendulum-v1"):
        default = manager(algo, env_id, tmp_path).read_hyperparameters()
        experiment = ExperimentManager(
            argparse.Namespace(), algo, env_id, str(tmp_path), config=f"sb3_symmetric.hyperparams.{algo}", **flags
        )
        assert experiment.config == f"sb3_symmetric.hyperparams.{algo}"
        assert experiment.read_hyperparameters() == default
        assert default[0]["rce_z"] == -1.0


@pytest.mark.parametrize("env_id", PAPER_MUJOCO + PAPER_BOX2D + PAPER_ATARI)
@pytest.mark.parametrize("algo", list(ALGO_CLASSES))
def test_every_paper_env_resolves_to_its_entry_and_builds(algo, env_id, tmp_path, monkeypatch):
    """`rl_zoo3 train --algo <algo> --env <paper env>` reads the env's own entry (never `default`) and builds the model."""
    monkeypatch.chdir(tmp_path)  # MuJoCo writes its warnings to ./MUJOCO_LOG.TXT
    entries = load(algo)
    key = "atari" if env_id in PAPER_ATARI else env_id
    assert key in entries, f"{env_id} has no entry in {algo}.yml and would fall back to `default`"
    experiment = manager(algo, env_id, tmp_path)
    _, saved = experiment.read_hyperparameters()
    assert dict(saved) == entries[key]
    if key != "atari":
        assert entries[key]["n_timesteps"] == PAPER_BUDGETS[algo].get(env_id, 2e6)
    model, _ = experiment.setup_experiment()
    try:
        assert type(model) is ALGO_CLASSES[algo]
        if key == "atari":
            assert model.observation_space.shape == (4, 84, 84)
        else:
            # every continuous task of the paper: 11 bins per action dimension (docs/paper.rst, "Continuous actions")
            assert model.action_space == spaces.MultiDiscrete([11] * gym.make(env_id).action_space.shape[0])
    finally:
        model.env.close()
