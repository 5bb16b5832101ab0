"""SymPPO is stock PPO with four rescaled knobs (:func:`sb3_symmetric.ppo_equivalent`); SymA2C has no such twin."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import IdentityEnv, IdentityEnvMultiBinary, IdentityEnvMultiDiscrete
from stable_baselines3.common.sb2_compat.rmsprop_tf_like import RMSpropTFLike
from stable_baselines3.common.utils import LinearSchedule
from torch.nn import functional as F

from sb3_symmetric import SymA2C, SymPPO, ppo_equivalent
from sb3_symmetric.equivalence import KNOBS, ScaledSchedule, policy_weight


class ImageIdentityEnv(IdentityEnv):
    """IdentityEnv(3) seen as a 36x36 image: the state's third of the image is lit; reward 1 for naming it."""

    def __init__(self) -> None:
        super().__init__(3)
        self.observation_space = spaces.Box(0, 255, (36, 36, 1), dtype=np.uint8)

    def _get_obs(self) -> np.ndarray:  # type: ignore[override]
        image = np.zeros((36, 36, 1), dtype=np.uint8)
        image[12 * self.state : 12 * (self.state + 1)] = 255
        return image

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        return self._get_obs(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        _, reward, terminated, truncated, info = super().step(action)
        return self._get_obs(), reward, terminated, truncated, info


ENVS: dict[str, Callable[[], gym.Env]] = {
    "Discrete": lambda: gym.make("CartPole-v1"),
    "MultiDiscrete": lambda: IdentityEnvMultiDiscrete(3),
    "MultiBinary": lambda: IdentityEnvMultiBinary(4),
    "Image": ImageIdentityEnv,
}
# 3 rollouts x 4 epochs x 4 minibatches = 48 optimizer steps; ent_coef > 0 so that every knob acts
SMALL = dict(n_steps=64, batch_size=32, n_epochs=4, ent_coef=0.01, seed=0, device="cpu")
ROLLOUTS = 3
# the paper's Atari coefficients (w = 1.5) and its MuJoCo example (w = 20.5)
ATARI = dict(alpha=0.5, beta=1.0, rce_z=-1.0)
MUJOCO = dict(alpha=0.5, beta=20.0, rce_z=-1.0)
# float32 rounding of 48 steps; the measured gap is about 1e-7 (see docs/equivalence.rst)
EXACT = 1e-5


def _train(algo: type, env_name: str, policy: str | type = "MlpPolicy", **kwargs: Any) -> list[th.Tensor]:
    env = make_vec_env(ENVS[env_name], n_envs=2, seed=0)
    model = algo(policy, env, **kwargs)
    model.learn(ROLLOUTS * model.n_steps * env.num_envs)
    return [p.detach().clone() for p in model.policy.parameters()]


def _max_diff(a: list[th.Tensor], b: list[th.Tensor]) -> float:
    return max((x - y).abs().max().item() for x, y in zip(a, b, strict=True))


def _assert_twins(
    sym: dict, env_name: str = "Discrete", policy: str | type = "MlpPolicy", **kwargs: Any
) -> tuple[float, float]:
    # the mapping must see every argument SymPPO gets (a knob left out would be taken as SymPPO's default)
    kwargs = {**SMALL, **kwargs}
    sppo = _train(SymPPO, env_name, policy, **sym, **kwargs)
    twin = _train(PPO, env_name, policy, **ppo_equivalent(**sym, **kwargs))
    plain = _train(PPO, env_name, policy, **kwargs)
    exact, apart = _max_diff(sppo, twin), _max_diff(sppo, plain)
    assert exact <= EXACT, f"SymPPO and its stock-PPO equivalent differ by {exact:.2e}"
    # the comparison must be able to tell: unchanged PPO is at least 100x further away
    assert apart >= 100 * max(exact, 1e-7), f"unchanged PPO is only {apart:.2e} away (twin {exact:.2e})"
    return exact, apart


@pytest.mark.parametrize("env_name", ["Discrete", "MultiDiscrete", "MultiBinary"])
@pytest.mark.parametrize("sym", [ATARI, MUJOCO], ids=["atari-w1.5", "mujoco-w20.5"])
def test_sppo_trains_exactly_like_its_ppo_equivalent(env_name, sym):
    _assert_twins(sym, env_name)


def test_cnn_policy_with_shared_features_extractor():
    model = PPO("CnnPolicy", make_vec_env(ENVS["Image"], n_envs=1), n_steps=8, batch_size=8, device="cpu")
    assert model.policy.share_features_extractor and len(model.policy.mlp_extractor.policy_net) == 0
    _assert_twins(ATARI, "Image", "CnnPolicy", n_steps=32, batch_size=16, n_epochs=2)


def test_minatar_policy_the_benchmarks_shared_network():
    pytest.importorskip("minatar")
    from sb3_symmetric.common.minatar import MinAtarPolicy, register_minatar_envs

    register_minatar_envs()
    ENVS["MinAtar"] = lambda: gym.make("MinAtar/Breakout-v1")
    _assert_twins(ATARI, "MinAtar", MinAtarPolicy, n_steps=32, batch_size=32, n_epochs=2)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(clip_range_vf=0.2),
        # target_kl stops epochs early (asserted below), on the same minibatch for both
        dict(target_kl=2e-4),
        dict(learning_rate=LinearSchedule(1e-3, 1e-4, 1.0), clip_range=LinearSchedule(0.3, 0.1, 1.0)),
        dict(normalize_advantage=False, vf_coef=1.0, max_grad_norm=0.1),
    ],
    ids=["clip_range_vf", "target_kl", "schedules", "raw-advantages-and-knobs"],
)
def test_sppo_options_carry_over(kwargs):
    _assert_twins(ATARI, **kwargs)


