"""The symmetric math against independent computations (``docs/paper.rst``, "Formulas")."""

import itertools
import math
import re

import pytest
import torch as th
from stable_baselines3.common.distributions import (
    BernoulliDistribution,
    CategoricalDistribution,
    MultiCategoricalDistribution,
)

from sb3_symmetric.losses import (
    SymmetricPolicyLoss,
    _weighted_sum,
    a2c_reverse_loss,
    check_symmetric_coefficients,
    clipped_surrogate,
    masked_mean,
    other_action_prob,
    ppo_reverse_loss,
    sign_flips,
)

BATCH = 64
NVEC = (3, 4, 2)
N_BINARY = 4


def _sb3_distribution(kind: str, logits: th.Tensor):
    """The distribution SB3's policy builds, which is what SymPPO/SymA2C evaluate."""
    if kind == "categorical":
        return CategoricalDistribution(logits.shape[-1]).proba_distribution(logits)
    if kind == "multicategorical":
        return MultiCategoricalDistribution(list(NVEC)).proba_distribution(logits)
    return BernoulliDistribution(logits.shape[-1]).proba_distribution(logits)


def _torch_joint_log_prob(kind: str, logits: th.Tensor, actions: th.Tensor) -> th.Tensor:
    """Joint log-probability through torch.distributions only (independent of SB3 and of our module)."""
    if kind == "categorical":
        return th.distributions.Categorical(logits=logits).log_prob(actions)
    if kind == "multicategorical":
        parts = th.split(logits, list(NVEC), dim=-1)
        return sum(th.distributions.Categorical(logits=p).log_prob(actions[:, d]) for d, p in enumerate(parts))
    return th.distributions.Independent(th.distributions.Bernoulli(logits=logits), 1).log_prob(actions)


def _all_actions(kind: str) -> list[tuple[int, ...]]:
    if kind == "categorical":
        return [(a,) for a in range(5)]
    if kind == "multicategorical":
        return list(itertools.product(*[range(n) for n in NVEC]))
    return list(itertools.product(range(2), repeat=N_BINARY))


def _explicit_other_prob(kind: str, logits: th.Tensor, actions: th.Tensor) -> th.Tensor:
    """Sum of the probabilities of every action other than the taken one, enumerated explicitly (not 1 - pi)."""
    taken = actions.reshape(len(actions), -1)
    total = th.zeros(len(actions), dtype=logits.dtype)
    for candidate in _all_actions(kind):
        cand = th.tensor(candidate, dtype=actions.dtype).expand_as(taken)
        cand_actions = cand.squeeze(-1) if kind == "categorical" else cand
        prob = th.exp(_torch_joint_log_prob(kind, logits, cand_actions))
        is_other = (cand != taken).any(dim=-1)
        total = total + prob * is_other
    return total


def _batch(kind: str, seed: int = 0):
    gen = th.Generator().manual_seed(seed)
    width = {"categorical": 5, "multicategorical": sum(NVEC), "bernoulli": N_BINARY}[kind]
    logits = th.randn(BATCH, width, generator=gen, dtype=th.float64) * 1.5
    with th.no_grad():
        actions = _sb3_distribution(kind, logits).sample()
    if kind == "categorical":
        actions = actions.long()
    advantages = th.randn(BATCH, generator=gen, dtype=th.float64)
    # Old log-probs of a shifted policy: ratios spread well outside [1 - eps, 1 + eps]
    old_logits = logits + 0.8 * th.randn(BATCH, width, generator=gen, dtype=th.float64)
    with th.no_grad():
        old_log_prob = _torch_joint_log_prob(kind, old_logits, actions)
    return logits, actions, advantages, old_log_prob


KINDS = ["categorical", "multicategorical", "bernoulli"]


