"""SymPPO / SymA2C as drop-ins for PPO / A2C: exactness, SB3 habits, errors, save/load."""

from collections.abc import Callable

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import (
    FakeImageEnv,
    IdentityEnv,
    IdentityEnvMultiBinary,
    IdentityEnvMultiDiscrete,
    SimpleMultiObsEnv,
)
from stable_baselines3.common.vec_env import VecEnv

from sb3_symmetric import DiscretizeAction, SymA2C, SymPPO, ppo_equivalent
from sb3_symmetric.common.checks import check_action_space

PAIRS = [(SymPPO, PPO), (SymA2C, A2C)]
PAIR_IDS = ["SymPPO", "SymA2C"]

SPACES: dict[str, Callable[[], gym.Env]] = {
    "Discrete": lambda: IdentityEnv(4),
    "MultiDiscrete": lambda: IdentityEnvMultiDiscrete(3),
    "MultiBinary": lambda: IdentityEnvMultiBinary(4),
}


def _small_kwargs(algo: type) -> dict:
    if issubclass(algo, PPO):
        return dict(n_steps=64, batch_size=32, n_epochs=3)
    return dict(n_steps=8)


def _vec_env(name: str, seed: int = 0, n_envs: int = 2) -> VecEnv:
    if name == "CartPole":
        return make_vec_env("CartPole-v1", n_envs=n_envs, seed=seed)
    if name == "DiscretizedPendulum":
        return make_vec_env("Pendulum-v1", n_envs=n_envs, seed=seed, wrapper_class=DiscretizeAction)
    return make_vec_env(SPACES[name], n_envs=n_envs, seed=seed)


def _params(model) -> list[th.Tensor]:
    return [p.detach().clone() for p in model.policy.parameters()]


def _train(algo: type, env_name: str, steps: int, seed: int = 0, **kwargs):
    model = algo("MlpPolicy", _vec_env(env_name, seed), seed=seed, **{**_small_kwargs(algo), **kwargs})
    model.learn(steps)
    return model