def test_target_kl_really_stops_early():
    env = make_vec_env(ENVS["Discrete"], n_envs=2, seed=0)
    model = PPO("MlpPolicy", env, **ppo_equivalent(**ATARI, **SMALL, target_kl=2e-4))
    steps = []
    step = model.policy.optimizer.step

    def counted(*args: Any, **kwargs: Any) -> Any:
        steps.append(1)
        return step(*args, **kwargs)

    model.policy.optimizer.step = counted  # type: ignore[method-assign]
    model.learn(ROLLOUTS * model.n_steps * env.num_envs)
    # without early stopping: 3 rollouts x 4 epochs x 4 minibatches
    assert len(steps) < ROLLOUTS * model.n_epochs * 4


@pytest.mark.parametrize(
    "optimizer_class, optimizer_kwargs",
    [
        (th.optim.Adam, None),
        (th.optim.Adam, dict(eps=1e-8, weight_decay=1e-2, amsgrad=True)),
        (th.optim.Adam, dict(weight_decay=1e-2, decoupled_weight_decay=True)),
        (th.optim.AdamW, dict(weight_decay=0.1)),
        (th.optim.RMSprop, dict(alpha=0.9, eps=1e-5, weight_decay=1e-2, momentum=0.5, centered=True)),
        (th.optim.SGD, dict(momentum=0.9, weight_decay=1e-2, nesterov=True)),
    ],
    ids=["Adam-sb3-default", "Adam-L2-amsgrad", "Adam-decoupled", "AdamW", "RMSprop", "SGD"],
)
def test_every_mappable_optimizer(optimizer_class, optimizer_kwargs):
    policy_kwargs = dict(optimizer_class=optimizer_class, optimizer_kwargs=optimizer_kwargs)
    # SGD needs a larger step to move as far as the adaptive optimizers; the schedule checks ScaledSchedule
    learning_rate = LinearSchedule(3e-2, 1e-2, 1.0) if optimizer_class is th.optim.SGD else 3e-4
    _assert_twins(MUJOCO, policy_kwargs=policy_kwargs, learning_rate=learning_rate)


