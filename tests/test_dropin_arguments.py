"""SymPPO / SymA2C take every argument of PPO / A2C, with the same defaults, and hand each one on unchanged."""

from __future__ import annotations

import copy
import inspect

import numpy as np
import pytest
import torch as th
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import KVWriter, Logger

from sb3_symmetric import RewardNoiseCallback, SymA2C, SymPPO

PAIRS = [(SymPPO, PPO), (SymA2C, A2C)]
PAIR_IDS = ["SymPPO", "SymA2C"]
try:
    from sb3_contrib import MaskablePPO, RecurrentPPO

    from sb3_symmetric import SymMaskablePPO, SymRecurrentPPO

    CONTRIB_PAIRS = [(SymRecurrentPPO, RecurrentPPO), (SymMaskablePPO, MaskablePPO)]
except ImportError:  # without the contrib extra
    CONTRIB_PAIRS = []
ALL_PAIRS = PAIRS + CONTRIB_PAIRS
ALL_IDS = [sym.__name__ for sym, _ in ALL_PAIRS]
# docs/paper.rst, "Hyperparameters": the released Atari script's weights, and Z = -1 of every released script
SYMMETRIC_DEFAULTS = {"alpha": 0.5, "beta": 1.0, "rce_z": -1.0}

# a non-default value for every constructor argument the parents share (policy and env apart)
NON_DEFAULTS = {
    "learning_rate": 1.234e-3,
    "n_steps": 24,
    "gamma": 0.97,
    "gae_lambda": 0.91,
    "ent_coef": 0.013,
    "vf_coef": 0.37,
    "max_grad_norm": 0.77,
    "use_sde": False,
    "sde_sample_freq": 3,
    "rollout_buffer_class": RolloutBuffer,
    "rollout_buffer_kwargs": {},
    "normalize_advantage": False,
    "stats_window_size": 17,
    "policy_kwargs": dict(net_arch=[8]),
    "verbose": 1,
    "seed": 5,
    "device": "cpu",
}
PPO_ONLY = {"batch_size": 12, "n_epochs": 3, "clip_range": 0.17, "clip_range_vf": 0.3, "target_kl": 0.05}
A2C_ONLY = {"rms_prop_eps": 2e-5, "use_rms_prop": False, "normalize_advantage": True}


@pytest.mark.parametrize("sym_algo, parent", ALL_PAIRS, ids=ALL_IDS)
@pytest.mark.parametrize("method", ["__init__", "learn"])
def test_signature_is_the_parents_plus_the_symmetric_coefficients(sym_algo, parent, method):
    ours = dict(inspect.signature(getattr(sym_algo, method)).parameters)
    theirs = dict(inspect.signature(getattr(parent, method)).parameters)
    if method == "__init__":
        assert {name: ours.pop(name).default for name in SYMMETRIC_DEFAULTS} == SYMMETRIC_DEFAULTS
    else:
        # SB3 names the TensorBoard run after the algorithm
        assert ours.pop("tb_log_name").default == sym_algo.__name__
        assert theirs.pop("tb_log_name").default == parent.__name__
    assert list(ours) == list(theirs)
    assert {name: p.default for name, p in ours.items()} == {name: p.default for name, p in theirs.items()}


@pytest.mark.parametrize("sym_algo, parent", ALL_PAIRS, ids=ALL_IDS)
def test_every_argument_reaches_the_model(sym_algo, parent, tmp_path):
    kwargs = {**NON_DEFAULTS, **(A2C_ONLY if parent is A2C else PPO_ONLY), "tensorboard_log": str(tmp_path)}
    buffer_base = RolloutBuffer
    if parent.__name__ == "MaskablePPO":
        from sb3_contrib.common.maskable.buffers import MaskableRolloutBuffer as buffer_base

    class Buffer(buffer_base):
        def __init__(self, *args, tag: str = "", **buffer_kwargs) -> None:
            super().__init__(*args, **buffer_kwargs)
            self.tag = tag

    kwargs.update(rollout_buffer_class=Buffer, rollout_buffer_kwargs=dict(tag="ours"))
    # MaskablePPO has no gSDE arguments, RecurrentPPO no rollout_buffer_class
    accepted = inspect.signature(parent.__init__).parameters
    kwargs = {k: v for k, v in kwargs.items() if k in accepted}
    env = make_vec_env("CartPole-v1", n_envs=2, seed=0)
    policy = "MlpLstmPolicy" if parent.__name__ == "RecurrentPPO" else "MlpPolicy"
    # each its own copy: A2C writes its RMSprop choice into the policy_kwargs dict it is given
    ours = sym_algo(policy, env, alpha=0.3, beta=0.6, rce_z=-2.0, **copy.deepcopy(kwargs))
    reference = parent(policy, env, **copy.deepcopy(kwargs))
    assert (ours.alpha, ours.beta, ours.rce_z) == (0.3, 0.6, -2.0)
    skip = {"policy", "env", "rollout_buffer", "lr_schedule", "clip_range", "clip_range_vf", "action_noise"}
    for name, value in vars(reference).items():
        if name in skip or name.startswith("_last") or isinstance(value, (th.nn.Module, np.random.Generator)):
            continue
        if callable(value):
            assert callable(getattr(ours, name)), name
            continue
        assert getattr(ours, name) == value, name
    if parent is not A2C:
        assert ours.clip_range(0.5) == reference.clip_range(0.5) == 0.17
        assert ours.clip_range_vf(0.5) == reference.clip_range_vf(0.5) == 0.3
    assert ours.lr_schedule(0.5) == reference.lr_schedule(0.5)
    if "rollout_buffer_class" in kwargs:
        assert type(ours.rollout_buffer) is Buffer and ours.rollout_buffer.tag == "ours"
    assert type(ours.policy.optimizer) is type(reference.policy.optimizer)
    assert ours.policy.optimizer.defaults == reference.policy.optimizer.defaults


