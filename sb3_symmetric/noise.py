"""Reward noise on training rewards only, placed where the paper puts it (``docs/paper.rst``, "Noise settings").

The paper perturbs the reward inside ``OnPolicyAlgorithm.collect_rollouts`` right after ``env.step``,
before timeout bootstrapping and the rollout buffer. SB3 calls ``callback.update_locals(locals())`` and
``callback.on_step()`` exactly there, so a callback that edits ``locals["rewards"]`` in place gives the
same placement for PPO, A2C, SymPPO and SymA2C without touching their code. Consequences:

- under ``VecNormalize`` the noise is added to the *normalized* reward (what ``env.step`` returns),
  and VecNormalize's running statistics never see it;
- on Atari, ``AtariWrapper`` clips rewards inside the env, so ``flip`` acts on the clipped reward;
- ``Monitor`` (inside the VecEnv) and every evaluation env report true returns.
"""

from __future__ import annotations

import numbers
import warnings
from typing import ClassVar

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

# Keeps the noise stream apart from the env and torch streams, which are seeded with the same integer.
_NOISE_STREAM_KEY = 0x5E0153


def _noise_generator(seed: int | None) -> np.random.Generator:
    """The noise stream of ``seed`` (fresh entropy for ``None``), apart from the env and torch streams of that seed."""
    return np.random.default_rng(None if seed is None else np.random.SeedSequence(seed, spawn_key=(_NOISE_STREAM_KEY,)))


class RewardNoiseCallback(BaseCallback):
    """
    Perturb the training rewards of an on-policy algorithm, as in the paper's noisy settings
    (``docs/paper.rst``, "Noise settings"). Pass it as ``callback=`` to ``learn()``, or as an RL-Zoo ``callback:`` entry::

        callback:
          - sb3_symmetric.noise.RewardNoiseCallback: {kind: flip, p: 0.1}

    :param kind: ``"flip"`` (with probability ``p`` per env and step, ``r <- 1 - r``; the paper's Atari
        setting), ``"gaussian"`` (add ``N(0, sigma^2)``; the paper's MuJoCo/Box2D setting), ``"uniform"``
        (add ``U(-v, v)``), or ``"none"`` (no change, for clean runs that share a config).
    :param p: flip probability in [0, 1]; only for ``kind="flip"`` (paper: 0.1).
    :param sigma: standard deviation >= 0; only for ``kind="gaussian"`` (paper: 0.05).
    :param v: half-width >= 0; only for ``kind="uniform"`` (unused in the paper's scripts).
    :param seed: seed of the noise generator. ``None`` uses the model's ``seed`` (fresh entropy if that
        is ``None`` too), so a seeded run is reproducible.
    :param verbose: verbosity level.
    """

    kinds: ClassVar[dict[str, str | None]] = {"none": None, "flip": "p", "gaussian": "sigma", "uniform": "v"}

    def __init__(
        self,
        kind: str = "none",
        p: float | None = None,
        sigma: float | None = None,
        v: float | None = None,
        seed: int | None = None,
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        if not isinstance(kind, str) or kind not in self.kinds:
            raise ValueError(f"Unknown reward noise kind {kind!r}; use one of {sorted(self.kinds)}.")
        for name, number in (("p", p), ("sigma", sigma), ("v", v)):
            if number is not None and (isinstance(number, (bool, np.bool_)) or not isinstance(number, numbers.Real)):
                raise TypeError(f"Reward noise {name} must be a real number, e.g. {name}=0.1; got {number!r}.")
        if seed is not None and (isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral) or seed < 0):
            raise ValueError(f"RewardNoiseCallback seed must be None or an integer >= 0; got {seed!r}.")
        given = {name: value for name, value in (("p", p), ("sigma", sigma), ("v", v)) if value is not None}
        wanted = self.kinds[kind]
        extra = sorted(set(given) - {wanted})
        if extra:
            raise ValueError(
                f"Reward noise kind {kind!r} takes " + (f"only {wanted!r}" if wanted else "no parameter") + f"; got {extra}."
            )
        if wanted is not None and wanted not in given:
            raise ValueError(f"Reward noise kind {kind!r} needs {wanted!r}, e.g. RewardNoiseCallback({kind!r}, {wanted}=0.1).")
        value = float(given[wanted]) if wanted is not None else 0.0
        if not np.isfinite(value):
            raise ValueError(f"Reward noise {wanted}={value} must be finite.")
        if kind == "flip" and not 0.0 <= value <= 1.0:
            raise ValueError(f"Flip probability p={value} must be in [0, 1].")
        if kind in ("gaussian", "uniform") and value < 0.0:
            raise ValueError(f"Reward noise {wanted}={value} must be >= 0.")
        self.kind = kind
        self.scale = value
        self.seed = None if seed is None else int(seed)
        self.rng: np.random.Generator | None = None

    def _init_callback(self) -> None:
        if not isinstance(self.model, OnPolicyAlgorithm):
            warnings.warn(
                f"RewardNoiseCallback is made for on-policy algorithms; {type(self.model).__name__} may store "
                "rewards elsewhere (e.g. the original reward under VecNormalize), so the noise may not reach training.",
                stacklevel=2,
            )
        # Created once, so a second learn() call continues the stream instead of replaying it.
        if self.rng is None:
            self.rng = _noise_generator(self.seed if self.seed is not None else self.model.seed)

    def perturb(self, rewards: np.ndarray) -> np.ndarray:
        """Add the noise to ``rewards`` in place and return it (the same array)."""
        if self.kind == "none":
            return rewards
        if not np.issubdtype(rewards.dtype, np.floating):
            raise TypeError(
                f"RewardNoiseCallback needs float rewards to edit in place; the VecEnv returned {rewards.dtype}. "
                "Make the env return float rewards (DummyVecEnv always does)."
            )
        if self.rng is None:
            self.rng = _noise_generator(self.seed)
        if self.kind == "flip":
            flip = self.rng.random(rewards.shape) < self.scale
            rewards[flip] = 1.0 - rewards[flip]
        elif self.kind == "gaussian":
            rewards += self.rng.normal(0.0, self.scale, size=rewards.shape)
        else:
            rewards += self.rng.uniform(-self.scale, self.scale, size=rewards.shape)
        return rewards

    def _on_step(self) -> bool:
        # In place: collect_rollouts passes this very array to the rollout buffer after on_step().
        self.perturb(self.locals["rewards"])
        return True

    def __repr__(self) -> str:
        name = self.kinds[self.kind]
        args = ", ".join([repr(self.kind)] + ([] if name is None else [f"{name}={self.scale}"]) + [f"seed={self.seed}"])
        return f"RewardNoiseCallback({args})"
