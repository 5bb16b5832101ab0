"""Every algorithm's training step and logs against an independent computation from the paper's formulas.

A real model collects one rollout and trains on it. The test rebuilds the same update from the rollout data
alone: the joint probability of every action (by enumeration over the action space, not through
``sb3_symmetric.losses``), the loss of docs/paper.rst, "Formulas", then the same optimizer steps on a deep copy
of the policy. The parameters, the last step's gradients and the logged values must agree.

Coefficients are non-default and pairwise different (alpha != beta != |Z|, ent_coef != 0), so a coefficient
dropped, swapped or moved onto another term changes the numbers. An SGD case without gradient clipping sees the
loss's scale; the Adam/RMSprop case with clipping is the algorithms' defaults.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import IdentityEnv, IdentityEnvMultiBinary, IdentityEnvMultiDiscrete
from stable_baselines3.common.policies import ActorCriticPolicy

from sb3_symmetric import SymA2C, SymPPO

N_ENVS = 2


@dataclass(frozen=True)
class AlgoCase:
    """
    One algorithm under test. ``family`` picks the reference loss: ``"ppo"`` (clipped surrogate, reverse term
    divided by pi_old and masked, per-minibatch advantage normalization) or ``"a2c"`` (one full batch).
    A new algorithm of the same family (e.g. a maskable PPO) is one more entry of ``ALGO_CASES``.
    """

    name: str
    algo: type
    family: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    # SB3's key for the unscaled policy term
    policy_loss_key: str = "train/policy_gradient_loss"


ALGO_CASES = [
    AlgoCase("SymPPO", SymPPO, "ppo", dict(n_steps=16, batch_size=16, n_epochs=2, clip_range=0.05)),
    AlgoCase("SymA2C", SymA2C, "a2c", dict(n_steps=8), policy_loss_key="train/policy_loss"),
]

SPACES: dict[str, Callable[[], gym.Env]] = {
    "Discrete": lambda: IdentityEnv(4),
    "MultiDiscrete": lambda: IdentityEnvMultiDiscrete(3),
    "MultiBinary": lambda: IdentityEnvMultiBinary(3),
}

# alpha, beta, rce_z, ent_coef, vf_coef: all different from the defaults and from each other
COEFFICIENTS = {
    "a0.7-b2.5-z1.7": dict(alpha=0.7, beta=2.5, rce_z=-1.7, ent_coef=0.05, vf_coef=0.3),
    "a1.3-b0.4-z0.6": dict(alpha=1.3, beta=0.4, rce_z=-0.6, ent_coef=0.2, vf_coef=0.9),
    "a0.8-b0": dict(alpha=0.8, beta=0.0, rce_z=-3.0, ent_coef=0.03, vf_coef=0.5),
    "a0-b1.6": dict(alpha=0.0, beta=1.6, rce_z=-0.9, ent_coef=0.01, vf_coef=0.4),
}

# SGD without clipping: the update is linear in the loss, so any coefficient is visible in it.
# Adam (PPO) / RMSprop (A2C) with SB3's clipping at 0.5: what the algorithms run by default.
OPTIMIZERS = {
    "sgd-unclipped": dict(
        learning_rate=0.5, max_grad_norm=1e9, policy_kwargs=dict(optimizer_class=th.optim.SGD, optimizer_kwargs={})
    ),
    "default-clipped": dict(learning_rate=0.02, max_grad_norm=0.5),
}


class Snapshot(BaseCallback):
    """At the end of each rollout (returns and advantages computed, train() not yet run): copy what train() starts from."""

    def __init__(self) -> None:
        super().__init__()
        self.taken: list[dict[str, Any]] = []

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        buffer = self.model.rollout_buffer
        self.taken.append(
            dict(
                policy=copy.deepcopy(self.model.policy),  # with its optimizer and that optimizer's state
                data={
                    name: buffer.swap_and_flatten(getattr(buffer, name).copy())
                    for name in ("observations", "actions", "log_probs", "advantages", "returns", "values")
                },
                numpy_state=np.random.get_state(),  # the minibatch shuffle draws from it
            )
        )


def per_dimension_probs(policy: ActorCriticPolicy, obs: th.Tensor) -> list[th.Tensor]:
    """The policy's probabilities, one (batch, n_choices) tensor per action dimension."""
    distribution = policy.get_distribution(obs).distribution
    if isinstance(policy.action_space, spaces.Discrete):
        return [distribution.probs]
    if isinstance(policy.action_space, spaces.MultiDiscrete):
        return [dim.probs for dim in distribution]
    assert isinstance(policy.action_space, spaces.MultiBinary)
    ones = distribution.probs
    return [th.stack([1 - ones[:, d], ones[:, d]], dim=1) for d in range(ones.shape[1])]