@pytest.mark.parametrize("kind", KINDS)
def test_sb3_log_prob_is_joint_probability(kind):
    logits, actions, _, _ = _batch(kind)
    ours = _sb3_distribution(kind, logits).log_prob(actions)
    assert th.allclose(ours, _torch_joint_log_prob(kind, logits, actions), atol=1e-12)
    # 1 - pi equals the explicit sum over the other actions
    assert th.allclose(other_action_prob(ours), _explicit_other_prob(kind, logits, actions), atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("rce_z", [-1.0, -6.0])
def test_a2c_reverse_gradient_matches_explicit_sum(kind, rce_z):
    logits, actions, advantages, _ = _batch(kind)
    logits = logits.clone().requires_grad_(True)
    loss = a2c_reverse_loss(_sb3_distribution(kind, logits).log_prob(actions), advantages, rce_z)
    (grad,) = th.autograd.grad(loss, logits)

    ref_logits = logits.detach().clone().requires_grad_(True)
    other = _explicit_other_prob(kind, ref_logits, actions)
    ref_loss = (-advantages * rce_z * other).mean()
    (ref_grad,) = th.autograd.grad(ref_loss, ref_logits)

    assert th.allclose(loss, ref_loss, atol=1e-12)
    assert th.allclose(grad, ref_grad, atol=1e-10)
    assert grad.abs().max() > 1e-4


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("rce_z", [-1.0, -6.0])
def test_ppo_reverse_gradient_matches_explicit_sum(kind, rce_z):
    clip_range = 0.2
    logits, actions, advantages, old_log_prob = _batch(kind)
    logits = logits.clone().requires_grad_(True)
    loss = ppo_reverse_loss(_sb3_distribution(kind, logits).log_prob(actions), old_log_prob, advantages, clip_range, rce_z)
    (grad,) = th.autograd.grad(loss, logits)

    ref_logits = logits.detach().clone().requires_grad_(True)
    log_prob = _torch_joint_log_prob(kind, ref_logits, actions)
    ratio = th.exp(log_prob - old_log_prob)
    # The official code's mask, with its OR spelled out
    in_range = (ratio >= 1 - clip_range) & (ratio <= 1 + clip_range)
    unclipped_chosen = advantages * ratio <= advantages * th.clamp(ratio, 1 - clip_range, 1 + clip_range)
    mask = (in_range | unclipped_chosen).detach().to(logits.dtype)
    other = _explicit_other_prob(kind, ref_logits, actions)
    ref_loss = (-mask * advantages * rce_z * other / th.exp(old_log_prob)).mean()
    (ref_grad,) = th.autograd.grad(ref_loss, ref_logits)

    assert 0 < mask.sum() < BATCH, "the batch must contain masked and unmasked samples"
    assert th.allclose(loss, ref_loss, atol=1e-10)
    assert th.allclose(grad, ref_grad, atol=1e-9)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("rce_z", [-1.0, -0.3, -6.0])
def test_sppo_reverse_gradient_is_abs_z_times_clipped_surrogate_gradient(kind, rce_z):
    """docs/paper.rst, "Stock-PPO equivalent": grad L_reverse = |Z| * grad L_clip on the same batch."""
    clip_range = 0.2
    logits, actions, advantages, old_log_prob = _batch(kind, seed=1)
    logits = logits.clone().requires_grad_(True)
    log_prob = _sb3_distribution(kind, logits).log_prob(actions)
    ratio = th.exp(log_prob - old_log_prob)
    assert ((ratio - 1).abs() > clip_range).any(), "some samples must be clipped for the identity to be tested"

    (reverse_grad,) = th.autograd.grad(
        ppo_reverse_loss(log_prob, old_log_prob, advantages, clip_range, rce_z), logits, retain_graph=True
    )
    clipped_surrogate = -th.min(advantages * ratio, advantages * th.clamp(ratio, 1 - clip_range, 1 + clip_range)).mean()
    (surrogate_grad,) = th.autograd.grad(clipped_surrogate, logits)

    assert th.allclose(reverse_grad, abs(rce_z) * surrogate_grad, atol=1e-10)
    assert surrogate_grad.abs().max() > 1e-4


def test_ppo_reverse_loss_accepts_precomputed_clip_mask():
    logits, actions, advantages, old_log_prob = _batch("categorical")
    log_prob = _sb3_distribution("categorical", logits).log_prob(actions)
    _, clip_mask = clipped_surrogate(advantages, th.exp(log_prob - old_log_prob), 0.2)
    assert th.equal(
        ppo_reverse_loss(log_prob, old_log_prob, advantages, 0.2, -1.0, clip_mask=clip_mask),
        ppo_reverse_loss(log_prob, old_log_prob, advantages, 0.2, -1.0),
    )


@pytest.mark.parametrize("scale", [0.3, 20.0])
def test_scale_and_precomputed_ratio(scale):
    """`scale` multiplies value and gradient; a ratio passed in gives what the function computes itself."""
    logits, actions, advantages, old_log_prob = _batch("multicategorical", seed=2)
    logits = logits.clone().requires_grad_(True)
    log_prob = _sb3_distribution("multicategorical", logits).log_prob(actions)
    ratio = th.exp(log_prob - old_log_prob)
    cases = [
        (lambda **kw: ppo_reverse_loss(log_prob, old_log_prob, advantages, 0.2, -2.0, **kw), {"ratio": ratio}),
        (lambda **kw: a2c_reverse_loss(log_prob, advantages, -2.0, **kw), {}),
    ]
    for loss_fn, extra in cases:
        plain = loss_fn()
        (plain_grad,) = th.autograd.grad(plain, logits, retain_graph=True)
        scaled = loss_fn(scale=scale, **extra)
        (scaled_grad,) = th.autograd.grad(scaled, logits, retain_graph=True)
        assert th.allclose(scaled, scale * plain, rtol=1e-12)
        assert th.allclose(scaled_grad, scale * plain_grad, rtol=1e-10, atol=1e-14)
        assert plain_grad.abs().max() > 1e-4


def test_ppo_reverse_loss_float32_with_tiny_joint_probabilities():
    """8 action dimensions x 11 bins (discretized Ant): pi_old near 11**-8. float32 stays close to a float64 reference."""
    gen = th.Generator().manual_seed(4)
    logits64 = th.randn(BATCH, 8, 11, generator=gen, dtype=th.float64)
    actions = th.randint(0, 11, (BATCH, 8), generator=gen)
    old_log_prob64 = th.log_softmax(logits64, -1).gather(-1, actions[..., None]).sum((1, 2))
    logits64 = (logits64 + 0.3 * th.randn(BATCH, 8, 11, generator=gen, dtype=th.float64)).requires_grad_(True)
    advantages64 = th.randn(BATCH, generator=gen, dtype=th.float64)
    assert old_log_prob64.max() < -12, "joint probabilities must be tiny for this test"

    results = []
    for dtype in (th.float32, th.float64):
        logits = logits64.detach().to(dtype).requires_grad_(True)
        log_prob = th.log_softmax(logits, -1).gather(-1, actions[..., None]).sum((1, 2))
        loss = ppo_reverse_loss(log_prob, old_log_prob64.to(dtype), advantages64.to(dtype), 0.2, -1.0)
        (grad,) = th.autograd.grad(loss, logits)
        results.append((loss.double(), grad.double()))
    (loss32, grad32), (loss64, grad64) = results
    # reference written out: -mean(m * A * Z * (1 - pi) / pi_old)
    with th.no_grad():
        log_prob = th.log_softmax(logits64, -1).gather(-1, actions[..., None]).sum((1, 2))
        ratio = th.exp(log_prob - old_log_prob64)
        _, m = clipped_surrogate(advantages64, ratio, 0.2)
        expected = (m * advantages64 * (1 - th.exp(log_prob)) / th.exp(old_log_prob64)).mean()
    assert th.allclose(loss64, expected, rtol=1e-10)
    assert th.allclose(loss32, loss64, rtol=1e-5)
    assert th.isfinite(grad32).all()
    assert th.allclose(grad32, grad64, rtol=1e-4, atol=1e-6 * grad64.abs().max().item())


def test_reverse_loss_sign_moves_policy_with_the_advantage():
    """With Z < 0, minimizing the reverse loss raises pi where A > 0 and lowers it where A < 0."""
    log_prob = th.log(th.tensor([0.3, 0.3])).requires_grad_(True)
    advantages = th.tensor([1.0, -1.0])
    (grad,) = th.autograd.grad(a2c_reverse_loss(log_prob, advantages, -1.0), log_prob)
    assert grad[0] < 0 < grad[1]
    # |Z| * A * (1 - pi), averaged: 2 * (1.0 * 0.7 + 0.5 * 0.7) / 2
    value = a2c_reverse_loss(log_prob, th.tensor([1.0, 0.5]), -2.0)
    assert th.allclose(value, th.tensor(1.05))


def test_clipped_surrogate_is_sb3_loss_and_mask_is_where_min_picks_unclipped():
    advantages = th.tensor([1.0, 1.0, -1.0, -1.0, 1.0, -1.0, 0.0])
    ratio = th.tensor([1.5, 0.5, 1.5, 0.5, 1.1, 0.9, 3.0], requires_grad=True)
    # A>0: unclipped chosen iff r <= 1.2; A<0: iff r >= 0.8; A=0: both equal
    expected = th.tensor([False, True, True, False, True, True, True])
    loss, mask = clipped_surrogate(advantages, ratio, 0.2)
    assert th.equal(mask, expected)
    assert not mask.requires_grad
    # -mean(min(A*r, A*clip(r))) written out by hand
    by_hand = -th.tensor([1.2, 0.5, -1.5, -0.8, 1.1, -0.9, 0.0]).mean()
    assert th.allclose(loss, by_hand)


def test_token_level_padding_mask():
    gen = th.Generator().manual_seed(3)
    log_prob = -th.rand(4, 7, generator=gen, dtype=th.float64).requires_grad_(True)
    old_log_prob = log_prob.detach() - 0.1 * th.randn(4, 7, generator=gen, dtype=th.float64)
    advantages = th.randn(4, 7, generator=gen, dtype=th.float64)
    mask = th.ones(4, 7, dtype=th.bool)
    mask[0, 5:] = False
    mask[2, 1:] = False

    loss = ppo_reverse_loss(log_prob, old_log_prob, advantages, 0.2, -1.0, mask=mask)
    valid = ppo_reverse_loss(log_prob[mask], old_log_prob[mask], advantages[mask], 0.2, -1.0)
    assert th.allclose(loss, valid)
    (grad,) = th.autograd.grad(loss, log_prob)
    assert th.all(grad[~mask] == 0)
    assert th.allclose(
        a2c_reverse_loss(log_prob, advantages, -1.0, mask=mask), a2c_reverse_loss(log_prob[mask], advantages[mask])
    )
    assert th.allclose(masked_mean(advantages, mask), advantages[mask].mean())


def test_sign_flips():
    raw = th.tensor([1.0, 2.0, 3.0, 10.0, -1.0, -4.0, -5.0])
    normalized = (raw - 2.5) / 4.0
    # 1 and 2 turn negative; 3, 10, -4, -5 keep their sign; -1 stays negative
    assert th.equal(sign_flips(raw, normalized), th.tensor([True, True, False, False, False, False, False]))
    assert th.equal(sign_flips(-raw, (-raw + 2.5) / 4.0), th.tensor([True, True, False, False, False, False, False]))
    # a zero on either side has no sign to flip
    assert not sign_flips(th.tensor([0.0, 0.0, -1.0, 2.0]), th.tensor([-0.5, 0.5, 0.0, 0.0])).any()


@pytest.mark.parametrize("weights_shape, values_shape", [((5,), (5,)), ((5,), (3, 5)), ((3, 5), (5,)), ((3, 5), (3, 5))])
def test_weighted_sum_is_the_sum_of_the_products_for_broadcastable_shapes(weights_shape, values_shape):
    generator = th.Generator().manual_seed(3)
    weights = th.randn(weights_shape, generator=generator, dtype=th.float64)
    values = th.randn(values_shape, generator=generator, dtype=th.float64)
    expected = math.fsum((weights.numpy() * values.numpy()).ravel().tolist())
    assert _weighted_sum(weights, values).item() == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_weighted_sum_of_two_vectors_is_one_dot_product_in_the_graph():
    """The loss's usual case (one-dimensional batches) costs one ``dot`` node, not a product and a sum."""
    values = th.randn(7, requires_grad=True)
    total = _weighted_sum(th.randn(7), values)
    assert type(total.grad_fn).__name__ == "DotBackward0"
    assert [type(node).__name__ for node, _ in total.grad_fn.next_functions if node is not None] == ["AccumulateGrad"]


BOTH_ZERO_HINT = "Set alpha > 0 or beta > 0."


@pytest.mark.parametrize(
    "alpha, beta, rce_z, error, message",
    [
        (True, 1.0, -1.0, TypeError, "`alpha` must be a real number (a Python or NumPy int/float); got True of type bool."),
        (0.5, "1", -1.0, TypeError, "`beta` must be a real number (a Python or NumPy int/float); got '1' of type str."),
        (0.5, 1.0, None, TypeError, "`rce_z` must be a real number (a Python or NumPy int/float); got None of type NoneType."),
        (-0.1, 1.0, -1.0, ValueError, "`alpha` must be a finite number >= 0 (it weights a loss term); got -0.1."),
        (0.5, float("inf"), -1.0, ValueError, "`beta` must be a finite number >= 0 (it weights a loss term); got inf."),
        (0, 0.0, -1.0, ValueError, "`alpha` and `beta` are both 0: the policy would get no gradient. " + BOTH_ZERO_HINT),
        (
            0.5,
            1.0,
            0.0,
            ValueError,
            "`rce_z` must be a finite negative number (it replaces log 0 in the reverse cross-entropy; "
            "the paper uses -1.0); got 0.0.",
        ),
    ],
)
def test_bad_coefficients_get_the_whole_message(alpha, beta, rce_z, error, message):
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        check_symmetric_coefficients(alpha, beta, rce_z)


@pytest.mark.parametrize(
    "alpha, beta, rce_z, match",
    [
        (-0.1, 1.0, -1.0, "alpha"),
        (0.5, -1.0, -1.0, "beta"),
        (0.0, 0.0, -1.0, "both 0"),
        (0.5, 1.0, 0.0, "rce_z"),
        (0.5, 1.0, 2.0, "rce_z"),
        (0.5, 1.0, float("-inf"), "rce_z"),
        (float("nan"), 1.0, -1.0, "alpha"),
    ],
)
def test_bad_coefficients_are_refused(alpha, beta, rce_z, match):
    with pytest.raises(ValueError, match=match):
        check_symmetric_coefficients(alpha, beta, rce_z)


def _reference_terms(kind, logits, actions, advantages, old_log_prob, clip_range, rce_z, mask):
    """Both terms by explicit enumeration of the other actions, through torch.distributions only."""
    log_prob = _torch_joint_log_prob(kind, logits, actions)
    other = _explicit_other_prob(kind, logits, actions)
    valid = th.ones_like(advantages) if mask is None else mask.to(advantages.dtype)
    if clip_range is None:
        rl = -(advantages * log_prob * valid).sum() / valid.sum()
        reverse = (-advantages * rce_z * other * valid).sum() / valid.sum()
        return rl, reverse
    ratio = th.exp(log_prob - old_log_prob)
    clipped = th.clamp(ratio, 1 - clip_range, 1 + clip_range)
    in_range = (ratio >= 1 - clip_range) & (ratio <= 1 + clip_range)
    m = (in_range | (advantages * ratio <= advantages * clipped)).detach().to(logits.dtype)
    rl = -(th.min(advantages * ratio, advantages * clipped) * valid).sum() / valid.sum()
    reverse = (-m * advantages * rce_z * other / th.exp(old_log_prob) * valid).sum() / valid.sum()
    return rl, reverse


# alpha=1, beta=0 takes the parent's own expression; other alphas scale it
COEFFICIENT_SETS = [(0.5, 1.0, -1.0), (0.0, 2.0, -6.0), (1.0, 0.0, -1.0), (0.3, 0.0, -1.0), (2.0, 0.0, -1.0)]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("family", ["clipped", "policy_gradient"])
@pytest.mark.parametrize("alpha, beta, rce_z", COEFFICIENT_SETS)
@pytest.mark.parametrize("padded", [False, True])
def test_symmetric_policy_loss_against_enumeration(kind, family, alpha, beta, rce_z, padded):
    """Value, logged terms and gradient of alpha * L_rl + beta * L_reverse, with and without a padding mask."""
    clip_range = 0.2 if family == "clipped" else None
    logits, actions, advantages, old_log_prob = _batch(kind, seed=2)
    mask = (th.arange(BATCH) % 5 != 0) if padded else None
    # Padded entries hold garbage that must not leak into any term
    if padded:
        advantages = th.where(mask, advantages, 1e3)
    logits = logits.clone().requires_grad_(True)
    log_prob = _sb3_distribution(kind, logits).log_prob(actions)
    if padded:
        log_prob = th.where(mask, log_prob, -th.inf)
    loss_fn = SymmetricPolicyLoss(alpha, beta, rce_z)
    if family == "clipped":
        ratio = th.exp(log_prob - old_log_prob)
        terms = loss_fn.clipped(advantages, ratio, old_log_prob, clip_range, mask=mask)
    else:
        terms = loss_fn.policy_gradient(advantages, log_prob, mask=mask)
    # through a factor, as the total loss of train() would scale it: the backward must apply the incoming gradient
    (grad,) = th.autograd.grad(3.0 * terms.loss, logits)

    ref_logits = logits.detach().clone().requires_grad_(True)
    rl, reverse = _reference_terms(kind, ref_logits, actions, advantages, old_log_prob, clip_range, rce_z, mask)
    (ref_grad,) = th.autograd.grad(3.0 * (alpha * rl + beta * reverse), ref_logits)

    assert th.allclose(terms.loss, alpha * rl + beta * reverse, rtol=0, atol=1e-12)
    assert th.allclose(terms.policy_loss, rl, rtol=0, atol=1e-12)
    assert th.allclose(terms.reverse_loss, reverse, rtol=0, atol=1e-12)
    assert not terms.reverse_loss.requires_grad
    assert th.allclose(grad, ref_grad, rtol=0, atol=1e-12)
    assert grad.abs().max() > 1e-4
    assert loss_fn.stats()["reverse_loss"] == pytest.approx(reverse.item(), rel=0, abs=1e-12)


@pytest.mark.parametrize("padded", [False, True])
def test_symmetric_policy_loss_alpha_one_beta_zero_is_the_parents_expression(padded):
    """The graph and value at alpha=1, beta=0 are SB3's (PPO) and sb3-contrib's (RecurrentPPO) own, bit for bit."""
    logits, actions, advantages, old_log_prob = _batch("categorical", seed=3)
    logits = logits.float().requires_grad_(True)
    advantages, old_log_prob = advantages.float(), old_log_prob.float()
    mask = (th.arange(BATCH) % 3 != 0) if padded else None
    ratio = th.exp(_sb3_distribution("categorical", logits).log_prob(actions) - old_log_prob)
    terms = SymmetricPolicyLoss(1.0, 0.0, -1.0).clipped(advantages, ratio, old_log_prob, 0.2, mask=mask)
    minimum = th.min(advantages * ratio, advantages * th.clamp(ratio, 0.8, 1.2))
    parent = -th.mean(minimum[mask]) if padded else -minimum.mean()
    assert th.equal(terms.loss, parent)
    (ours,) = th.autograd.grad(terms.loss, logits, retain_graph=True)
    (theirs,) = th.autograd.grad(parent, logits)
    assert th.equal(ours, theirs)

    a2c_terms = SymmetricPolicyLoss(1.0, 0.0, -1.0).policy_gradient(advantages, old_log_prob)
    assert th.equal(a2c_terms.loss, -(advantages * old_log_prob).mean())


def test_symmetric_policy_loss_sign_flip_statistic():
    raw = th.tensor([10.0, 1.0, 0.5, -1.0])
    normalized = (raw - raw.mean()) / (raw.std() + 1e-8)  # the mean is 2.625: 1.0 and 0.5 turn negative
    ratio, old_log_prob = th.ones(4, requires_grad=True), th.zeros(4)
    loss_fn = SymmetricPolicyLoss(0.5, 1.0, -1.0)
    loss_fn.clipped(normalized, ratio, old_log_prob, 0.2, raw)
    loss_fn.clipped(raw, ratio, old_log_prob, 0.2, raw)  # not normalized: not counted
    assert loss_fn.stats()["adv_sign_flip_fraction"] == pytest.approx(0.5)
    assert SymmetricPolicyLoss(0.5, 1.0, -1.0).stats() == {}


@pytest.mark.parametrize("family", ["clipped", "policy_gradient"])
def test_sign_flip_statistic_counts_only_valid_samples(family):
    raw = th.tensor([10.0, 1.0, 0.5, -1.0, 3.0, -2.0])
    mask = th.tensor([True, True, True, True, False, False])
    valid = raw[mask]
    normalized = th.zeros_like(raw)
    # padded entries hold values that would count as flipped (3 -> -3, -2 -> 2)
    normalized[mask], normalized[~mask] = (valid - valid.mean()) / (valid.std() + 1e-8), -raw[~mask]
    loss_fn = SymmetricPolicyLoss(0.5, 1.0, -1.0)
    log_prob = th.zeros(6, requires_grad=True)
    if family == "clipped":
        loss_fn.clipped(normalized, th.exp(log_prob), log_prob.detach(), 0.2, raw, mask=mask)
    else:
        loss_fn.policy_gradient(normalized, log_prob, raw, mask=mask)
    # of the 4 valid samples, 1.0 and 0.5 turn negative (the mean is 2.625)
    assert loss_fn.stats()["adv_sign_flip_fraction"] == pytest.approx(0.5)


def test_stats_average_the_minibatches_and_name_the_keys():
    loss_fn = SymmetricPolicyLoss(0.5, 1.0, -1.0)
    log_prob = th.full((4,), math.log(0.5), requires_grad=True)
    # not normalized: reverse losses mean(-A * Z * (1 - pi)) = 0 and 0.5, averaged; no sign flips counted
    for advantages in (th.zeros(4), th.ones(4)):
        loss_fn.policy_gradient(advantages, log_prob)
    assert loss_fn.stats() == {"reverse_loss": pytest.approx(0.25), "adv_sign_flip_fraction": 0.0}
    # normalized minibatches of different sizes: the fraction is over all their samples
    loss_fn = SymmetricPolicyLoss(0.5, 1.0, -1.0)
    for raw in (th.tensor([10.0, 1.0, 0.5, -1.0]), th.tensor([2.0, 1.0])):
        normalized = (raw - raw.mean()) / (raw.std() + 1e-8)
        loss_fn.policy_gradient(normalized, th.zeros(len(raw), requires_grad=True), raw)
    # 1.0 and 0.5 flip in the first, 1.0 in the second: 3 of 6
    stats = loss_fn.stats()
    assert list(stats) == ["reverse_loss", "adv_sign_flip_fraction"] and stats["adv_sign_flip_fraction"] == pytest.approx(0.5)
