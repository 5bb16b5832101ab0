"""Lint of hyperparams/sppo.yml and hyperparams/sa2c.yml: every entry builds its env and model through RL-Zoo."""

from __future__ import annotations

import argparse
from pathlib import Path

import gymnasium as gym
import pytest
import yaml
from gymnasium import spaces

pytest.importorskip("rl_zoo3")

from sb3_symmetric import SymA2C, SymPPO, zoo

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
]
# one id of each Atari family the `atari` entry serves
ATARI_IDS = ["PongNoFrameskip-v4", "ALE/Pong-v5"]
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
    assert sorted(hyperparams) == sorted(["atari", "default", *REQUIRED_ENVS])
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