def enumerate_joint(policy: ActorCriticPolicy, obs: th.Tensor, actions: th.Tensor) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
    """
    Probability of the taken action, summed probability of every other joint action, and the entropy of the joint
    distribution: all by listing every joint action explicitly.
    """
    probs = per_dimension_probs(policy, obs)
    actions = actions.long().reshape(len(obs), -1)
    taken = th.zeros(len(obs))
    other = th.zeros(len(obs))
    entropy = th.zeros(len(obs))
    for joint_action in itertools.product(*(range(p.shape[1]) for p in probs)):
        joint = th.ones(len(obs))
        for d, choice in enumerate(joint_action):
            joint = joint * probs[d][:, choice]
        is_taken = (actions == th.tensor(joint_action)).all(dim=1)
        taken = taken + th.where(is_taken, joint, th.zeros_like(joint))
        other = other + th.where(is_taken, th.zeros_like(joint), joint)
        entropy = entropy - joint * th.log(joint)
    return taken, other, entropy


def reference_train(case: AlgoCase, model, snapshot: dict[str, Any]) -> dict[str, Any]:
    """Replay train() from the paper's formulas on a copy of the policy; return the final policy, last loss and logs."""
    policy: ActorCriticPolicy = copy.deepcopy(snapshot["policy"])
    data = {name: th.as_tensor(array) for name, array in snapshot["data"].items()}
    n_samples = len(data["advantages"])
    alpha, beta, z = model.alpha, model.beta, model.rce_z
    np.random.set_state(snapshot["numpy_state"])
    if case.family == "ppo":
        epochs, batch_size, eps = model.n_epochs, model.batch_size, model.clip_range(1.0)
    else:
        epochs, batch_size, eps = 1, n_samples, None
    logs: dict[str, list[float]] = {key: [] for key in ("policy", "reverse", "value", "entropy", "flip", "clip")}
    masked_out = 0
    for _ in range(epochs):
        # SB3's PPO logs the approximate KL of the last epoch's minibatches
        logs["kl"] = []
        order = th.as_tensor(np.random.permutation(n_samples))
        for start in range(0, n_samples, batch_size):
            index = order[start : start + batch_size]
            obs, actions = data["observations"][index], data["actions"][index]
            raw = data["advantages"][index].flatten()
            pi, other, entropy = enumerate_joint(policy, obs, actions)
            values = policy.predict_values(obs).flatten()
            advantages = raw
            # SB3's PPO leaves a minibatch of one unnormalized (its std is undefined); A2C has no such guard
            if model.normalize_advantage and (len(raw) > 1 or case.family == "a2c"):
                advantages = (raw - raw.mean()) / (raw.std() + 1e-8)
            if case.family == "ppo":
                pi_old = th.exp(data["log_probs"][index].flatten())
                ratio = pi / pi_old
                clipped = th.clamp(ratio, 1 - eps, 1 + eps)
                policy_loss = -th.min(advantages * ratio, advantages * clipped).mean()
                # the official mask: inside the clip interval, or where the unclipped surrogate is the smaller one
                mask = ((ratio - 1).abs() <= eps) | (advantages * ratio <= advantages * clipped)
                reverse_loss = (-mask.float() * advantages * z * other / pi_old).mean()
                masked_out += int((~mask).sum())
                with th.no_grad():
                    logs["kl"].append(float(((ratio - 1) - th.log(ratio)).mean()))
                logs["clip"].append(float(((ratio - 1).abs() > eps).float().mean()))
            else:
                policy_loss = -(advantages * th.log(pi)).mean()
                reverse_loss = (-advantages * z * other).mean()
            value_loss = ((data["returns"][index].flatten() - values) ** 2).mean()
            entropy_loss = -entropy.mean()
            loss = alpha * policy_loss + beta * reverse_loss + model.vf_coef * value_loss + model.ent_coef * entropy_loss
            policy.optimizer.zero_grad()
            loss.backward()
            th.nn.utils.clip_grad_norm_(policy.parameters(), model.max_grad_norm)
            policy.optimizer.step()
            logs["policy"].append(float(policy_loss.detach()))
            logs["reverse"].append(float(reverse_loss.detach()))
            logs["value"].append(float(value_loss.detach()))
            logs["entropy"].append(float(entropy_loss.detach()))
            if model.normalize_advantage and len(raw) > 1:
                # the share of normalized samples whose sign flipped, over all minibatches (not a mean of shares)
                logs["flip"].extend((raw * advantages < 0).float().tolist())
    returns, values = snapshot["data"]["returns"].flatten(), snapshot["data"]["values"].flatten()
    expected = {
        "train/n_updates": epochs,
        "train/explained_variance": 1 - np.var(returns - values) / np.var(returns),
        case.policy_loss_key: np.mean(logs["policy"]),
        "train/reverse_loss": np.mean(logs["reverse"]),
        "train/value_loss": np.mean(logs["value"]),
        "train/entropy_loss": np.mean(logs["entropy"]),
    }
    if case.family == "ppo":
        # SB3 PPO's loss key holds the last minibatch's total loss
        expected["train/loss"] = float(loss.detach())
        expected["train/clip_fraction"] = np.mean(logs["clip"])
        expected["train/approx_kl"] = np.mean(logs["kl"])
        expected["train/clip_range"] = eps
        expected["train/adv_sign_flip_fraction"] = np.mean(logs["flip"]) if logs["flip"] else 0.0
    return dict(policy=policy, logs=expected, masked_out=masked_out)