@pytest.mark.parametrize("sym_algo, parent", PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("env_name", ["CartPole", "MultiDiscrete", "MultiBinary", "DiscretizedPendulum"])
def test_alpha_one_beta_zero_is_the_parent_bit_for_bit(sym_algo, parent, env_name):
    steps = 4 * _small_kwargs(parent)["n_steps"] * 2
    ours = _train(sym_algo, env_name, steps, alpha=1.0, beta=0.0)
    reference = _train(parent, env_name, steps)
    assert all(th.equal(a, b) for a, b in zip(_params(ours), _params(reference), strict=True))
    # ...and the comparison does see the symmetric loss when it is on
    symmetric = _train(sym_algo, env_name, steps)
    assert not all(th.equal(a, b) for a, b in zip(_params(symmetric), _params(reference), strict=True))


def test_parent_features_keep_working_bit_for_bit():
    """Schedules, clip_range_vf, target_kl early stop, custom optimizer, policy_kwargs, callbacks."""
    kwargs = dict(
        learning_rate=lambda progress: 3e-3 * progress,
        clip_range=lambda progress: 0.3 * progress,
        clip_range_vf=0.2,
        target_kl=0.0005,
        n_epochs=10,
        policy_kwargs=dict(net_arch=[16], optimizer_class=th.optim.AdamW, optimizer_kwargs=dict(weight_decay=0.05)),
    )
    ours = _train(SymPPO, "CartPole", 512, alpha=1.0, beta=0.0, **kwargs)
    reference = _train(PPO, "CartPole", 512, **kwargs)
    assert all(th.equal(a, b) for a, b in zip(_params(ours), _params(reference), strict=True))
    assert isinstance(ours.policy.optimizer, th.optim.AdamW)
    # target_kl stopped some epochs early
    assert ours._n_updates < 4 * 10


def test_sppo_equals_its_gradient_twin_after_one_step():
    """SymPPO(alpha, beta, Z) has the gradient of PPO with policy loss weight alpha + beta*|Z| (docs/paper.rst)."""
    common = dict(n_steps=64, batch_size=128, n_epochs=1, max_grad_norm=1e9, learning_rate=1e-3)
    sym = _train(SymPPO, "CartPole", 128, alpha=0.5, beta=2.0, rce_z=-1.5, **common)
    twin = _train(SymPPO, "CartPole", 128, alpha=0.5 + 2.0 * 1.5, beta=0.0, **common)
    plain = _train(PPO, "CartPole", 128, **common)
    assert all(th.allclose(a, b, atol=1e-6) for a, b in zip(_params(sym), _params(twin), strict=True))
    assert not all(th.allclose(a, b, atol=1e-6) for a, b in zip(_params(sym), _params(plain), strict=True))


@pytest.mark.filterwarnings("ignore:You have specified a mini-batch size")
@pytest.mark.parametrize("batch_size", [32, 24])  # 24: a truncated last minibatch as well
@pytest.mark.parametrize(
    "env_name, alpha, beta, rce_z",
    [("CartPole", 0.5, 1.0, -1.0), ("DiscretizedPendulum", 0.5, 20.0, -1.0), ("MultiBinary", 0.25, 2.0, -1.5)],
)
def test_sppo_and_its_weighted_twin_train_bit_for_bit(env_name, alpha, beta, rce_z, batch_size):
    """
    SymPPO(alpha, beta, Z) and SymPPO(alpha + beta*|Z|, 0) (the benchmark's "twin") make the same rounding too.

    Both multiply the same per-sample ``A * m / N`` by the one weight ``w``, so the twin is no noise floor: the
    benchmarks compare SPPO with the stock-PPO equivalent instead, whose arithmetic differs.
    """
    steps = 4 * 64 * 2
    sym = _train(SymPPO, env_name, steps, alpha=alpha, beta=beta, rce_z=rce_z, batch_size=batch_size)
    twin = _train(SymPPO, env_name, steps, alpha=alpha - beta * rce_z, beta=0.0, batch_size=batch_size)
    assert all(th.equal(a, b) for a, b in zip(_params(sym), _params(twin), strict=True))
    equivalent = _train(PPO, env_name, steps, **ppo_equivalent(alpha, beta, rce_z), batch_size=batch_size)
    assert not all(th.equal(a, b) for a, b in zip(_params(sym), _params(equivalent), strict=True))
    assert all(th.allclose(a, b, atol=1e-5) for a, b in zip(_params(sym), _params(equivalent), strict=True))


@pytest.mark.parametrize("sym_algo", [SymPPO, SymA2C])
@pytest.mark.parametrize("space", list(SPACES))
def test_learns_on_every_discrete_space(sym_algo, space):
    # Identity envs pay 1 when the action equals the observation: a random policy scores 25, 11 and 6 of 100
    env = _vec_env(space, n_envs=4)
    # SymA2C keeps A2C's default learning rate: at 3e-3 it collapses on MultiBinary(4) where A2C does not
    kwargs = dict(learning_rate=3e-3) if sym_algo is SymPPO else dict(n_steps=8)
    model = sym_algo("MlpPolicy", env, seed=0, **{**_small_kwargs(sym_algo), **kwargs})
    model.learn(6000 if sym_algo is SymPPO else 50000)
    eval_env = SPACES[space]()
    eval_env.action_space.seed(1)  # identity envs draw their observations from the action space
    obs, _ = eval_env.reset(seed=1)
    total = 0.0
    for _ in range(100):
        action, _ = model.predict(obs, deterministic=True)
        obs, reward, *_ = eval_env.step(action)
        total += float(reward)
    print(f"{sym_algo.__name__} on {space}: {total} of 100")
    assert total >= 80


def test_logs_reverse_loss_and_sign_flip_fraction():
    # One minibatch over the whole buffer: the fraction can be recomputed from the buffer
    model = _train(SymPPO, "CartPole", 256, n_steps=128, batch_size=256, n_epochs=1)
    logged = model.logger.name_to_value
    advantages = model.rollout_buffer.advantages.flatten()
    normalized = (advantages - advantages.mean()) / (advantages.std(ddof=1) + 1e-8)
    expected = np.mean(advantages * normalized < 0)
    assert logged["train/adv_sign_flip_fraction"] == pytest.approx(expected, abs=1e-6)
    assert 0 < expected < 1
    assert np.isfinite(logged["train/reverse_loss"]) and logged["train/reverse_loss"] != 0
    for key in ("train/policy_gradient_loss", "train/value_loss", "train/clip_fraction", "train/approx_kl"):
        assert key in logged

    a2c = _train(SymA2C, "CartPole", 64)
    assert np.isfinite(a2c.logger.name_to_value["train/reverse_loss"])
    assert "train/policy_loss" in a2c.logger.name_to_value


@pytest.mark.parametrize("sym_algo, parent", PAIRS, ids=PAIR_IDS)
def test_no_host_sync_added_per_minibatch(sym_algo, parent, monkeypatch):
    """train() reads the symmetric statistics once per call, whatever the number of minibatches."""
    counts = {}
    originals = {name: getattr(th.Tensor, name) for name in ("item", "tolist")}

    def counting(name):
        def read(self):
            counts["n"] += 1
            return originals[name](self)

        return read

    def syncs(algo, **kwargs) -> int:
        model = algo("MlpPolicy", _vec_env("CartPole"), seed=0, **{**_small_kwargs(algo), **kwargs})
        model.learn(_small_kwargs(algo)["n_steps"] * 2)  # fills one buffer, untimed
        counts["n"] = 0
        for name in originals:
            monkeypatch.setattr(th.Tensor, name, counting(name))
        model.train()
        for name, original in originals.items():
            monkeypatch.setattr(th.Tensor, name, original)
        return counts["n"]

    extra = {}
    for n_epochs in (1, 4):
        kwargs = dict(n_epochs=n_epochs) if parent is PPO else {}
        extra[n_epochs] = syncs(sym_algo, **kwargs) - syncs(parent, **kwargs)
    assert extra[1] == extra[4] <= 1


@pytest.mark.parametrize("sym_algo", [SymPPO, SymA2C])
def test_box_action_space_is_refused_with_advice(sym_algo):
    with pytest.raises(ValueError, match=r"DiscretizeAction\(env, n_bins=11\)") as refused:
        sym_algo("MlpPolicy", "Pendulum-v1")
    # the message names the class the user built
    assert str(refused.value).startswith(f"{sym_algo.__name__} needs a discrete action space; got Box(")
    assert "). Wrap the env: DiscretizeAction(env, n_bins=11) " in str(refused.value)
    assert " (from sb3_symmetric; for a VecEnv: make_vec_env(..., wrapper_class=DiscretizeAction)), " in str(refused.value)
    assert str(refused.value).endswith(
        "), or in an RL-Zoo YAML: env_wrapper: [{sb3_symmetric.DiscretizeAction: {n_bins: 11}}]."
    )


def test_other_non_discrete_action_spaces_are_refused_naming_the_supported_ones():
    tuple_space = spaces.Tuple((spaces.Discrete(2), spaces.Discrete(3)))
    with pytest.raises(ValueError) as refused:
        check_action_space("SymA2C", tuple_space)
    assert str(refused.value) == (f"SymA2C supports Discrete, MultiDiscrete and MultiBinary action spaces; got {tuple_space}.")


@pytest.mark.parametrize("sym_algo", [SymPPO, SymA2C])
@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(alpha=-1.0), "alpha"),
        (dict(beta=-0.5), "beta"),
        (dict(alpha=0.0, beta=0.0), "both 0"),
        (dict(rce_z=0.0), "rce_z"),
        (dict(rce_z=1.0), "rce_z"),
        (dict(rce_z=float("nan")), "rce_z"),
    ],
)
def test_bad_coefficients_fail_at_construction(sym_algo, kwargs, match):
    with pytest.raises(ValueError, match=match):
        sym_algo("MlpPolicy", "CartPole-v1", **kwargs)


