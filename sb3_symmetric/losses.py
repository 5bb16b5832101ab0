"""The symmetric RL loss as pure tensor functions (no Stable-Baselines3 import).

Every caller shares these: ``SymPPO.train()``, ``SymA2C.train()`` and token-level code such as
language-model fine-tuning, where ``log_prob`` holds one log-probability per token and ``mask`` marks
the valid (non-padding) tokens. Formulas follow the official implementation of
Byun & Perrault, "Symmetric Reinforcement Learning Loss for Robust Learning on Diverse Tasks and
Model Scales" (ICML 2025, arXiv 2405.17618), as recorded in ``docs/paper.rst``.

Notation: ``pi`` is the probability of the *taken* action (the joint probability, i.e. the product
over dimensions, for multi-dimensional actions), ``other = 1 - pi`` the probability of every other
action, ``Z = rce_z < 0`` the finite stand-in for ``log 0``.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, NamedTuple

import numpy as np
import torch as th

__all__ = [
    "PolicyLossTerms",
    "SymmetricPolicyLoss",
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
    :raises TypeError: for anything but a real number (``bool`` included: ``True`` is not a weight)
    :raises ValueError: with a message saying which value is wrong and what is expected
    """
    for name, value in (("alpha", alpha), ("beta", beta), ("rce_z", rce_z)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise TypeError(
                f"`{name}` must be a real number (a Python or NumPy int/float); got {value!r} of type {type(value).__name__}."
            )
    for name, value in (("alpha", alpha), ("beta", beta)):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"`{name}` must be a finite number >= 0 (it weights a loss term); got {value!r}.")
    if alpha == 0 and beta == 0:
        raise ValueError("`alpha` and `beta` are both 0: the policy would get no gradient. Set alpha > 0 or beta > 0.")
    if not math.isfinite(rce_z) or rce_z >= 0:
        raise ValueError(
            f"`rce_z` must be a finite negative number (it replaces log 0 in the reverse cross-entropy; "
            f"the paper uses -1.0); got {rce_z!r}."
        )


def masked_mean(values: th.Tensor, mask: th.Tensor | None = None) -> th.Tensor:
    """
    Mean of ``values``, over the entries where ``mask`` is true when a mask is given.

    ``sum(values * mask) / sum(mask)``: the token-level average of the RLHF implementation (``docs/paper.rst``, "Formulas").

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
    Probability of every action other than the taken one: ``other = 1 - exp(log_prob)`` (``docs/paper.rst``, "Formulas").

    :param log_prob: log-probability of the taken action (joint over action dimensions)
    :return: ``1 - pi``, differentiable with respect to ``log_prob``
    """
    return 1.0 - th.exp(log_prob)


def clipped_surrogate(advantages: th.Tensor, ratio: th.Tensor, clip_range: float) -> tuple[th.Tensor, th.Tensor]:
    """
    PPO's clipped surrogate ``-mean(min(A*r, A*clip(r, 1-eps, 1+eps)))`` and SPPO's reverse-term mask.

    See ``docs/paper.rst``, "Formulas".

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
    SA2C's reverse RL loss: ``mean(-A * Z * (1 - pi))`` (``docs/paper.rst``, "Formulas").

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
    SPPO's reverse RL loss: ``mean(-m * A * Z * (1 - pi) / pi_old)``, ``m`` the clipped-surrogate mask.

    See ``docs/paper.rst``, "Formulas".

    Its gradient is ``|Z|`` times the gradient of PPO's clipped surrogate on the same samples.
    Since ``(1 - pi) / pi_old = 1 / pi_old - r`` (``docs/paper.rst``, "Formulas"), it is evaluated as
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
    Which samples had their advantage sign flipped by normalization: ``raw * normalized < 0`` (``docs/paper.rst``, "Formulas").

    The official code logs their share as ``ChangedSignRatio``.

    :param raw_advantages: advantages before normalization
    :param advantages: advantages after normalization
    :return: a boolean tensor on the inputs' device (no host sync)
    """
    return raw_advantages * advantages < 0