def train_once(case: AlgoCase, space: str, coefficients: dict, optimizer: dict, n_envs: int = N_ENVS, **extra):
    env = make_vec_env(SPACES[space], n_envs=n_envs, seed=3)
    model = case.algo("MlpPolicy", env, seed=3, device="cpu", **{**case.kwargs, **coefficients, **optimizer, **extra})
    snapshot = Snapshot()
    model.learn(model.n_steps * n_envs, callback=snapshot)
    assert len(snapshot.taken) == 1
    return model, snapshot.taken[0]


# Float32 summation order is all that differs. Worst measured over the main test's 48 cases: parameters 6.8e-6
# (Adam, where a near-zero gradient's tiny difference moves a step of up to lr = 0.02), gradients 3% and logged values
# 2% of the tolerances below. The parameter tolerance is 7x that worst case and 400x below one Adam step.
PARAMETER_ATOL = 5e-5


def assert_same_update(model, reference: dict[str, Any]) -> None:
    ours = dict(model.policy.named_parameters())
    for name, expected in reference["policy"].named_parameters():
        actual = ours[name]
        th.testing.assert_close(actual.detach(), expected.detach(), rtol=1e-4, atol=PARAMETER_ATOL, msg=f"parameter {name}")
        # the gradients of the last optimizer step (after clipping), both sides
        th.testing.assert_close(actual.grad, expected.grad, rtol=1e-3, atol=1e-6, msg=f"gradient of {name}")
    logged = model.logger.name_to_value
    for key, value in reference["logs"].items():
        assert key in logged, key
        assert logged[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
    # SB3 keeps the update counter out of TensorBoard
    assert model.logger.name_to_excluded["train/n_updates"] == ("tensorboard",)


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("coefficients", list(COEFFICIENTS))
@pytest.mark.parametrize("space", list(SPACES))
@pytest.mark.parametrize("case", ALGO_CASES, ids=[case.name for case in ALGO_CASES])
def test_training_step_and_logs_match_the_formulas(case, space, coefficients, optimizer):
    model, snapshot = train_once(case, space, COEFFICIENTS[coefficients], OPTIMIZERS[optimizer])
    reference = reference_train(case, model, snapshot)
    if case.family == "ppo" and optimizer == "sgd-unclipped":
        # precondition: the large steps leave the clip interval, so the reverse term's mask is exercised
        assert reference["masked_out"] > 0
    assert_same_update(model, reference)
    # precondition: training moved the policy, so the comparison is not between two untouched copies
    before = dict(snapshot["policy"].named_parameters())
    assert any(not th.equal(before[name], p) for name, p in model.policy.named_parameters())


@pytest.mark.parametrize("case", ALGO_CASES, ids=[case.name for case in ALGO_CASES])
@pytest.mark.parametrize("normalize_advantage", [False, True])
def test_advantage_normalization_either_way(case, normalize_advantage):
    """The reverse term uses the advantages the policy term uses, normalized (per minibatch) or raw."""
    model, snapshot = train_once(
        case,
        "MultiDiscrete",
        COEFFICIENTS["a0.7-b2.5-z1.7"],
        OPTIMIZERS["sgd-unclipped"],
        normalize_advantage=normalize_advantage,
    )
    reference = reference_train(case, model, snapshot)
    assert_same_update(model, reference)
    if case.family == "ppo" and normalize_advantage:
        # precondition for the logged fraction: normalization did flip some signs
        assert reference["logs"]["train/adv_sign_flip_fraction"] > 0


@pytest.mark.parametrize("case", [c for c in ALGO_CASES if c.family == "ppo"], ids=lambda c: c.name)
@pytest.mark.parametrize(
    "n_envs, n_steps, batch_size",
    [(2, 16, 8), (2, 9, 8), (1, 9, 8)],
    ids=["4-equal-minibatches", "last-minibatch-of-2", "last-minibatch-of-1"],
)
def test_ppo_minibatches_are_normalized_separately(case, n_envs, n_steps, batch_size):
    """Normalization and the logged averages are per minibatch, as in SB3's PPO; a minibatch of one is left raw."""
    model, snapshot = train_once(
        case,
        "Discrete",
        COEFFICIENTS["a1.3-b0.4-z0.6"],
        OPTIMIZERS["sgd-unclipped"],
        n_envs=n_envs,
        n_steps=n_steps,
        batch_size=batch_size,
        n_epochs=3,
    )
    assert_same_update(model, reference_train(case, model, snapshot))