def test_mapping_of_the_papers_settings():
    atari = ppo_equivalent(**ATARI, vf_coef=0.5, ent_coef=0.01, max_grad_norm=0.5)
    assert atari["vf_coef"] == pytest.approx(1 / 3) and atari["ent_coef"] == pytest.approx(0.01 / 1.5)
    assert atari["max_grad_norm"] == pytest.approx(1 / 3)
    assert atari["policy_kwargs"] == dict(optimizer_class=th.optim.Adam, optimizer_kwargs=dict(eps=pytest.approx(1e-5 / 1.5)))
    mujoco = ppo_equivalent(**MUJOCO)
    assert round(mujoco["max_grad_norm"], 3) == 0.024 and mujoco["ent_coef"] == 0.0
    assert policy_weight(**MUJOCO) == 20.5
    # alpha=1, beta=0 is PPO: nothing changes
    assert ppo_equivalent(alpha=1.0, beta=0.0, vf_coef=0.5)["vf_coef"] == 0.5


def test_knob_subsets_rescale_only_those_knobs():
    given = dict(n_steps=128, vf_coef=0.5, ent_coef=0.01, max_grad_norm=0.5, policy_kwargs=dict(net_arch=[32]))
    full = ppo_equivalent(**ATARI, **given)
    assert set(full) == set(given)
    assert full["n_steps"] == 128 and full["policy_kwargs"]["net_arch"] == [32]
    assert given["policy_kwargs"] == dict(net_arch=[32]), "the caller's dict must not be modified"
    for knob in ("vf_coef", "ent_coef", "max_grad_norm"):
        only = ppo_equivalent(**ATARI, knobs=(knob,), **given)
        assert only == {**given, knob: full[knob]}
    only_optimizer = ppo_equivalent(**ATARI, knobs=["optimizer"], **given)
    assert only_optimizer == {**given, "policy_kwargs": full["policy_kwargs"]}
    assert ppo_equivalent(**ATARI, knobs=(), **given) == given
    # knobs not given take SymPPO's defaults before rescaling
    assert ppo_equivalent(**MUJOCO, knobs=("vf_coef", "max_grad_norm")) == dict(vf_coef=0.5 / 20.5, max_grad_norm=0.5 / 20.5)


