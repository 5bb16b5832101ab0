"""Reward noise (docs/paper.rst, "Noise settings"): parameters, moments, placement, and that evaluation stays clean."""

from __future__ import annotations

import argparse
import re
import warnings

import numpy as np
import pytest
import yaml
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.callbacks import CallbackList, EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper, VecNormalize

from sb3_symmetric import SymA2C, SymPPO
from sb3_symmetric.noise import RewardNoiseCallback

ALGOS = [
    pytest.param(A2C, id="A2C"),
    pytest.param(PPO, id="PPO"),
    pytest.param(SymPPO, id="SymPPO"),
    pytest.param(SymA2C, id="SymA2C"),
]


class RecordRewards(VecEnvWrapper):
    """Outermost wrapper: keeps a copy of what env.step returns, before any callback sees it."""

    def __init__(self, venv: VecEnv) -> None:
        super().__init__(venv)
        self.rewards: list[np.ndarray] = []
        self.original: list[np.ndarray] = []

    def reset(self):
        return self.venv.reset()

    def step_wait(self):
        obs, rewards, dones, infos = self.venv.step_wait()
        self.rewards.append(rewards.copy())
        if isinstance(self.venv, VecNormalize):
            self.original.append(self.venv.get_original_reward().copy())
        return obs, rewards, dones, infos


def _one_rollout(
    algo, noise: RewardNoiseCallback, normalize: bool = False, n_envs: int = 4, n_steps: int = 250, seed: int = 0
):
    """Collect exactly one rollout of CartPole (reward 1 per step, no truncation this early)."""
    venv = make_vec_env("CartPole-v1", n_envs=n_envs, seed=seed)
    if normalize:
        venv = VecNormalize(venv, norm_obs=False, norm_reward=True, gamma=0.99)
    env = RecordRewards(venv)
    kwargs = {"batch_size": n_steps * n_envs, "n_epochs": 1} if "PPO" in algo.__name__ else {}
    model = algo("MlpPolicy", env, n_steps=n_steps, gamma=0.99, seed=seed, device="cpu", **kwargs)
    model.learn(total_timesteps=n_steps * n_envs, callback=noise)
    buffer = model.rollout_buffer.rewards.copy()
    assert buffer.shape == (n_steps, n_envs)
    return buffer, np.stack(env.rewards), np.stack(env.original) if env.original else None


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"kind": "flip", "p": 1.5}, "p=1.5 must be in [0, 1]"),
        ({"kind": "flip", "p": -0.1}, "must be in [0, 1]"),
        ({"kind": "gaussian", "sigma": -0.05}, "sigma=-0.05 must be >= 0"),
        ({"kind": "uniform", "v": -1}, "v=-1.0 must be >= 0"),
        ({"kind": "gaussian", "sigma": float("nan")}, "must be finite"),
        ({"kind": "normal", "sigma": 0.05}, "Unknown reward noise kind 'normal'"),
        ({"kind": "flip"}, "needs 'p'"),
        ({"kind": "flip", "sigma": 0.1, "p": 0.1}, "takes only 'p'"),
        ({"kind": "none", "p": 0.1}, "takes no parameter"),
    ],
)
def test_bad_parameters_fail_clearly(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        RewardNoiseCallback(**kwargs)


KINDS = "['flip', 'gaussian', 'none', 'uniform']"


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(kind="normal"), ValueError, f"Unknown reward noise kind 'normal'; use one of {KINDS}."),
        (dict(kind=["flip"]), ValueError, f"Unknown reward noise kind ['flip']; use one of {KINDS}."),
        (dict(kind="flip", p="0.1"), TypeError, "Reward noise p must be a real number, e.g. p=0.1; got '0.1'."),
        (dict(kind="gaussian", sigma=True), TypeError, "Reward noise sigma must be a real number, e.g. sigma=0.1; got True."),
        (dict(kind="uniform", v=np.bool_(True)), TypeError, "Reward noise v must be a real number, e.g. v=0.1; got np.True_."),
        (dict(seed="x"), ValueError, "RewardNoiseCallback seed must be None or an integer >= 0; got 'x'."),
        (dict(seed=-1), ValueError, "RewardNoiseCallback seed must be None or an integer >= 0; got -1."),
        (dict(seed=True), ValueError, "RewardNoiseCallback seed must be None or an integer >= 0; got True."),
        (dict(seed=np.bool_(False)), ValueError, "RewardNoiseCallback seed must be None or an integer >= 0; got np.False_."),
        (dict(seed=1.0), ValueError, "RewardNoiseCallback seed must be None or an integer >= 0; got 1.0."),
        (dict(kind="flip", p=0.1, sigma=0.1), ValueError, "Reward noise kind 'flip' takes only 'p'; got ['sigma']."),
        (dict(kind="none", v=1, p=0.1), ValueError, "Reward noise kind 'none' takes no parameter; got ['p', 'v']."),
        (dict(kind="flip"), ValueError, "Reward noise kind 'flip' needs 'p', e.g. RewardNoiseCallback('flip', p=0.1)."),
        (
            dict(kind="gaussian"),
            ValueError,
            "Reward noise kind 'gaussian' needs 'sigma', e.g. RewardNoiseCallback('gaussian', sigma=0.1).",
        ),
        (dict(kind="gaussian", sigma=float("nan")), ValueError, "Reward noise sigma=nan must be finite."),
        (dict(kind="flip", p=float("inf")), ValueError, "Reward noise p=inf must be finite."),
        (dict(kind="flip", p=1.5), ValueError, "Flip probability p=1.5 must be in [0, 1]."),
        (dict(kind="flip", p=-0.1), ValueError, "Flip probability p=-0.1 must be in [0, 1]."),
        (dict(kind="gaussian", sigma=-0.05), ValueError, "Reward noise sigma=-0.05 must be >= 0."),
        (dict(kind="uniform", v=-1), ValueError, "Reward noise v=-1.0 must be >= 0."),
    ],
)
def test_bad_parameters_get_the_whole_message(kwargs, error, message):
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        RewardNoiseCallback(**kwargs)