def test_discretize_action_maps_bins_evenly_from_low_to_high():
    env = DiscretizeAction(gym.make("Pendulum-v1"), n_bins=5)
    assert env.action_space == spaces.MultiDiscrete([5])
    assert [float(env.action(np.array([k]))[0]) for k in range(5)] == [-2.0, -1.0, 0.0, 1.0, 2.0]

    box = spaces.Box(low=np.array([[0.0, -1.0], [-3.0, 10.0]]), high=np.array([[1.0, 1.0], [3.0, 20.0]]), dtype=np.float32)
    wrapped = DiscretizeAction(IdentityEnv(space=box), n_bins=11)
    assert wrapped.action_space == spaces.MultiDiscrete([11] * 4)
    action = wrapped.action(np.array([0, 10, 5, 1]))
    assert action.shape == (2, 2) and action.dtype == np.float32
    np.testing.assert_allclose(action, [[0.0, 1.0], [0.0, 11.0]], atol=1e-6)
    # bin indices held in a float array (e.g. a rounded policy output) pick the same bins
    np.testing.assert_array_equal(wrapped.action(np.array([0.0, 10.0, 5.0, 1.0])), action)


def test_discretize_action_defaults_to_the_papers_11_bins_and_takes_2():
    assert DiscretizeAction(gym.make("Pendulum-v1")).action_space == spaces.MultiDiscrete([11])
    # the smallest: both ends of the range
    env = DiscretizeAction(gym.make("Pendulum-v1"), n_bins=2)
    assert [float(env.action(np.array([k]))[0]) for k in range(2)] == [-2.0, 2.0]


# the end of DiscretizeAction's message for an unbounded Box: what to do
UNBOUNDED_HINT = (
    r"\. Rescale or clip the actions to a finite range first "
    r"\(e\.g\. gymnasium\.wrappers\.RescaleAction / ClipAction\)\.$"
)


