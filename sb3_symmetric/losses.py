"""The symmetric RL loss as pure tensor functions (no Stable-Baselines3 import).

Every caller shares these: ``SymPPO.train()``, ``SymA2C.train()`` and token-level code such as
language-model fine-tuning, where ``log_prob`` holds one log-probability per token and ``mask`` marks
the valid (non-padding) tokens. Formulas follow the official implementation of
Byun & Perrault, "Symmetric Reinforcement Learning Loss for Robust Learning on Diverse Tasks and
Model Scales" (ICML 2025); section numbers refer to ``paper.md`` of the project.

Notation: ``pi`` is the probability of the *taken* action (the joint probability, i.e. the product
over dimensions, for multi-dimensional actions), ``other = 1 - pi`` the probability of every other
action, ``Z = rce_z < 0`` the finite stand-in for ``log 0``.
"""

from __future__ import annotations

import math

import torch as th

__all__ = [
    "a2c_reverse_loss",
    "check_symmetric_coefficients",
    "clipped_surrogate",
    "masked_mean",
    "other_action_prob",
    "ppo_reverse_loss",
    "sign_flips",
]


def check_symmetric_coefficients(alpha: float, beta: float, rce_z: float) -> None:
    """
    Refuse coefficients the symmetric loss is not defined for.

    :param alpha: weight of the ordinary RL term, ``>= 0``
    :param beta: weight of the reverse RL term, ``>= 0``; ``alpha`` and ``beta`` not both zero
    :param rce_z: the constant standing in for ``log 0``, finite and ``< 0``
    :raises ValueError: with a message saying which value is wrong and what is expected
    """
    for name, value in (("alpha", alpha), ("beta", beta)):
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"`{name}` must be a finite number >= 0 (it weights a loss term); got {value!r}.")
    if alpha == 0 and beta == 0:
        raise ValueError("`alpha` and `beta` are both 0: the policy would get no gradient. Set alpha > 0 or beta > 0.")
    if not isinstance(rce_z, (int, float)) or not math.isfinite(rce_z) or rce_z >= 0:
        raise ValueError(
            f"`rce_z` must be a finite negative number (it replaces log 0 in the reverse cross-entropy; "
            f"the paper uses -1.0); got {rce_z!r}."
        )


def masked_mean(values: th.Tensor, mask: th.Tensor | None = None) -> th.Tensor:
    """
    Mean of ``values``, over the entries where ``mask`` is true when a mask is given.

    ``sum(values * mask) / sum(mask)``: the token-level average of the RLHF implementation (paper.md section 2).

    :param values: per-sample (or per-token) values
    :param mask: optional padding mask of the same shape, 1/True for valid entries
    :return: a scalar tensor
    """
    if mask is None:
        return values.mean()
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum()


def other_action_prob(log_prob: th.Tensor) -> th.Tensor:
    """
    Probability of every action other than the taken one: ``other = 1 - exp(log_prob)`` (paper.md section 2).

    :param log_prob: log-probability of the taken action (joint over action dimensions)
    :return: ``1 - pi``, differentiable with respect to ``log_prob``
    """
    return 1.0 - th.exp(log_prob)


def clipped_surrogate(advantages: th.Tensor, ratio: th.Tensor, clip_range: float) -> tuple[th.Tensor, th.Tensor]:
    """
    PPO's clipped surrogate ``-mean(min(A*r, A*clip(r, 1-eps, 1+eps)))`` and SPPO's reverse-term mask (paper.md section 2).

    The mask is true where ``A*r <= A*clip(r)``: the samples where PPO's ``min`` picks the unclipped
    term and so still passes gradient. The official code also ORs in ``|r - 1| <= eps``; inside that
    interval ``clip(r) == r``, so the comparison already holds there and the set is the same.
    The loss is computed with exactly Stable-Baselines3's operations, so PPO's numbers are unchanged.

    :param advantages: (normalized) advantages
    :param ratio: ``pi / pi_old``
    :param clip_range: PPO's clipping parameter ``eps``
    :return: the clipped surrogate loss (scalar) and the boolean mask (no gradient)
    """
    policy_loss_1 = advantages * ratio
    policy_loss_2 = advantages * th.clamp(ratio, 1 - clip_range, 1 + clip_range)
    policy_loss = -th.min(policy_loss_1, policy_loss_2).mean()
    return policy_loss, policy_loss_1 <= policy_loss_2  # a comparison carries no gradient


