"""Every algorithm's training step and logs against an independent computation from the paper's formulas.

A real model collects one rollout and trains on it. The test rebuilds the same update from the rollout data
alone: the joint probability of every action (by enumeration over the action space, not through
``sb3_symmetric.losses``), the loss of docs/paper.rst, "Formulas", then the same optimizer steps on a deep copy
of the policy. The parameters, the last step's gradients and the logged values must agree.

Coefficients are non-default and pairwise different (alpha != beta != |Z|, ent_coef != 0), so a coefficient
dropped, swapped or moved onto another term changes the numbers. An SGD case without gradient clipping sees the
loss's scale; the Adam/RMSprop case with clipping is the algorithms' defaults.

The sb3-contrib algorithms: SymMaskablePPO's rollouts carry real masks (some actions illegal), and the reference
masks and renormalizes the policy's raw logits itself, per action dimension, so ``pi``, "the other actions" (the
other legal ones) and the entropy are the masked distribution's. SymRecurrentPPO's minibatches are padded
sequences with stored LSTM states: they come from sb3-contrib's own buffer (replayed on a copy with the same NumPy
random state) and the policy's own recurrent forward; the loss arithmetic over the valid (unpadded) samples is
the reference's own.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from gymnasium.wrappers import FlattenObservation
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import IdentityEnv, IdentityEnvMultiBinary, IdentityEnvMultiDiscrete
from stable_baselines3.common.policies import BaseModel

from sb3_symmetric import SymA2C, SymPPO

N_ENVS = 2

SPACES: dict[str, Callable[[], gym.Env]] = {
    "Discrete": lambda: IdentityEnv(4),
    "MultiDiscrete": lambda: IdentityEnvMultiDiscrete(3),
    "MultiBinary": lambda: IdentityEnvMultiBinary(3),
}


@dataclass(frozen=True)
class AlgoCase:
    """
    One algorithm under test. ``family`` picks the reference loss: ``"ppo"`` (clipped surrogate, reverse term
    divided by pi_old and masked, per-minibatch advantage normalization) or ``"a2c"`` (one full batch).
    ``rollout`` says how train() sees the rollout: ``"flat"`` (SB3's shuffled minibatches), ``"masked"`` (the same
    with the buffer's action masks) or ``"recurrent"`` (padded sequences with LSTM states).
    """

    name: str
    algo: type
    family: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    spaces: dict[str, Callable[[], gym.Env]] = field(default_factory=lambda: SPACES)
    policy: str = "MlpPolicy"
    rollout: str = "flat"
    # SB3's key for the unscaled policy term
    policy_loss_key: str = "train/policy_gradient_loss"
    # SB3's PPO leaves a minibatch of one unnormalized (its std is undefined); A2C and sb3-contrib's PPOs do not
    guards_single_sample: bool = False


ALGO_CASES = [
    AlgoCase("SymPPO", SymPPO, "ppo", dict(n_steps=16, batch_size=16, n_epochs=2, clip_range=0.05), guards_single_sample=True),
    AlgoCase("SymA2C", SymA2C, "a2c", dict(n_steps=8), policy_loss_key="train/policy_loss"),
]

try:
    from sb3_contrib.common.envs import (
        InvalidActionEnvDiscrete,
        InvalidActionEnvMultiBinary,
        InvalidActionEnvMultiDiscrete,
    )

    from sb3_symmetric import SymMaskablePPO, SymRecurrentPPO
except ImportError:  # sb3-contrib is the optional [contrib] extra; test_contrib_cases_are_run says so
    HAVE_CONTRIB = False
else:
    HAVE_CONTRIB = True
    ALGO_CASES += [
        AlgoCase(
            "SymMaskablePPO",
            SymMaskablePPO,
            "ppo",
            dict(n_steps=16, batch_size=16, n_epochs=2, clip_range=0.05),
            # every state has illegal actions; the taken (correct) one is always legal
            spaces={
                "Discrete": lambda: InvalidActionEnvDiscrete(dim=5, n_invalid_actions=2),
                "MultiDiscrete": lambda: InvalidActionEnvMultiDiscrete(dims=[3, 4], n_invalid_actions=3),
                "MultiBinary": lambda: InvalidActionEnvMultiBinary(dims=3, n_invalid_actions=2),
            },
            rollout="masked",
        ),
        AlgoCase(
            "SymRecurrentPPO",
            SymRecurrentPPO,
            "ppo",
            dict(n_steps=16, batch_size=16, n_epochs=2, clip_range=0.05, policy_kwargs=dict(lstm_hidden_size=16)),
            # short episodes: sequences start inside the rollout, so minibatches hold sequences of several lengths.
            # No MultiBinary: RecurrentPPO 2.9.2 itself fails in train() on it. MultiDiscrete observations are
            # flattened because its LSTM refuses the NumPy integer a MultiDiscrete feature size is
            spaces={
                "Discrete": lambda: IdentityEnv(4, ep_length=6),
                "MultiDiscrete": lambda: FlattenObservation(IdentityEnvMultiDiscrete(3, ep_length=6)),
            },
            policy="MlpLstmPolicy",
            rollout="recurrent",
        ),
    ]

CASE_SPACES = [(case, space) for case in ALGO_CASES for space in case.spaces]
CASE_SPACE_IDS = [f"{case.name}-{space}" for case, space in CASE_SPACES]

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
        model: Any = self.model  # an on-policy algorithm
        buffer = model.rollout_buffer
        names = ["observations", "actions", "log_probs", "advantages", "returns", "values"]
        if hasattr(buffer, "action_masks"):
            names.append("action_masks")
        self.taken.append(
            dict(
                policy=copy.deepcopy(model.policy),  # with its optimizer and that optimizer's state
                data={name: buffer.swap_and_flatten(getattr(buffer, name).copy()) for name in names},
                buffer=copy.deepcopy(buffer),  # a recurrent buffer's sequences are replayed from it
                numpy_state=np.random.get_state(),  # the minibatch shuffle draws from it
            )
        )


def action_dims(action_space: spaces.Space) -> list[int]:
    """Number of choices of each action dimension."""
    if isinstance(action_space, spaces.Discrete):
        return [int(action_space.n)]
    if isinstance(action_space, spaces.MultiDiscrete):
        return [int(n) for n in action_space.nvec]
    assert isinstance(action_space, spaces.MultiBinary)
    return [2] * int(np.prod(action_space.shape))


def per_dimension_probs(distribution: Any, action_space: spaces.Space) -> list[th.Tensor]:
    """The probabilities of a torch distribution (SB3's ``.distribution``), one (batch, n_choices) tensor per dimension."""
    if isinstance(action_space, spaces.Discrete):
        return [distribution.probs]
    if isinstance(action_space, spaces.MultiDiscrete):
        return [dim.probs for dim in distribution]
    assert isinstance(action_space, spaces.MultiBinary)
    ones = distribution.probs
    return [th.stack([1 - ones[:, d], ones[:, d]], dim=1) for d in range(ones.shape[1])]


def masked_per_dimension_probs(policy: Any, obs: th.Tensor, masks: th.Tensor) -> tuple[list[th.Tensor], list[th.Tensor]]:
    """
    A maskable policy's probabilities under the masks, per dimension, and which choices are legal: the softmax of
    the raw logits of each dimension, illegal choices set to 0, renormalized over the legal ones.
    """
    features = BaseModel.extract_features(policy, obs, policy.pi_features_extractor)
    logits = policy.action_net(policy.mlp_extractor.forward_actor(features))
    sizes = action_dims(policy.action_space)
    probs, legal = [], []
    for dim_logits, dim_legal in zip(th.split(logits, sizes, dim=1), th.split(masks > 0.5, sizes, dim=1), strict=True):
        kept = th.softmax(dim_logits, dim=1) * dim_legal
        probs.append(kept / kept.sum(dim=1, keepdim=True))
        legal.append(dim_legal)
    return probs, legal


def enumerate_joint(
    probs: list[th.Tensor], actions: th.Tensor, legal: list[th.Tensor] | None = None
) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
    """
    Probability of the taken action, summed probability of every other (legal) joint action, and the entropy of the
    joint distribution: all by listing every joint action explicitly.
    """
    batch = len(probs[0])
    actions = actions.long().reshape(batch, -1)
    taken = th.zeros(batch)
    other = th.zeros(batch)
    entropy = th.zeros(batch)
    for joint_action in itertools.product(*(range(p.shape[1]) for p in probs)):
        joint = th.ones(batch)
        is_legal = th.ones(batch, dtype=th.bool)
        for d, choice in enumerate(joint_action):
            joint = joint * probs[d][:, choice]
            if legal is not None:
                is_legal = is_legal & legal[d][:, choice]
        is_taken = (actions == th.tensor(joint_action)).all(dim=1)
        taken = taken + th.where(is_taken, joint, th.zeros_like(joint))
        other = other + th.where(is_taken | ~is_legal, th.zeros_like(joint), joint)
        # 0 log 0 = 0 for illegal actions, with a finite gradient
        entropy = entropy - joint * th.log(th.where(joint > 0, joint, th.ones_like(joint)))
    return taken, other, entropy


@dataclass
class Minibatch:
    """What the loss of one minibatch needs, for its valid samples only (a recurrent minibatch's padding dropped)."""

    probs: list[th.Tensor]
    legal: list[th.Tensor] | None
    actions: th.Tensor
    values: th.Tensor
    advantages: th.Tensor
    old_log_prob: th.Tensor
    returns: th.Tensor
    padded: int = 0


def flat_minibatches(case: AlgoCase, policy: Any, data: dict[str, th.Tensor], batch_size: int) -> Iterator[Minibatch]:
    """SB3's shuffled minibatches of one epoch (the order drawn from NumPy's global generator, as SB3 does)."""
    n_samples = len(data["advantages"])
    order = th.as_tensor(np.random.permutation(n_samples))
    for start in range(0, n_samples, batch_size):
        index = order[start : start + batch_size]
        obs = data["observations"][index]
        if case.rollout == "masked":
            probs, legal = masked_per_dimension_probs(policy, obs, data["action_masks"][index])
        else:
            probs, legal = per_dimension_probs(policy.get_distribution(obs).distribution, policy.action_space), None
        yield Minibatch(
            probs,
            legal,
            data["actions"][index],
            policy.predict_values(obs).flatten(),
            data["advantages"][index].flatten(),
            data["log_probs"][index].flatten(),
            data["returns"][index].flatten(),
        )


def recurrent_minibatches(policy: Any, buffer: Any, batch_size: int) -> Iterator[Minibatch]:
    """sb3-contrib's padded sequence minibatches of one epoch, through the policy's own recurrent forward."""
    for samples in buffer.get(batch_size):
        valid = samples.mask > 0.5
        distribution, _ = policy.get_distribution(samples.observations, samples.lstm_states.pi, samples.episode_starts)
        values = policy.predict_values(samples.observations, samples.lstm_states.vf, samples.episode_starts).flatten()
        yield Minibatch(
            [p[valid] for p in per_dimension_probs(distribution.distribution, policy.action_space)],
            None,
            samples.actions[valid],
            values[valid],
            samples.advantages[valid],
            samples.old_log_prob[valid],
            samples.returns[valid],
            padded=int((~valid).sum()),
        )


def reference_train(case: AlgoCase, model: Any, snapshot: dict[str, Any]) -> dict[str, Any]:
    """Replay train() from the paper's formulas on a copy of the policy; return the final policy, last loss and logs."""
    policy = copy.deepcopy(snapshot["policy"])
    data = {name: th.as_tensor(array) for name, array in snapshot["data"].items()}
    buffer = copy.deepcopy(snapshot["buffer"])
    alpha, beta, z = model.alpha, model.beta, model.rce_z
    np.random.set_state(snapshot["numpy_state"])
    if case.family == "ppo":
        epochs, batch_size, eps = model.n_epochs, model.batch_size, model.clip_range(1.0)
    else:
        epochs, batch_size, eps = 1, len(data["advantages"]), None
    logs: dict[str, list[float]] = {key: [] for key in ("policy", "reverse", "value", "entropy", "flip", "clip")}
    masked_out = padded = 0
    for _ in range(epochs):
        # SB3's PPO logs the approximate KL of the last epoch's minibatches
        logs["kl"] = []
        if case.rollout == "recurrent":
            minibatches = recurrent_minibatches(policy, buffer, batch_size)
        else:
            minibatches = flat_minibatches(case, policy, data, batch_size)
        for batch in minibatches:
            padded += batch.padded
            pi, other, entropy = enumerate_joint(batch.probs, batch.actions, batch.legal)
            raw = batch.advantages
            advantages = raw
            if model.normalize_advantage and (len(raw) > 1 or not case.guards_single_sample):
                advantages = (raw - raw.mean()) / (raw.std() + 1e-8)
            if case.family == "ppo":
                pi_old = th.exp(batch.old_log_prob)
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
            value_loss = ((batch.returns - batch.values) ** 2).mean()
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
            if advantages is not raw:
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
    return dict(policy=policy, logs=expected, masked_out=masked_out, padded=padded)


def train_once(case: AlgoCase, space: str, coefficients: dict, optimizer: dict, n_envs: int = N_ENVS, **extra):
    env = make_vec_env(case.spaces[space], n_envs=n_envs, seed=3)
    kwargs = {**case.kwargs, **coefficients, **optimizer, **extra}
    kwargs["policy_kwargs"] = {**case.kwargs.get("policy_kwargs", {}), **optimizer.get("policy_kwargs", {})}
    model = case.algo(case.policy, env, seed=3, device="cpu", **kwargs)
    snapshot = Snapshot()
    model.learn(model.n_steps * n_envs, callback=snapshot)
    assert len(snapshot.taken) == 1
    return model, snapshot.taken[0]


def check_preconditions(case: AlgoCase, snapshot: dict[str, Any], reference: dict[str, Any]) -> None:
    """What makes a contrib case able to see its own faults: illegal actions, padded minibatches."""
    if case.rollout == "masked":
        # some actions were illegal, so the masked distribution differs from the raw one
        assert (snapshot["data"]["action_masks"] == 0).any()
    if case.rollout == "recurrent":
        # some minibatches were padded, so an average over the padding differs from the masked one
        assert reference["padded"] > 0


# Float32 summation order is all that differs. Worst measured over the main test's 88 cases: parameters 9.4e-6
# (SymPPO with Adam, where a near-zero gradient's tiny difference moves a step of up to lr = 0.02; SymRecurrentPPO
# 6.7e-6, SymMaskablePPO 4.5e-6), gradients 12% (SymRecurrentPPO; the others 4%) and logged values 5% of the
# tolerances below. The parameter tolerance is 5x that worst case and 400x below one Adam step.
PARAMETER_ATOL = 5e-5


def assert_same_update(model: Any, reference: dict[str, Any]) -> None:
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
@pytest.mark.parametrize("case, space", CASE_SPACES, ids=CASE_SPACE_IDS)
def test_training_step_and_logs_match_the_formulas(case, space, coefficients, optimizer):
    model, snapshot = train_once(case, space, COEFFICIENTS[coefficients], OPTIMIZERS[optimizer])
    reference = reference_train(case, model, snapshot)
    if case.family == "ppo" and optimizer == "sgd-unclipped":
        # precondition: the large steps leave the clip interval, so the reverse term's mask is exercised
        assert reference["masked_out"] > 0
    check_preconditions(case, snapshot, reference)
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
    check_preconditions(case, snapshot, reference)
    assert_same_update(model, reference)
    if case.family == "ppo" and normalize_advantage:
        # precondition for the logged fraction: normalization did flip some signs
        assert reference["logs"]["train/adv_sign_flip_fraction"] > 0


@pytest.mark.parametrize("case", ALGO_CASES, ids=[case.name for case in ALGO_CASES])
def test_sign_flip_fraction_is_logged_by_every_algorithm(case):
    """train/adv_sign_flip_fraction: the share of samples whose advantage normalization flipped the sign."""
    model, snapshot = train_once(
        case, "Discrete", COEFFICIENTS["a0.7-b2.5-z1.7"], OPTIMIZERS["sgd-unclipped"], normalize_advantage=True
    )
    reference = reference_train(case, model, snapshot)
    check_preconditions(case, snapshot, reference)
    # precondition: normalization did flip some signs (the fraction is not the 0 logged without normalization)
    assert reference["logs"]["train/adv_sign_flip_fraction"] > 0
    assert_same_update(model, reference)


MINIBATCH_LAYOUTS = {
    "4-equal-minibatches": (2, 16, 8),
    "last-minibatch-of-2": (2, 9, 8),
    "last-minibatch-of-1": (1, 9, 8),
}
# sb3-contrib's PPOs normalize a minibatch of one too: its std is nan and they (the parents as well) fail
MINIBATCH_CASES = [
    pytest.param(case, layout, id=f"{layout}-{case.name}")
    for case in ALGO_CASES
    if case.family == "ppo"
    for layout in MINIBATCH_LAYOUTS
    if case.guards_single_sample or layout != "last-minibatch-of-1"
]


@pytest.mark.parametrize("case, layout", MINIBATCH_CASES)
def test_ppo_minibatches_are_normalized_separately(case, layout):
    """Normalization and the logged averages are per minibatch, as in SB3's PPO; a minibatch of one is left raw."""
    n_envs, n_steps, batch_size = MINIBATCH_LAYOUTS[layout]
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
    reference = reference_train(case, model, snapshot)
    check_preconditions(case, snapshot, reference)
    assert_same_update(model, reference)


def test_contrib_cases_are_run():
    """The sb3-contrib algorithms are compared too wherever sb3-contrib (the [contrib] extra) is installed."""
    if not HAVE_CONTRIB:
        pytest.skip("sb3-contrib is not installed: SymMaskablePPO and SymRecurrentPPO are not compared")
    assert {"SymMaskablePPO", "SymRecurrentPPO"} <= {case.name for case in ALGO_CASES}
