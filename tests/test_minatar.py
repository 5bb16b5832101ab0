"""MinAtar: the network (:class:`MinAtarCNN`, :class:`MinAtarPolicy`), its env ids, and the YAML entries through rl_zoo3."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch as th
import yaml
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.sb2_compat.rmsprop_tf_like import RMSpropTFLike
from torch.nn import functional as F

from sb3_symmetric import SymA2C, SymPPO
from sb3_symmetric.common.minatar import MINATAR_GAMES, MinAtarCNN, MinAtarPolicy, register_minatar_envs

pytest.importorskip("minatar")

REPO = Path(__file__).resolve().parents[1]
ALGOS = [PPO, SymPPO, A2C, SymA2C]
# observation channels and minimal action set of each game (minatar 1.0.15)
CHANNELS = {"Asterix": 4, "Breakout": 4, "Freeway": 7, "Seaquest": 10, "SpaceInvaders": 6}
MINIMAL_ACTIONS = {"Asterix": 5, "Breakout": 3, "Freeway": 3, "Seaquest": 6, "SpaceInvaders": 4}


def _small(algo: type) -> dict:
    return dict(n_steps=32, batch_size=32, n_epochs=1) if issubclass(algo, PPO) else dict(n_steps=5)


def test_register_minatar_envs_gives_every_game_both_action_sets():
    register_minatar_envs()
    assert register_minatar_envs() == [], "a second call must leave the registry as it is"
    assert len(MINATAR_GAMES) == len(CHANNELS)
    for name, channels in CHANNELS.items():
        full, minimal = gym.make(f"MinAtar/{name}-v0"), gym.make(f"MinAtar/{name}-v1")
        assert full.observation_space.shape == minimal.observation_space.shape == (10, 10, channels)
        assert full.observation_space.dtype == np.bool_
        assert (full.action_space.n, minimal.action_space.n) == (6, MINIMAL_ACTIONS[name])
        observation, _ = minimal.reset(seed=0)
        assert observation.shape == (10, 10, channels) and observation.any()


def test_register_minatar_envs_registers_minatars_own_specs_into_a_clean_registry(monkeypatch):
    # importing rl_zoo3 (test_zoo.py, at collection) has registered the ids already: take them out for this test
    for env_id in [env_id for env_id in gym.registry if env_id.startswith("MinAtar/")]:
        monkeypatch.delitem(gym.registry, env_id)
    expected = [f"MinAtar/{name}-{version}" for name in CHANNELS for version in ("v0", "v1")]
    assert register_minatar_envs() == expected
    for env_id in expected:
        spec = gym.registry[env_id]
        game = {"SpaceInvaders": "space_invaders"}.get(env_id[8:-3], env_id[8:-3].lower())
        # the specs of minatar.gym.register_envs() (minatar 1.0.15)
        assert spec.entry_point == "minatar.gym:BaseEnv"
        assert spec.kwargs == {"game": game, "use_minimal_action_set": env_id.endswith("-v1")}
    assert gym.make("MinAtar/SpaceInvaders-v1").action_space.n == MINIMAL_ACTIONS["SpaceInvaders"]
    assert register_minatar_envs() == []


def test_register_minatar_envs_without_minatar_registers_nothing(monkeypatch):
    for env_id in [env_id for env_id in gym.registry if env_id.startswith("MinAtar/")]:
        monkeypatch.delitem(gym.registry, env_id)
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "minatar" else find_spec(name, *a))
    assert register_minatar_envs() == []
    assert not [env_id for env_id in gym.registry if env_id.startswith("MinAtar/")]


def test_minatar_cnn_is_the_minatar_network_on_channels_last_input():
    space = gym.spaces.Box(0, 1, (10, 10, 4), dtype=bool)
    cnn = MinAtarCNN(space)
    assert cnn.features_dim == 128
    # 3x3 conv, 16 channels, stride 1 (8x8 output), then 1024 -> 128
    conv, linear = cnn.conv[0], cnn.linear[0]
    assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride) == (4, 16, (3, 3), (1, 1))
    assert (linear.in_features, linear.out_features) == (16 * 8 * 8, 128)
    observations = th.as_tensor(np.random.default_rng(0).random((5, 10, 10, 4)) < 0.3, dtype=th.float32)
    # independent computation: channels-first by numpy, functional conv and linear
    channels_first = th.as_tensor(observations.numpy().transpose(0, 3, 1, 2).copy())
    hidden = F.relu(F.conv2d(channels_first, conv.weight, conv.bias)).reshape(5, -1)
    expected = F.relu(hidden @ linear.weight.T + linear.bias)
    assert th.allclose(cnn(observations), expected, atol=1e-6)


@pytest.mark.parametrize("height, width", [(3, 3), (3, 10), (10, 3), (5, 4)])
def test_minatar_cnn_takes_any_grid_of_at_least_3x3(height, width):
    cnn = MinAtarCNN(gym.spaces.Box(0, 1, (height, width, 2), dtype=bool), features_dim=8, n_filters=5)
    # a 3x3 'valid' convolution leaves (height - 2) x (width - 2) cells
    assert cnn.linear[0].in_features == 5 * (height - 2) * (width - 2)
    assert cnn(th.zeros(4, height, width, 2)).shape == (4, 8)


@pytest.mark.parametrize(
    "space, match",
    [
        (gym.spaces.Box(0, 1, (100,)), r"shape \(height, width, channels\)"),
        (gym.spaces.Discrete(3), r"shape \(height, width, channels\)"),
        (gym.spaces.Box(0, 1, (2, 10, 4)), "at least 3x3 cells; got 2x10"),
        (gym.spaces.Box(0, 1, (10, 2, 4)), "at least 3x3 cells; got 10x2"),
    ],
)
def test_minatar_cnn_refuses_other_spaces(space, match):
    with pytest.raises(ValueError, match=match):
        MinAtarCNN(space)


@pytest.mark.parametrize("algo", ALGOS, ids=lambda a: a.__name__)
def test_policy_trains_saves_and_loads_without_env(algo, tmp_path):
    register_minatar_envs()
    env = make_vec_env("MinAtar/Breakout-v1", n_envs=2, seed=0)
    model = algo(MinAtarPolicy, env, seed=0, device="cpu", **_small(algo))
    policy = model.policy
    assert isinstance(policy.features_extractor, MinAtarCNN) and policy.share_features_extractor
    # heads directly on the 128 features, as MinAtar's network
    assert policy.action_net.in_features == policy.value_net.in_features == 128
    before = policy.features_extractor.conv[0].weight.detach().clone()
    model.learn(2 * model.n_steps * env.num_envs)
    assert not th.equal(before, policy.features_extractor.conv[0].weight), "the shared trunk must be trained"
    model.save(tmp_path / "model")
    loaded = algo.load(tmp_path / "model", device="cpu")
    assert type(loaded.policy) is MinAtarPolicy
    observations = env.reset()
    np.testing.assert_array_equal(
        loaded.predict(observations, deterministic=True)[0], model.predict(observations, deterministic=True)[0]
    )


def test_policy_hands_net_arch_and_every_other_argument_to_actor_critic_policy():
    register_minatar_envs()
    env = gym.make("MinAtar/Breakout-v1")
    policy = MinAtarPolicy(
        env.observation_space,
        env.action_space,
        lambda _: 1e-3,
        net_arch=[32],
        activation_fn=th.nn.Tanh,
        features_extractor_kwargs=dict(n_filters=8),
    )
    assert policy.features_extractor.conv[0].out_channels == 8
    first, activation = policy.mlp_extractor.policy_net
    assert (first.in_features, first.out_features) == (128, 32) and isinstance(activation, th.nn.Tanh)
    assert policy.action_net.in_features == policy.value_net.in_features == 32


def test_value_loss_reaches_the_shared_trunk():
    register_minatar_envs()
    model = PPO(MinAtarPolicy, make_vec_env("MinAtar/Breakout-v1", n_envs=1), device="cpu", n_steps=8, batch_size=8)
    observations = th.as_tensor(np.stack([model.env.observation_space.sample() for _ in range(4)]), dtype=th.float32)
    model.policy.predict_values(observations).sum().backward()
    assert model.policy.features_extractor.conv[0].weight.grad.abs().sum() > 0
    assert model.policy.action_net.weight.grad is None


def _minatar_entries(path: Path) -> dict:
    return {k: v for k, v in yaml.load(path.read_text(), Loader=yaml.UnsafeLoader).items() if k.startswith("MinAtar/")}


@pytest.mark.parametrize(
    "stock, symmetric",
    [("benchmarks/hyperparams/ppo.yml", "hyperparams/sppo.yml"), ("benchmarks/hyperparams/a2c.yml", "hyperparams/sa2c.yml")],
)
def test_baseline_yaml_is_the_symmetric_yaml_without_the_symmetric_coefficients(stock, symmetric):
    baseline, sym = _minatar_entries(REPO / stock), _minatar_entries(REPO / symmetric)
    assert sorted(baseline) == sorted(sym) == sorted(f"MinAtar/{name}-v1" for name in CHANNELS)
    for env_id, entry in sym.items():
        assert (entry.pop("alpha"), entry.pop("beta"), entry.pop("rce_z")) == (0.5, 1.0, -1.0)
        assert entry == baseline[env_id]


# --- the plain rl_zoo3 command, from the wheel (fixtures and helpers of tests/test_zoo.py) ---
zoo = pytest.importorskip("test_zoo", reason="needs rl_zoo3")
wheel, zoo_venv, run, load_yaml = zoo.wheel, zoo.zoo_venv, zoo.run, zoo.load_yaml


@pytest.fixture(scope="module")
def minatar_runs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("minatar-runs")


@pytest.mark.slow
@pytest.mark.parametrize(
    "algo, conf, steps",
    [
        ("sppo", None, 2048),
        ("sa2c", None, 400),
        ("ppo", REPO / "benchmarks" / "hyperparams" / "ppo.yml", 2048),
        ("a2c", REPO / "benchmarks" / "hyperparams" / "a2c.yml", 400),
    ],
)
def test_rl_zoo3_trains_minatar_and_the_model_loads_without_env(zoo_venv, minatar_runs, algo, conf, steps):
    from rl_zoo3 import ALGOS as ZOO_ALGOS

    args = ["train", "--algo", algo, "--env", "MinAtar/Breakout-v1", "-n", str(steps), "--eval-freq", str(steps // 2)]
    args += ["--eval-episodes", "2", "--num-threads", "1", "--seed", "0", "-f", "logs"]
    if conf is not None:
        args += ["-conf", conf]
    result = run([zoo_venv.rl_zoo3, *args], minatar_runs)
    expected = conf if conf is not None else zoo_venv.site_packages / "sb3_symmetric" / "hyperparams" / f"{algo}.yml"
    assert f"Loading hyperparameters from: {expected}" in result.stdout
    run_dir = minatar_runs / "logs" / algo / "MinAtar-Breakout-v1_1"
    config = load_yaml(run_dir / "MinAtar-Breakout-v1" / "config.yml")
    assert dict(config)["policy"] == "sb3_symmetric.common.minatar.MinAtarPolicy"
    assert np.load(run_dir / "evaluations.npz")["timesteps"].size == 2
    model = {**ZOO_ALGOS, "sppo": SymPPO, "sa2c": SymA2C}[algo].load(run_dir / "MinAtar-Breakout-v1.zip", device="cpu")
    assert type(model.policy) is MinAtarPolicy and model.num_timesteps >= steps
    expected_optimizer = RMSpropTFLike if algo.endswith("a2c") else th.optim.Adam
    assert type(model.policy.optimizer) is expected_optimizer
    register_minatar_envs()
    observation, _ = gym.make("MinAtar/Breakout-v1").reset(seed=0)
    assert model.action_space.contains(model.predict(observation, deterministic=True)[0].item())


@pytest.mark.slow
def test_rl_zoo3_enjoy_plays_a_minatar_model(zoo_venv, minatar_runs):
    if not (minatar_runs / "logs" / "sppo" / "MinAtar-Breakout-v1_1").is_dir():
        pytest.skip("needs the sppo run of test_rl_zoo3_trains_minatar_and_the_model_loads_without_env")
    args = ["enjoy", "--algo", "sppo", "--env", "MinAtar/Breakout-v1", "-f", "logs", "--no-render", "-n", "300"]
    result = run([zoo_venv.rl_zoo3, *args], minatar_runs)
    assert "Loading logs/sppo/MinAtar-Breakout-v1_1/MinAtar-Breakout-v1.zip" in result.stdout
    assert "Episode Reward:" in result.stdout or "Mean reward:" in result.stdout