@pytest.mark.parametrize(
    "kwargs, kind, scale, seed",
    [
        (dict(), "none", 0.0, None),
        (dict(kind="flip", p=0), "flip", 0.0, None),
        (dict(kind="flip", p=1, seed=0), "flip", 1.0, 0),
        (dict(kind="flip", p=np.float32(0.25), seed=np.int64(7)), "flip", 0.25, 7),
        (dict(kind="gaussian", sigma=0), "gaussian", 0.0, None),
        (dict(kind="uniform", v=np.int32(2)), "uniform", 2.0, None),
    ],
)
def test_parameters_on_the_boundaries_are_taken_as_plain_numbers(kwargs, kind, scale, seed):
    noise = RewardNoiseCallback(**kwargs)
    assert (noise.kind, noise.scale, noise.seed, noise.rng, noise.verbose) == (kind, scale, seed, None, 0)
    assert type(noise.scale) is float and (seed is None or type(noise.seed) is int)


def _stream(seed: int, size: int) -> np.ndarray:
    # N(0, 1) draws of the noise stream of `seed`: its own SeedSequence branch, apart from the env and torch streams
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0x5E0153,))).normal(0.0, 1.0, size=size)


def test_noise_stream_of_a_seed_and_of_the_models_seed():
    noise = RewardNoiseCallback("gaussian", sigma=1.0, seed=3)
    rewards = noise.perturb(np.zeros(6))
    np.testing.assert_array_equal(rewards, _stream(3, 6))
    assert not np.allclose(rewards, np.random.default_rng(3).normal(0.0, 1.0, size=6)), "not the plain seed's stream"
    model = PPO("MlpPolicy", "CartPole-v1", n_steps=8, batch_size=8, seed=5)
    for seed, expected in ((None, 5), (3, 3)):
        noise = RewardNoiseCallback("gaussian", sigma=1.0, seed=seed)
        noise.init_callback(model)
        np.testing.assert_array_equal(noise.perturb(np.zeros(4)), _stream(expected, 4))


def test_off_policy_warning_says_why():
    from stable_baselines3 import DQN

    noise = RewardNoiseCallback("flip", p=0.1)
    message = (
        "RewardNoiseCallback is made for on-policy algorithms; DQN may store rewards elsewhere (e.g. the original "
        "reward under VecNormalize), so the noise may not reach training."
    )
    with pytest.warns(UserWarning, match=f"^{re.escape(message)}$"):
        noise.init_callback(DQN("MlpPolicy", "CartPole-v1", learning_starts=0, buffer_size=64))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        RewardNoiseCallback("flip", p=0.1).init_callback(A2C("MlpPolicy", "CartPole-v1", n_steps=4))


def test_integer_rewards_are_refused():
    with pytest.raises(TypeError, match="float rewards"):
        RewardNoiseCallback("gaussian", sigma=0.1, seed=0).perturb(np.array([1, 0, -1]))


def test_integer_rewards_message_says_what_to_do_and_kind_none_takes_them():
    message = (
        "RewardNoiseCallback needs float rewards to edit in place; the VecEnv returned int8. "
        "Make the env return float rewards (DummyVecEnv always does)."
    )
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        RewardNoiseCallback("flip", p=0.5, seed=0).perturb(np.array([1, 0], dtype=np.int8))
    # no noise: any reward array comes back untouched, without drawing from a generator
    noise, rewards = RewardNoiseCallback("none"), np.array([1, 0, -1])
    assert noise.perturb(rewards) is rewards and rewards.tolist() == [1, 0, -1] and noise.rng is None


