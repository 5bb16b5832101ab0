"""
The stock-PPO hyperparameters that train exactly like a given SymPPO: :func:`ppo_equivalent`.

SymPPO's reverse term has, on every sample, ``|Z|`` times the gradient of PPO's clipped surrogate (same mask,
same ratio), so the whole SymPPO gradient is ``w * grad(L_clip + vf_coef/w * L_value + ent_coef/w * L_entropy)``
with ``w = alpha + beta * |Z|``. Global-norm clipping at ``g`` of ``w * grad`` is ``w`` times clipping ``grad``
at ``g / w``; Adam-type optimizers see ``w * grad`` exactly as ``grad`` with ``eps / w``. Hence
``SymPPO(alpha, beta, Z; vf_coef, ent_coef, max_grad_norm, eps)`` and
``PPO(vf_coef/w, ent_coef/w, max_grad_norm/w, eps/w)`` take the same steps (derivation: ``docs/equivalence.rst``).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Iterable
from typing import Any

import torch as th

from sb3_symmetric.losses import check_symmetric_coefficients
from sb3_symmetric.sppo import SymPPO

__all__ = ["KNOBS", "ScaledSchedule", "policy_weight", "ppo_equivalent"]

KNOBS = ("vf_coef", "ent_coef", "max_grad_norm", "optimizer")

# Optimizers whose step is unchanged when the gradient is multiplied by w and the listed arguments are changed.
# "eps" / w: Adam-type updates m / (sqrt(v) + eps) (m and sqrt(v) both scale by w).
# "weight_decay" / w: coupled L2 decay adds weight_decay * p to the gradient, which must scale with it.
# SGD has no normalisation: its learning rate takes the factor w instead (see _map_optimizer).
_EPS_OPTIMIZERS: dict[type[th.optim.Optimizer], bool] = {
    # optimizer class -> whether its weight decay is added to the gradient (coupled)
    th.optim.Adam: True,
    th.optim.AdamW: False,
    th.optim.RMSprop: True,
}


class ScaledSchedule:
    """
    A learning-rate schedule multiplied by a constant (picklable, so models that use it save and load).

    :param schedule: the original schedule: progress remaining (1 -> 0) to learning rate
    :param factor: the constant
    """

    def __init__(self, schedule: Callable[[float], float], factor: float) -> None:
        self.schedule = schedule
        self.factor = factor

    def __call__(self, progress_remaining: float) -> float:
        return self.factor * float(self.schedule(progress_remaining))

    def __repr__(self) -> str:
        return f"ScaledSchedule({self.schedule!r}, {self.factor!r})"


def policy_weight(alpha: float = 0.5, beta: float = 1.0, rce_z: float = -1.0) -> float:
    """
    ``w = alpha + beta * |Z|``: the factor by which SymPPO scales PPO's clipped-surrogate gradient.

    :param alpha: SymPPO's ``alpha`` (default as in :class:`sb3_symmetric.SymPPO`)
    :param beta: SymPPO's ``beta``
    :param rce_z: SymPPO's ``rce_z``
    :return: ``w > 0``
    """
    check_symmetric_coefficients(alpha, beta, rce_z)
    return float(alpha) + float(beta) * abs(float(rce_z))


def ppo_equivalent(
    alpha: float = 0.5,
    beta: float = 1.0,
    rce_z: float = -1.0,
    *,
    knobs: Iterable[str] | None = None,
    **ppo_kwargs: Any,
) -> dict[str, Any]:
    """
    Keyword arguments of stock ``PPO`` that train exactly like ``SymPPO(alpha=alpha, beta=beta, rce_z=rce_z, **ppo_kwargs)``.

    With ``w = alpha + beta * |rce_z|``: ``vf_coef / w``, ``ent_coef / w``, ``max_grad_norm / w`` and the optimizer
    rule below; every other argument is passed through unchanged (learning rate, clip ranges, ``target_kl``,
    schedules, network). Knobs not given take SymPPO's (= PPO's) defaults. The same keyword arguments fit
    sb3-contrib's ``RecurrentPPO`` and ``MaskablePPO``, whose loss and knobs are PPO's.

    Optimizer rule (``policy_kwargs["optimizer_class"]``, default Adam with ``eps=1e-5`` as SB3 sets it when
    ``optimizer_kwargs`` is not given):

    - ``Adam``, ``RMSprop``: ``eps / w`` and ``weight_decay / w`` (their decay is added to the gradient);
      ``Adam(decoupled_weight_decay=True)`` keeps its ``weight_decay``;
    - ``AdamW``: ``eps / w``, ``weight_decay`` unchanged (decoupled decay does not see the gradient);
    - ``SGD``: ``learning_rate * w`` (a schedule is wrapped in :class:`ScaledSchedule`) and ``weight_decay / w``.

    Any other optimizer raises ``ValueError``: its step may not be a function of ``w * grad`` that a change of
    its arguments can undo (e.g. SB3's ``RMSpropTFLike`` starts its square average at 1).

    :param alpha: SymPPO's ``alpha``, ``>= 0``
    :param beta: SymPPO's ``beta``, ``>= 0`` (``alpha`` and ``beta`` not both 0)
    :param rce_z: SymPPO's ``rce_z``, ``< 0``
    :param knobs: which of ``"vf_coef"``, ``"ent_coef"``, ``"max_grad_norm"``, ``"optimizer"`` to rescale;
        default all four, the exact equivalent. A subset gives the ablations that show which rescaling matters.
    :param ppo_kwargs: the keyword arguments SymPPO gets (besides ``alpha``, ``beta``, ``rce_z``)
    :return: keyword arguments for ``PPO`` (a new dict; ``policy_kwargs`` is copied, never modified)
    :raises ValueError: bad coefficients, an unknown knob, or an optimizer that has no such mapping
    """
    w = policy_weight(alpha, beta, rce_z)
    if knobs is None:
        selected = set(KNOBS)
    else:
        if isinstance(knobs, str):
            raise ValueError(f"`knobs` must be a collection of knob names, e.g. knobs=({knobs!r},); got the string {knobs!r}.")
        selected = set(knobs)
        unknown = sorted(selected - set(KNOBS))
        if unknown:
            raise ValueError(f"Unknown knob(s) {unknown}: `knobs` takes a subset of {list(KNOBS)}.")
    defaults = _sppo_defaults()
    kwargs = dict(ppo_kwargs)
    for name in ("vf_coef", "ent_coef", "max_grad_norm"):
        if name in selected:
            kwargs[name] = _number(name, kwargs.get(name, defaults[name])) / w
    if "optimizer" in selected:
        kwargs.update(_map_optimizer(w, kwargs.get("policy_kwargs"), kwargs.get("learning_rate", defaults["learning_rate"])))
    return kwargs


def _sppo_defaults() -> dict[str, Any]:
    parameters = inspect.signature(SymPPO.__init__).parameters
    return {name: parameters[name].default for name in ("vf_coef", "ent_coef", "max_grad_norm", "learning_rate")}


def _number(name: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a number to be rescaled; got {value!r}.") from None


def _map_optimizer(
    w: float, policy_kwargs: dict[str, Any] | None, learning_rate: float | Callable[[float], float]
) -> dict[str, Any]:
    if policy_kwargs is not None and not isinstance(policy_kwargs, dict):
        raise ValueError(f"`policy_kwargs` must be a dict to rescale the optimizer; got {type(policy_kwargs).__name__}.")
    policy_kwargs = copy.copy(policy_kwargs) if policy_kwargs is not None else {}
    optimizer_class = policy_kwargs.get("optimizer_class", th.optim.Adam)
    given = policy_kwargs.get("optimizer_kwargs")
    optimizer_kwargs = dict(given) if given is not None else {}
    # SB3's ActorCriticPolicy sets eps=1e-5 for Adam only when optimizer_kwargs is not given at all
    if given is None and optimizer_class is th.optim.Adam:
        optimizer_kwargs["eps"] = 1e-5
    defaults = _optimizer_defaults(optimizer_class)
    out: dict[str, Any] = {}

    if optimizer_class in _EPS_OPTIMIZERS:
        optimizer_kwargs["eps"] = _number("eps", optimizer_kwargs.get("eps", defaults["eps"])) / w
        coupled = _EPS_OPTIMIZERS[optimizer_class] and not optimizer_kwargs.get("decoupled_weight_decay", False)
    elif optimizer_class is th.optim.SGD:
        if callable(learning_rate):
            out["learning_rate"] = ScaledSchedule(learning_rate, w)
        else:
            out["learning_rate"] = _number("learning_rate", learning_rate) * w
        coupled = True
    else:
        name = getattr(optimizer_class, "__qualname__", repr(optimizer_class))
        raise ValueError(
            f"ppo_equivalent cannot map the optimizer {name}: the exact equivalent is known for torch.optim "
            f"Adam, AdamW, RMSprop and SGD. Use one of those in policy_kwargs['optimizer_class'], leave the optimizer "
            f"out of the mapping with knobs=('vf_coef', 'ent_coef', 'max_grad_norm') (then it is not exact), "
            f"or train SymPPO itself."
        )
    if coupled and "weight_decay" in optimizer_kwargs:
        optimizer_kwargs["weight_decay"] = _number("weight_decay", optimizer_kwargs["weight_decay"]) / w
    policy_kwargs["optimizer_class"] = optimizer_class
    policy_kwargs["optimizer_kwargs"] = optimizer_kwargs
    out["policy_kwargs"] = policy_kwargs
    return out


def _optimizer_defaults(optimizer_class: type) -> dict[str, Any]:
    try:
        parameters = inspect.signature(optimizer_class.__init__).parameters  # type: ignore[misc]
    except (TypeError, ValueError):
        return {}
    return {name: p.default for name, p in parameters.items() if p.default is not inspect.Parameter.empty}
