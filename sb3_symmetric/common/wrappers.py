"""Action discretization for continuous control (docs/paper.rst, "Continuous actions")."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class DiscretizeAction(gym.ActionWrapper):
    """
    Turn a bounded ``Box`` action space into ``MultiDiscrete([n_bins] * dim)``.

    Bin ``k`` of a dimension maps to ``low + k * (high - low) / (n_bins - 1)``: ``n_bins`` evenly spaced
    values from ``low`` to ``high``, both included. The paper discretizes every MuJoCo / Box2D task
    into 11 bins per dimension (docs/paper.rst, "Continuous actions"). For a vectorized env, pass it as
    ``make_vec_env(env_id, wrapper_class=DiscretizeAction, wrapper_kwargs=dict(n_bins=11))``.

    :param env: environment with a bounded ``Box`` action space
    :param n_bins: number of values per action dimension, ``>= 2`` (paper: 11)
    """

    def __init__(self, env: gym.Env, n_bins: int = 11) -> None:
        super().__init__(env)
        box = env.action_space
        if not isinstance(box, spaces.Box):
            raise ValueError(f"DiscretizeAction needs a Box action space; got {box}. Discrete spaces need no wrapper.")
        if not (np.all(np.isfinite(box.low)) and np.all(np.isfinite(box.high))):
            raise ValueError(
                f"DiscretizeAction needs a bounded Box (finite low and high); got {box}. "
                "Rescale or clip the actions to a finite range first (e.g. gymnasium.wrappers.RescaleAction / ClipAction)."
            )
        if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 2:
            raise ValueError(f"`n_bins` must be an integer >= 2 (the paper uses 11); got {n_bins!r}.")
        self.n_bins = int(n_bins)
        self._box_shape = box.shape
        low = box.low.reshape(-1).astype(np.float64)
        high = box.high.reshape(-1).astype(np.float64)
        # (n_bins, dim) table of the action values, in the Box's dtype
        self.bin_values = np.linspace(low, high, self.n_bins).astype(box.dtype)
        self._dims = np.arange(low.size)
        self.action_space = spaces.MultiDiscrete(np.full(low.size, self.n_bins, dtype=np.int64))

    def action(self, action: np.ndarray) -> np.ndarray:
        """
        :param action: one bin index per action dimension
        :return: the continuous action of those bins, in the wrapped env's Box shape
        """
        index = np.asarray(action, dtype=np.int64).reshape(-1)
        return self.bin_values[index, self._dims].reshape(self._box_shape)