@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 1.0])
def test_flip_rate_and_values(p):
    clipped = np.random.default_rng(1).choice([-1.0, 0.0, 1.0], size=200_000)
    noisy = RewardNoiseCallback("flip", p=p, seed=0).perturb(clipped.copy())
    flipped = noisy != clipped
    # Atari's clipped rewards map 0 -> 1, 1 -> 0, -1 -> 2 (docs/paper.rst, "Noise settings")
    np.testing.assert_array_equal(noisy[flipped], 1.0 - clipped[flipped])
    assert abs(flipped.mean() - p) <= 4 * np.sqrt(p * (1 - p) / clipped.size) + 1e-12


@pytest.mark.parametrize(
    "kind, param, std", [("gaussian", 0.05, 0.05), ("gaussian", 2.0, 2.0), ("uniform", 0.3, 0.3 / np.sqrt(3))]
)
def test_additive_noise_moments(kind, param, std):
    rewards = np.linspace(-1.0, 1.0, 200_000)
    callback = RewardNoiseCallback(kind, **{RewardNoiseCallback.kinds[kind]: param}, seed=0)
    noise = callback.perturb(rewards.copy()) - rewards
    assert abs(noise.mean()) < 4 * std / np.sqrt(noise.size)
    assert noise.std() == pytest.approx(std, rel=0.01)
    if kind == "uniform":
        assert np.abs(noise).max() <= param
        assert np.abs(noise).max() > 0.99 * param
    else:
        # Gaussian tails: about 4.6% of samples beyond two sigma
        assert np.mean(np.abs(noise) > 2 * std) == pytest.approx(0.0455, abs=0.003)


def test_same_seed_same_noise_and_model_seed_is_used():
    a = RewardNoiseCallback("gaussian", sigma=1.0, seed=3).perturb(np.zeros(100))
    b = RewardNoiseCallback("gaussian", sigma=1.0, seed=3).perturb(np.zeros(100))
    c = RewardNoiseCallback("gaussian", sigma=1.0, seed=4).perturb(np.zeros(100))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    runs = [_one_rollout(A2C, RewardNoiseCallback("gaussian", sigma=1.0), n_steps=20, seed=seed)[0] for seed in (7, 7, 8)]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.allclose(runs[0], runs[2])


@pytest.mark.parametrize("algo", ALGOS)
def test_noise_reaches_the_rollout_buffer(algo):
    buffer, returned, _ = _one_rollout(algo, RewardNoiseCallback("gaussian", sigma=0.5, seed=0))
    noise = buffer - returned
    assert abs(noise.mean()) < 4 * 0.5 / np.sqrt(noise.size)
    assert noise.std() == pytest.approx(0.5, rel=0.1)


def test_flip_in_the_buffer():
    buffer, returned, _ = _one_rollout(A2C, RewardNoiseCallback("flip", p=0.2, seed=0))
    assert np.all(returned == 1.0)
    assert set(np.unique(buffer)) == {0.0, 1.0}
    assert abs((buffer == 0.0).mean() - 0.2) < 4 * np.sqrt(0.2 * 0.8 / buffer.size)


def test_uniform_in_the_buffer():
    buffer, returned, _ = _one_rollout(A2C, RewardNoiseCallback("uniform", v=0.5, seed=0))
    noise = buffer - returned
    assert np.abs(noise).max() <= 0.5
    assert noise.std() == pytest.approx(0.5 / np.sqrt(3), rel=0.1)


def test_noise_is_added_after_vecnormalize():
    sigma = 0.05
    buffer, normalized, original = _one_rollout(A2C, RewardNoiseCallback("gaussian", sigma=sigma, seed=0), normalize=True)
    # Precondition: normalization really rescales, so the two placements are distinguishable.
    assert np.abs(normalized - original).mean() > 0.1
    noise = buffer - normalized
    assert abs(noise.mean()) < 4 * sigma / np.sqrt(noise.size)
    assert noise.std() == pytest.approx(sigma, rel=0.1)


NOISES = {
    "flip": lambda: RewardNoiseCallback("flip", p=0.5, seed=0),
    "gaussian": lambda: RewardNoiseCallback("gaussian", sigma=0.5, seed=0),
    "uniform": lambda: RewardNoiseCallback("uniform", v=0.5, seed=0),
}