class PolicyLossTerms(NamedTuple):
    """The named terms of :class:`SymmetricPolicyLoss` for one minibatch."""

    #: ``alpha * L_rl + beta * L_reverse``, with gradient: what replaces the parent's policy term in its total loss
    loss: th.Tensor
    #: ``L_rl``: PPO's clipped surrogate or A2C's policy-gradient loss, what the parent logs as its policy loss
    policy_loss: th.Tensor
    #: ``L_reverse``, without ``beta`` and without gradient
    reverse_loss: th.Tensor


def _weighted_clip_loss(
    ratio: th.Tensor, advantages: th.Tensor, clip_range: float, mask: th.Tensor | None
) -> tuple[th.Tensor, th.Tensor, th.Tensor | float]:
    """PPO's clipped surrogate (no gradient), the advantages where its ``min`` passes gradient, and ``1 / N``."""
    policy_loss_1 = advantages * ratio
    policy_loss_2 = advantages * th.clamp(ratio, 1 - clip_range, 1 + clip_range)
    unclipped_advantages = th.where(policy_loss_1 <= policy_loss_2, advantages, 0.0)
    surrogate = th.min(policy_loss_1, policy_loss_2)
    if mask is None:
        return -surrogate.mean(), unclipped_advantages, 1.0 / advantages.numel()
    mask = mask.bool()
    inverse_count = 1.0 / mask.sum(dtype=advantages.dtype)  # a tensor: no host sync
    # where, not a product: padded entries may hold anything, inf and nan included
    weights = th.where(mask, unclipped_advantages, 0.0)
    return -th.where(mask, surrogate, 0.0).sum() * inverse_count, weights, inverse_count


def _clipped_reverse_loss(
    ratio: th.Tensor, old_log_prob: th.Tensor, weights: th.Tensor, inverse_count: th.Tensor | float, rce_z: float
) -> th.Tensor:
    """SPPO's reverse loss from :func:`_weighted_clip_loss`'s weights: ``(1 - pi) / pi_old = 1 / pi_old - r``."""
    return _weighted_sum(weights, th.exp(-old_log_prob) - ratio) * (-rce_z * inverse_count)