def test_numpy_scalars_and_sgd_learning_rate():
    # alpha/beta/rce_z accept what SymPPO accepts (np.float64 is a float); PPO's knobs any numpy scalar
    sgd = dict(optimizer_class=th.optim.SGD)
    mapped = ppo_equivalent(alpha=np.float64(0.5), beta=1, ent_coef=np.float32(0.01), policy_kwargs=sgd)
    assert isinstance(mapped["ent_coef"], float) and mapped["ent_coef"] == pytest.approx(0.01 / 1.5)
    assert mapped["learning_rate"] == pytest.approx(3e-4 * 1.5)
    schedule = ppo_equivalent(learning_rate=LinearSchedule(1.0, 0.0, 1.0), policy_kwargs=dict(optimizer_class=th.optim.SGD))
    scaled = schedule["learning_rate"]
    assert isinstance(scaled, ScaledSchedule) and scaled(0.5) == pytest.approx(0.75)
    assert pickle.loads(pickle.dumps(scaled))(0.5) == pytest.approx(0.75)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(knobs=("vf_coef", "clip_range")), r"Unknown knob\(s\) \['clip_range'\]"),
        (dict(knobs="vf_coef"), r"knobs=\('vf_coef',\)"),
        (dict(beta=-1.0), "`beta` must be a finite number >= 0"),
        (dict(rce_z=1.0), "`rce_z` must be a finite negative number"),
        (dict(alpha=0.0, beta=0.0), "both 0"),
        (dict(policy_kwargs=dict(optimizer_class=RMSpropTFLike)), "cannot map the optimizer RMSpropTFLike.*Adam, AdamW"),
        (dict(policy_kwargs=dict(optimizer_class=th.optim.RAdam)), "cannot map the optimizer RAdam"),
        (dict(policy_kwargs="dict(net_arch=[64])"), "`policy_kwargs` must be a dict"),
        (dict(vf_coef="half"), "`vf_coef` must be a number"),
    ],
)
def test_bad_input_is_refused_with_advice(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ppo_equivalent(**kwargs)


def test_knob_names_are_the_interface():
    assert KNOBS == ("vf_coef", "ent_coef", "max_grad_norm", "optimizer")


def _sym_a2c_gradient_and_a2c_components(beta: float) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
    """SymA2C's gradient from its own train(), A2C's three loss-term gradients on the same batch, the actor's entries."""
    env = make_vec_env(ENVS["Discrete"], n_envs=2, seed=0)
    # no clipping (it would only rescale) so the captured gradient is the loss's
    model = SymA2C("MlpPolicy", env, n_steps=32, ent_coef=0.01, max_grad_norm=1e9, alpha=0.5, beta=beta, seed=0, device="cpu")
    model.learn(2 * 32 * 2)  # two updates, so the policy is no longer uniform
    params = list(model.policy.parameters())
    before = [p.detach().clone() for p in params]
    captured: list[th.Tensor] = []
    step = model.policy.optimizer.step

    def capture_then_step(*args: Any, **kwargs: Any) -> Any:
        captured.append(th.cat([p.grad.flatten() for p in params]))
        return step(*args, **kwargs)

    model.policy.optimizer.step = capture_then_step  # type: ignore[method-assign]
    model.train()
    # A2C's loss terms (stable_baselines3/a2c/a2c.py), recomputed on the same rollout with the same parameters
    with th.no_grad():
        for p, b in zip(params, before, strict=True):
            p.copy_(b)
    (data,) = list(model.rollout_buffer.get(batch_size=None))
    values, log_prob, entropy = model.policy.evaluate_actions(data.observations, data.actions.long().flatten())
    terms = [-(data.advantages * log_prob).mean(), F.mse_loss(data.returns, values.flatten()), -entropy.mean()]
    components = th.stack(
        [
            th.cat(
                [
                    g.flatten()
                    for g in th.autograd.grad(t, params, retain_graph=True, allow_unused=True, materialize_grads=True)
                ]
            )
            for t in terms
        ],
        1,
    )
    # the actor's parameters, which the value loss does not reach (MlpPolicy: separate actor and critic)
    actor = th.cat([th.full((p.numel(),), "value" not in name) for name, p in model.policy.named_parameters()])
    return captured[0], components, actor


def _residual(target: th.Tensor, basis: th.Tensor, actor: th.Tensor) -> float:
    # the best a * g_policy + b * g_value + c * g_entropy, i.e. A2C with any policy weight, vf_coef and ent_coef;
    # what it misses, relative to the actor's gradient (the critic's part is matched by b alone)
    target, basis = target.double(), basis.double()
    solution = th.linalg.lstsq(basis, target.unsqueeze(1)).solution
    miss = (basis @ solution).squeeze(1) - target
    return (miss[actor].norm() / target[actor].norm()).item()


def test_no_rescaling_of_a2c_gives_sym_a2c_gradient():
    # control: beta = 0 is A2C with weight alpha, which the fit must reproduce
    control = _residual(*_sym_a2c_gradient_and_a2c_components(beta=0.0))
    assert control < 1e-5
    # SymA2C's per-sample weight alpha + beta * |Z| * pi leaves a part no A2C coefficients can reach
    residual = _residual(*_sym_a2c_gradient_and_a2c_components(beta=1.0))
    assert residual > 1e-2, f"residual {residual:.2e} (control {control:.2e})"