@pytest.mark.parametrize("sym_algo, parent", ALL_PAIRS, ids=ALL_IDS)
def test_learn_hands_every_argument_to_the_parents_learn(sym_algo, parent, monkeypatch):
    parameters = list(inspect.signature(parent.learn).parameters.values())[2:]  # after self, total_timesteps
    calls = []
    monkeypatch.setattr(parent, "learn", lambda self, **kwargs: calls.append(kwargs) or self)
    model = sym_algo("MlpLstmPolicy" if parent.__name__ == "RecurrentPPO" else "MlpPolicy", "CartPole-v1", n_steps=16)
    assert model.learn(100) is model
    defaults = {p.name: p.default for p in parameters}
    assert calls[-1] == {"total_timesteps": 100, **defaults, "tb_log_name": sym_algo.__name__}
    # a value other than the default for each argument
    chosen = {p.name: {bool: not p.default, int: 7, str: "run"}.get(type(p.default), object()) for p in parameters}
    model.learn(100, **chosen)
    assert calls[-1] == {"total_timesteps": 100, **chosen}


@pytest.mark.parametrize("sym_algo, parent", ALL_PAIRS, ids=ALL_IDS)
def test_defaults_reach_the_model_as_the_parents(sym_algo, parent):
    # the values, not the signature: mutmut's trampoline shows the original signature of a mutated __init__
    policy = "MlpLstmPolicy" if parent.__name__ == "RecurrentPPO" else "MlpPolicy"
    ours, reference = sym_algo(policy, "CartPole-v1"), parent(policy, "CartPole-v1")
    assert (ours.alpha, ours.beta, ours.rce_z) == (SYMMETRIC_DEFAULTS["alpha"], SYMMETRIC_DEFAULTS["beta"], -1.0)
    skip = {"policy", "env", "rollout_buffer", "lr_schedule", "clip_range", "clip_range_vf", "action_noise"}
    for name, value in vars(reference).items():
        if name in skip or name.startswith("_last") or isinstance(value, (th.nn.Module, np.random.Generator)):
            continue
        if not callable(value):
            assert getattr(ours, name) == value, name
    if hasattr(reference, "clip_range"):
        assert ours.clip_range(1.0) == reference.clip_range(1.0) == 0.2
        assert ours.clip_range_vf is reference.clip_range_vf is None


@pytest.mark.parametrize("use_rms_prop", [True, False])
def test_a2c_optimizer_choice_reaches_the_model(use_rms_prop):
    ours = SymA2C("MlpPolicy", "CartPole-v1", use_rms_prop=use_rms_prop, rms_prop_eps=2e-5)
    expected = th.optim.RMSprop if use_rms_prop else th.optim.Adam
    assert type(ours.policy.optimizer) is expected
    assert ours.policy.optimizer.defaults["eps"] == (2e-5 if use_rms_prop else 1e-5)


@pytest.mark.parametrize("sym_algo, parent", ALL_PAIRS, ids=ALL_IDS)
def test_gsde_is_refused_on_discrete_actions_as_by_the_parent(sym_algo, parent):
    if "use_sde" not in inspect.signature(parent.__init__).parameters:
        pytest.skip(f"{parent.__name__} has no gSDE")
    policy = "MlpLstmPolicy" if parent.__name__ == "RecurrentPPO" else "MlpPolicy"
    for algo in (parent, sym_algo):
        with pytest.raises(ValueError, match="gSDE"):
            algo(policy, "CartPole-v1", use_sde=True)


