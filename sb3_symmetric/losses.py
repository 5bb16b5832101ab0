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
    "clipped_surrogate_mask",
    "masked_mean",
    "other_action_prob",
    "ppo_reverse_loss",
    "sign_flip_count",
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


def clipped_surrogate_mask(advantages: th.Tensor, ratio: th.Tensor, clip_range: float) -> th.Tensor:
    """
    Samples where PPO's clipped objective still passes gradient: ``A*r <= A*clip(r, 1-eps, 1+eps)`` (paper.md section 2).

    The official code also ORs in ``|r - 1| <= eps``; inside that interval ``clip(r) == r`` so the
    comparison already holds there, and this is the same set.

    :param advantages: (normalized) advantages
    :param ratio: ``pi / pi_old``
    :param clip_range: PPO's clipping parameter ``eps``
    :return: a boolean tensor, carrying no gradient
    """
    with th.no_grad():
        return advantages * ratio <= advantages * th.clamp(ratio, 1 - clip_range, 1 + clip_range)


def a2c_reverse_loss(
    log_prob: th.Tensor,
    advantages: th.Tensor,
    rce_z: float = -1.0,
    mask: th.Tensor | None = None,
) -> th.Tensor:
    """
    SA2C's reverse RL loss: ``mean(-A * Z * (1 - pi))`` (paper.md section 2, "SA2C").

    Its gradient is ``-|Z| * A * pi * grad(log pi)``.

    :param log_prob: log-probability of the taken action (joint over dimensions), with gradient
    :param advantages: advantages, as the A2C term uses them
    :param rce_z: ``Z``, the constant standing in for ``log 0`` (negative; the paper uses -1)
    :param mask: optional padding mask (token-level use)
    :return: a scalar tensor
    """
    return masked_mean(-rce_z * advantages * other_action_prob(log_prob), mask)


def ppo_reverse_loss(
    log_prob: th.Tensor,
    old_log_prob: th.Tensor,
    advantages: th.Tensor,
    clip_range: float,
    rce_z: float = -1.0,
    mask: th.Tensor | None = None,
    ratio: th.Tensor | None = None,
) -> th.Tensor:
    """
    SPPO's reverse RL loss: ``mean(-m * A * Z * (1 - pi) / pi_old)`` with ``m`` the clipped-surrogate mask (paper.md section 2).

    Its gradient is ``|Z|`` times the gradient of PPO's clipped surrogate on the same samples.

    :param log_prob: log-probability of the taken action under the current policy, with gradient
    :param old_log_prob: log-probability of the taken action under the behaviour policy
    :param advantages: advantages after any (per-minibatch) normalization
    :param clip_range: PPO's clipping parameter ``eps``
    :param rce_z: ``Z``, the constant standing in for ``log 0`` (negative; the paper uses -1)
    :param mask: optional padding mask (token-level use)
    :param ratio: ``exp(log_prob - old_log_prob)`` when the caller already has it (saves one op)
    :return: a scalar tensor
    """
    if ratio is None:
        ratio = th.exp(log_prob - old_log_prob)
    clipped_mask = clipped_surrogate_mask(advantages, ratio, clip_range)
    reverse = -rce_z * advantages * other_action_prob(log_prob) / th.exp(old_log_prob)
    return masked_mean(reverse * clipped_mask, mask)


def sign_flip_count(raw_advantages: th.Tensor, advantages: th.Tensor) -> th.Tensor:
    """
    Number of samples whose advantage sign normalization flipped (paper.md section 1, ``ChangedSignRatio``).

    :param raw_advantages: advantages before normalization
    :param advantages: advantages after normalization
    :return: a scalar tensor on the inputs' device (no host sync)
    """
    return ((raw_advantages > 0) != (advantages > 0)).sum()