@pytest.mark.parametrize("kind", list(NOISES))
@pytest.mark.parametrize("algo", [A2C, SymA2C], ids=["A2C", "SymA2C"])
def test_monitor_and_evaluation_see_true_returns(tmp_path, algo, kind):
    # CartPole pays exactly 1 per step, so a true return equals the episode length.
    env = make_vec_env("CartPole-v1", n_envs=2, seed=0)
    eval_env = make_vec_env("CartPole-v1", n_envs=1, seed=1)
    evaluation = EvalCallback(eval_env, eval_freq=256, n_eval_episodes=3, log_path=str(tmp_path), verbose=0)
    model = algo("MlpPolicy", env, n_steps=64, seed=0, device="cpu")
    model.learn(total_timesteps=1024, callback=CallbackList([NOISES[kind](), evaluation]))
    # precondition: training did see noisy rewards
    assert np.abs(model.rollout_buffer.rewards - 1.0).mean() > 0.2
    episodes = list(model.ep_info_buffer)
    assert episodes
    assert all(info["r"] == info["l"] for info in episodes)
    logged = np.load(tmp_path / "evaluations.npz")
    assert logged["results"].size > 0
    np.testing.assert_array_equal(logged["results"], logged["ep_lengths"])


@pytest.mark.parametrize("kind", list(NOISES))
@pytest.mark.parametrize("seed", [None, 5])
def test_noise_stream_continues_across_learn_calls(kind, seed):
    """A second learn() with the same callback draws the next noise of the stream: it neither replays nor restarts."""
    n_envs, n_steps = 3, 20
    env = RecordRewards(make_vec_env("CartPole-v1", n_envs=n_envs, seed=0))
    model = A2C("MlpPolicy", env, n_steps=n_steps, seed=11, device="cpu")
    noise = NOISES[kind]()
    noise.seed = seed
    added = []
    for call in range(3):
        model.learn(n_steps * n_envs, callback=noise, reset_num_timesteps=call == 0)
        returned = np.stack(env.rewards[-n_steps:])
        added.append(model.rollout_buffer.rewards - returned)
    # the same stream drawn in one go, step by step as collect_rollouts does: seed None means the model's seed
    reference = RewardNoiseCallback(kind, **{RewardNoiseCallback.kinds[kind]: 0.5}, seed=11 if seed is None else seed)
    stream = np.stack([reference.perturb(np.ones(n_envs)) - 1.0 for _ in range(3 * n_steps)])
    np.testing.assert_allclose(np.concatenate(added), stream, atol=1e-6)
    assert not np.allclose(added[0], added[1])


def _zoo_manager(tmp_path, **kwargs):
    from rl_zoo3.exp_manager import ExperimentManager

    return ExperimentManager(
        argparse.Namespace(),
        "ppo",
        "CartPole-v1",
        str(tmp_path / "logs"),
        eval_freq=-1,
        log_interval=-1,
        seed=0,
        verbose=0,
        device="cpu",
        **kwargs,
    )


def _zoo_rollout(manager):
    model, _ = manager.setup_experiment()
    noise = [callback for callback in manager.callbacks if isinstance(callback, RewardNoiseCallback)]
    assert len(noise) == 1
    manager.learn(model)
    return noise[0], model.rollout_buffer.rewards


def test_rl_zoo_yaml_callback_entry(tmp_path):
    config = tmp_path / "noisy.yml"
    entry = {"n_envs": 2, "n_timesteps": 256, "policy": "MlpPolicy", "n_steps": 128, "batch_size": 256, "n_epochs": 1}
    entry["callback"] = [{"sb3_symmetric.noise.RewardNoiseCallback": {"kind": "flip", "p": 0.5}}]
    config.write_text(yaml.safe_dump({"CartPole-v1": entry}))
    noise, rewards = _zoo_rollout(_zoo_manager(tmp_path, config=str(config)))
    assert (noise.kind, noise.scale) == ("flip", 0.5)
    assert abs((rewards == 0.0).mean() - 0.5) < 4 * np.sqrt(0.25 / rewards.size)


def test_rl_zoo_command_line_override(tmp_path):
    from rl_zoo3.utils import StoreDict

    parser = argparse.ArgumentParser()
    parser.add_argument("-params", nargs="+", action=StoreDict)
    # The exact string the README gives for `rl_zoo3 train ... -params`
    cli = "callback:[{'sb3_symmetric.noise.RewardNoiseCallback':dict(kind='gaussian',sigma=0.5)}]"
    override = parser.parse_args(["-params", cli, "n_timesteps:512"]).params
    noise, rewards = _zoo_rollout(_zoo_manager(tmp_path, hyperparams=override))
    assert (noise.kind, noise.scale) == ("gaussian", 0.5)
    # ppo.yml's CartPole entry has no VecNormalize: the true reward is 1 everywhere
    assert (rewards - 1.0).std() == pytest.approx(0.5, rel=0.15)