class Dumps(KVWriter):
    def __init__(self) -> None:
        self.written: list[dict] = []

    def write(self, key_values: dict, key_excluded: dict, step: int = 0) -> None:
        self.written.append(dict(key_values))


@pytest.mark.parametrize("sym_algo, parent", PAIRS, ids=PAIR_IDS)
def test_learn_defaults_log_and_name_runs_like_the_parent(sym_algo, parent, tmp_path):
    """Same log_interval default as the parent (as many dumps), and the TensorBoard run is named after the class."""
    counts = []
    for algo in (sym_algo, parent):
        small = dict(n_steps=2, seed=0, **({"batch_size": 2, "n_epochs": 1} if parent is PPO else {}))
        model = algo("MlpPolicy", make_vec_env("CartPole-v1", n_envs=1, seed=0), tensorboard_log=str(tmp_path), **small)
        model.learn(4)
        dumps = Dumps()
        model.set_logger(Logger(None, [dumps]))
        model.learn(2 * 110)
        counts.append(len(dumps.written))
    assert counts[0] == counts[1] > 0
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([f"{sym_algo.__name__}_1", f"{parent.__name__}_1"])


def test_noise_callback_repr_names_its_settings():
    assert repr(RewardNoiseCallback("flip", p=0.1, seed=3)) == "RewardNoiseCallback('flip', p=0.1, seed=3)"
    assert repr(RewardNoiseCallback()) == "RewardNoiseCallback('none', seed=None)"


def test_noise_callback_warns_on_an_off_policy_model():
    from stable_baselines3 import DQN

    model = DQN("MlpPolicy", "CartPole-v1", learning_starts=0, seed=0)
    with pytest.warns(UserWarning, match="made for on-policy algorithms; DQN"):
        model.learn(8, callback=RewardNoiseCallback("gaussian", sigma=0.1))


@pytest.mark.parametrize("sym_algo, parent", PAIRS, ids=PAIR_IDS)
def test_schedules_follow_the_progress_like_the_parent(sym_algo, parent):
    """Learning-rate and clip-range schedules read the remaining progress as the parent's train() does."""
    schedules = dict(learning_rate=lambda progress: 0.03 * progress)
    if parent is PPO:
        schedules.update(clip_range=lambda progress: 0.3 * progress, clip_range_vf=lambda progress: 0.02 * progress)
        schedules.update(batch_size=16, n_epochs=2)
    models = []
    for algo, kwargs in ((sym_algo, dict(alpha=1.0, beta=0.0)), (parent, {})):
        model = algo("MlpPolicy", make_vec_env("CartPole-v1", n_envs=2, seed=0), n_steps=16, seed=0, **schedules, **kwargs)
        model.learn(16 * 2 * 3)
        models.append(model)
    ours, reference = models
    for a, b in zip(ours.policy.parameters(), reference.policy.parameters(), strict=True):
        assert th.equal(a, b)
    for key in ("train/learning_rate", "train/clip_range", "train/clip_range_vf", "train/n_updates"):
        assert ours.logger.name_to_value.get(key) == reference.logger.name_to_value.get(key), key


def test_ppo_early_stop_logs_and_message_are_the_parents(capsys):
    """With alpha=1, beta=0 and target_kl: the same early stops, the same message, the same values logged per train()."""
    knobs = dict(learning_rate=lambda progress: 0.01 * progress, target_kl=0.004, verbose=1, n_steps=64, batch_size=32)
    runs = []
    for algo, kwargs in ((SymPPO, dict(alpha=1.0, beta=0.0)), (PPO, {})):
        model = algo("MlpPolicy", make_vec_env("CartPole-v1", n_envs=2, seed=0), seed=0, n_epochs=3, **knobs, **kwargs)
        dumps = Dumps()
        model.set_logger(Logger(None, [dumps]))
        model.learn(3 * 128)
        stops = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Early stopping at step")]
        train_logs = [{k: v for k, v in d.items() if k.startswith("train/")} for d in dumps.written]
        runs.append((model, stops, [*train_logs, dict(model.logger.name_to_value)]))
    (ours, our_stops, our_logs), (reference, stops, logs) = runs
    assert stops and our_stops == stops
    symmetric_keys = ("train/reverse_loss", "train/adv_sign_flip_fraction")
    assert [{k: v for k, v in d.items() if k not in symmetric_keys} for d in our_logs] == logs
    assert len(logs) == 4 and all(logs[1:]), "three train() calls, each logged"
    for a, b in zip(ours.policy.parameters(), reference.policy.parameters(), strict=True):
        assert th.equal(a, b)