def _mean_weights(values: th.Tensor, factor: float, mask: th.Tensor | None) -> th.Tensor:
    """``factor * values / N`` (or ``* mask / sum(mask)``): weights that turn a weighted sum into a (masked) mean."""
    if mask is None:
        return values * (factor / values.numel())
    mask = mask.to(values.dtype)
    return values * mask * (factor / mask.sum())


def _weighted_sum(weights: th.Tensor, values: th.Tensor) -> th.Tensor:
    """``sum(weights * values)``, one ``dot`` for the usual one-dimensional batch."""
    if weights.dim() == 1 and values.dim() == 1:
        return th.dot(weights, values)
    return (weights * values).sum()


def a2c_reverse_loss(
    log_prob: th.Tensor,
    advantages: th.Tensor,
    rce_z: float = -1.0,
    mask: th.Tensor | None = None,
    scale: float = 1.0,
) -> th.Tensor:
    """
    SA2C's reverse RL loss: ``mean(-A * Z * (1 - pi))`` (paper.md section 2, "SA2C").

    Its gradient is ``-|Z| * A * pi * grad(log pi)``. The advantages are constants, so the loss is
    evaluated as ``sum(w) - sum(w * pi)`` with ``w = -Z * A / N`` folded without gradient: the autograd
    graph holds only ``exp``, one dot product and one subtraction.

    :param log_prob: log-probability of the taken action (joint over dimensions), with gradient
    :param advantages: advantages, as the A2C term uses them
    :param rce_z: ``Z``, the constant standing in for ``log 0`` (negative; the paper uses -1)
    :param mask: optional padding mask (token-level use)
    :param scale: a factor applied to the result (the algorithms pass ``beta``, which saves a multiplication in the graph)
    :return: a scalar tensor, ``scale * L_reverse``
    """
    with th.no_grad():
        weights = _mean_weights(advantages, -rce_z * scale, mask)
        constant = weights.sum()
    return constant - _weighted_sum(weights, th.exp(log_prob))


def ppo_reverse_loss(
    log_prob: th.Tensor,
    old_log_prob: th.Tensor,
    advantages: th.Tensor,
    clip_range: float,
    rce_z: float = -1.0,
    mask: th.Tensor | None = None,
    clip_mask: th.Tensor | None = None,
    ratio: th.Tensor | None = None,
    scale: float = 1.0,
) -> th.Tensor:
    """
    SPPO's reverse RL loss: ``mean(-m * A * Z * (1 - pi) / pi_old)``, ``m`` the clipped-surrogate mask (paper.md section 2).

    Its gradient is ``|Z|`` times the gradient of PPO's clipped surrogate on the same samples.
    Since ``(1 - pi) / pi_old = 1 / pi_old - r`` (paper.md section 2), it is evaluated as
    ``sum(w / pi_old) - sum(w * r)`` with the constant weights ``w = -Z * m * A / N`` folded without
    gradient: the autograd graph adds one dot product and one subtraction to the ratio PPO already has.

    :param log_prob: log-probability of the taken action under the current policy, with gradient
    :param old_log_prob: log-probability of the taken action under the behaviour policy
    :param advantages: advantages after any (per-minibatch) normalization
    :param clip_range: PPO's clipping parameter ``eps``
    :param rce_z: ``Z``, the constant standing in for ``log 0`` (negative; the paper uses -1)
    :param mask: optional padding mask (token-level use)
    :param clip_mask: the mask of :func:`clipped_surrogate` when the caller already has it
    :param ratio: ``exp(log_prob - old_log_prob)`` when the caller already has it (the gradient then flows through it)
    :param scale: a factor applied to the result (the algorithms pass ``beta``, which saves a multiplication in the graph)
    :return: a scalar tensor, ``scale * L_reverse``
    """
    if ratio is None:
        ratio = th.exp(log_prob - old_log_prob)
    if clip_mask is None:
        _, clip_mask = clipped_surrogate(advantages, ratio, clip_range)
    with th.no_grad():
        weights = _mean_weights(advantages * clip_mask, -rce_z * scale, mask)
        constant = _weighted_sum(weights, th.exp(-old_log_prob))
    return constant - _weighted_sum(weights, ratio)


def sign_flips(raw_advantages: th.Tensor, advantages: th.Tensor) -> th.Tensor:
    """
    Which samples had their advantage sign flipped by normalization: ``raw * normalized < 0`` (paper.md section 1).

    The official code logs their share as ``ChangedSignRatio``.

    :param raw_advantages: advantages before normalization
    :param advantages: advantages after normalization
    :return: a boolean tensor on the inputs' device (no host sync)
    """
    return raw_advantages * advantages < 0