@pytest.mark.parametrize(
    "space, n_bins, match",
    [
        (spaces.Box(low=-np.inf, high=np.inf, shape=(2,)), 11, "bounded"),
        # one unbounded side is enough to refuse, and the message says what to do
        (spaces.Box(-1.0, np.array([1.0, np.inf], np.float32)), 11, UNBOUNDED_HINT),
        (spaces.Box(np.array([-np.inf, -1.0], np.float32), 1.0), 11, r"bounded Box \(finite low and high\)"),
        (spaces.Box(low=-1, high=1, shape=(2,)), 1, "n_bins"),
        (spaces.Box(low=-1, high=1, shape=(2,)), 2.5, "n_bins"),
        (spaces.Discrete(3), 11, "Box"),
    ],
)
def test_discretize_action_refuses_bad_input(space, n_bins, match):
    with pytest.raises(ValueError, match=match):
        DiscretizeAction(IdentityEnv(space=space), n_bins=n_bins)


@pytest.mark.parametrize("sym_algo", [SymPPO, SymA2C])
def test_save_load_round_trip_and_continue(sym_algo, tmp_path):
    model = _train(sym_algo, "MultiDiscrete", 128, alpha=0.7, beta=3.0, rce_z=-2.5)
    model.save(tmp_path / "model.zip")

    loaded = sym_algo.load(tmp_path / "model.zip")  # env=None, as SB3 does
    assert (loaded.alpha, loaded.beta, loaded.rce_z) == (0.7, 3.0, -2.5)
    assert all(th.equal(a, b) for a, b in zip(_params(model), _params(loaded), strict=True))
    obs = _vec_env("MultiDiscrete", seed=3).reset()
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])

    loaded = sym_algo.load(tmp_path / "model.zip", env=_vec_env("MultiDiscrete", seed=5))
    before = _params(loaded)
    loaded.learn(128, reset_num_timesteps=False)
    assert loaded.num_timesteps > model.num_timesteps
    assert not all(th.equal(a, b) for a, b in zip(before, _params(loaded), strict=True))


def test_load_refuses_a_continuous_env(tmp_path):
    model = _train(SymPPO, "DiscretizedPendulum", 128)
    model.save(tmp_path / "model.zip")
    with pytest.raises(ValueError, match=r"spaces do not match|DiscretizeAction"):
        SymPPO.load(tmp_path / "model.zip", env=make_vec_env("Pendulum-v1", n_envs=1))


class _CountingCallback(BaseCallback):
    def __init__(self) -> None:
        super().__init__()
        self.steps = 0
        self.rollouts = 0

    def _on_step(self) -> bool:
        self.steps += 1
        return True

    def _on_rollout_end(self) -> None:
        self.rollouts += 1


@pytest.mark.parametrize("sym_algo", [SymPPO, SymA2C])
def test_image_env_cnn_policy_callbacks_and_progress_bar(sym_algo):
    env = make_vec_env(lambda: FakeImageEnv(screen_height=40, screen_width=40, n_channels=1, discrete=True), n_envs=2, seed=0)
    kwargs = dict(n_steps=16, batch_size=16, n_epochs=1) if sym_algo is SymPPO else dict(n_steps=8)
    model = sym_algo("CnnPolicy", env, seed=0, **kwargs)
    callback = _CountingCallback()
    model.learn(64, callback=callback, progress_bar=True)
    assert callback.steps == 64 // 2
    assert callback.rollouts == 64 // (2 * kwargs["n_steps"])
    assert np.isfinite(model.logger.name_to_value["train/reverse_loss"])


@pytest.mark.parametrize("sym_algo", [SymPPO, SymA2C])
def test_dict_observations_multi_input_policy(sym_algo):
    env = make_vec_env(lambda: SimpleMultiObsEnv(random_start=True), n_envs=2, seed=0)
    model = sym_algo("MultiInputPolicy", env, seed=0, **_small_kwargs(sym_algo))
    before = _params(model)
    model.learn(128)
    assert not all(th.equal(a, b) for a, b in zip(before, _params(model), strict=True))


@pytest.mark.gpu
@pytest.mark.parametrize("sym_algo", [SymPPO, SymA2C])
def test_trains_on_cuda(sym_algo):
    model = _train(sym_algo, "MultiDiscrete", 256, device="cuda")
    assert all(p.is_cuda for p in model.policy.parameters())
    assert np.isfinite(model.logger.name_to_value["train/reverse_loss"])
    cpu_model = _train(sym_algo, "MultiDiscrete", 256, device="cpu")
    # Same seed, same data stream: the two devices agree up to floating-point rounding
    for a, b in zip(_params(model), _params(cpu_model), strict=True):
        assert th.allclose(a.cpu(), b, atol=1e-3)