class _SymmetricClippedLoss(th.autograd.Function):
    """``alpha * L_clip + beta * L_reverse`` as one node: its gradient with respect to the ratio is ``w`` times PPO's."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        ratio: th.Tensor,
        advantages: th.Tensor,
        old_log_prob: th.Tensor,
        clip_range: float,
        alpha: float,
        beta: float,
        rce_z: float,
        mask: th.Tensor | None,
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        clip_loss, weights, inverse_count = _weighted_clip_loss(ratio, advantages, clip_range, mask)
        reverse_loss = _clipped_reverse_loss(ratio, old_log_prob, weights, inverse_count, rce_z)
        # d(alpha * L_clip + beta * L_reverse) / dr = -(alpha + beta * |Z|) * m * A / N
        ctx.save_for_backward(weights * (-(alpha - beta * rce_z) * inverse_count))
        ctx.mark_non_differentiable(clip_loss, reverse_loss)
        return th.add(clip_loss * alpha, reverse_loss, alpha=beta), clip_loss, reverse_loss

    @staticmethod
    def backward(ctx: Any, grad_loss: th.Tensor, *_: Any) -> tuple[th.Tensor | None, ...]:  # type: ignore[override]
        (grad_ratio,) = ctx.saved_tensors
        return grad_ratio * grad_loss, None, None, None, None, None, None, None


def _symmetric_policy_gradient_loss(
    log_prob: th.Tensor, advantages: th.Tensor, alpha: float, beta: float, rce_z: float, mask: th.Tensor | None
) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
    """
    ``alpha * L_pg + beta * L_reverse`` as one dot product with ``log pi``: per sample, the gradient is
    ``w = alpha + beta * |Z| * pi`` times A2C's, and a constant carries the value (exact up to one rounding).

    A Python autograd node costs more than A2C's whole three-operation policy term, so the linear form is used here.
    """
    with th.no_grad():
        if mask is None:
            scaled_advantages = advantages * (-1.0 / advantages.numel())
        else:
            mask = mask.bool()
            scaled_advantages = th.where(mask, advantages, 0.0) * (-1.0 / mask.sum(dtype=advantages.dtype))
        detached_log_prob = log_prob if mask is None else th.where(mask, log_prob, 0.0)
        prob = th.exp(detached_log_prob)
        policy_loss = _weighted_sum(scaled_advantages, detached_log_prob)
        # mean(-A * Z * (1 - pi)) = -Z * sum(-A/N * (pi - 1))
        reverse_loss = _weighted_sum(scaled_advantages, prob - 1.0) * -rce_z
        # d(alpha * L_pg + beta * L_reverse) / d(log pi) = -(alpha + beta * |Z| * pi) * A / N
        weights = th.addcmul(scaled_advantages * alpha, scaled_advantages, prob, value=-beta * rce_z)
        offset = th.add(policy_loss * alpha, reverse_loss, alpha=beta) - _weighted_sum(weights, detached_log_prob)
    return (
        _weighted_sum(weights, log_prob if mask is None else th.where(mask, log_prob, 0.0)) + offset,
        policy_loss,
        reverse_loss,
    )


class SymmetricPolicyLoss:
    """
    The symmetric policy loss ``alpha * L_rl + beta * L_reverse`` (arXiv 2405.17618, section 3), with its statistics.

    One object per ``train()`` call: :meth:`clipped` (the PPO family) or :meth:`policy_gradient` (A2C) per minibatch
    returns the named terms, and :meth:`stats` gives the values to log, read with one host sync after the loop.
    The gradient of ``alpha * L_clip + beta * L_reverse`` with respect to the ratio is ``alpha + beta * |Z|`` times
    PPO's (``docs/paper.rst``, "Stock-PPO equivalent"): one autograd node whose forward returns the exact loss value
    and whose backward is a single multiplication. That of ``alpha * L_pg + beta * L_reverse`` with respect to
    ``log pi`` is ``alpha + beta * |Z| * pi`` times A2C's: one dot product with weights computed without gradient.
    With ``beta == 0`` the policy term is the parent's own expression, so ``alpha=1, beta=0`` is the parent bit for bit.

    :param alpha: weight of the ordinary RL term, ``>= 0``
    :param beta: weight of the reverse RL term, ``>= 0``; ``alpha`` and ``beta`` not both zero
    :param rce_z: ``Z``, the finite negative constant standing in for ``log 0``
    """

    def __init__(self, alpha: float, beta: float, rce_z: float) -> None:
        check_symmetric_coefficients(alpha, beta, rce_z)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.rce_z = float(rce_z)
        self._reverse_losses: list[th.Tensor] = []
        # (raw, normalized, padding mask) per normalized minibatch; compared once, in stats()
        self._advantages: list[tuple[th.Tensor, th.Tensor, th.Tensor | None]] = []

    def clipped(
        self,
        advantages: th.Tensor,
        ratio: th.Tensor,
        old_log_prob: th.Tensor,
        clip_range: float,
        raw_advantages: th.Tensor | None = None,
        mask: th.Tensor | None = None,
    ) -> PolicyLossTerms:
        """
        PPO's clipped surrogate with SPPO's reverse term ``mean(-m * A * Z * (1 - pi) / pi_old)``.

        :param advantages: advantages as PPO uses them (after per-minibatch normalization)
        :param ratio: ``pi / pi_old``, with gradient
        :param old_log_prob: log-probability of the taken action under the behaviour policy
        :param clip_range: PPO's clipping parameter ``eps``
        :param raw_advantages: advantages before normalization, for the sign-flip statistic
        :param mask: padding mask (RecurrentPPO's sequences, token-level use), true for valid samples
        :return: the named terms
        """
        if self.beta == 0:
            policy_loss_1 = advantages * ratio
            policy_loss_2 = advantages * th.clamp(ratio, 1 - clip_range, 1 + clip_range)
            if mask is None:
                policy_loss = -th.min(policy_loss_1, policy_loss_2).mean()
            else:
                policy_loss = -th.mean(th.min(policy_loss_1, policy_loss_2)[mask])
            with th.no_grad():
                _, weights, inverse_count = _weighted_clip_loss(ratio, advantages, clip_range, mask)
                reverse_loss = _clipped_reverse_loss(ratio, old_log_prob, weights, inverse_count, self.rce_z)
            loss = policy_loss if self.alpha == 1 else self.alpha * policy_loss
        else:
            loss, policy_loss, reverse_loss = _SymmetricClippedLoss.apply(
                ratio, advantages, old_log_prob, clip_range, self.alpha, self.beta, self.rce_z, mask
            )
        self._record(reverse_loss, advantages, raw_advantages, mask)
        return PolicyLossTerms(loss, policy_loss, reverse_loss)

    def policy_gradient(
        self,
        advantages: th.Tensor,
        log_prob: th.Tensor,
        raw_advantages: th.Tensor | None = None,
        mask: th.Tensor | None = None,
    ) -> PolicyLossTerms:
        """
        A2C's policy-gradient loss ``-mean(A * log pi)`` with SA2C's reverse term ``mean(-A * Z * (1 - pi))``.

        :param advantages: advantages as A2C uses them
        :param log_prob: log-probability of the taken action (joint over dimensions), with gradient
        :param raw_advantages: advantages before normalization, for the sign-flip statistic
        :param mask: padding mask, true for valid samples
        :return: the named terms
        """
        if self.beta == 0:
            policy_loss = -(advantages * log_prob).mean() if mask is None else -th.mean((advantages * log_prob)[mask])
            with th.no_grad():
                reverse_loss = a2c_reverse_loss(log_prob, advantages, self.rce_z, mask)
            loss = policy_loss if self.alpha == 1 else self.alpha * policy_loss
        else:
            loss, policy_loss, reverse_loss = _symmetric_policy_gradient_loss(
                log_prob, advantages, self.alpha, self.beta, self.rce_z, mask
            )
        self._record(reverse_loss, advantages, raw_advantages, mask)
        return PolicyLossTerms(loss, policy_loss, reverse_loss)

    def _record(
        self, reverse_loss: th.Tensor, advantages: th.Tensor, raw_advantages: th.Tensor | None, mask: th.Tensor | None
    ) -> None:
        self._reverse_losses.append(reverse_loss)
        # Only minibatches whose advantages were normalized can flip a sign
        if raw_advantages is not None and raw_advantages is not advantages:
            self._advantages.append((raw_advantages, advantages, mask))

    def stats(self) -> dict[str, float]:
        """
        The statistics of the minibatches seen so far, read from the device at once.

        :return: ``reverse_loss`` (``L_reverse`` without ``beta``, averaged over minibatches) and
            ``adv_sign_flip_fraction`` (share of samples whose advantage sign normalization flipped; 0 without normalization)
        """
        if not self._reverse_losses:
            return {}
        reverse_losses = self._reverse_losses
        values = reverse_losses[0] if len(reverse_losses) == 1 else th.stack(reverse_losses).mean()
        if not self._advantages:
            return {"reverse_loss": values.item(), "adv_sign_flip_fraction": 0.0}
        flips = [
            sign_flips(raw, normalized) if mask is None else sign_flips(raw, normalized)[mask]
            for raw, normalized, mask in self._advantages
        ]
        reverse_loss, flip_fraction = th.stack((values, th.cat(flips).to(values.dtype).mean())).tolist()
        return {"reverse_loss": reverse_loss, "adv_sign_flip_fraction": flip_fraction}
