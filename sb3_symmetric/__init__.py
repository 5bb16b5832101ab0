"""Symmetric RL loss (SPPO, SA2C) for Stable-Baselines3: Byun & Perrault, ICML 2025."""

from sb3_symmetric.common.wrappers import DiscretizeAction
from sb3_symmetric.equivalence import ppo_equivalent
from sb3_symmetric.losses import (
    a2c_reverse_loss,
    clipped_surrogate,
    masked_mean,
    other_action_prob,
    ppo_reverse_loss,
    sign_flips,
)
from sb3_symmetric.noise import RewardNoiseCallback
from sb3_symmetric.sa2c import SymA2C
from sb3_symmetric.sppo import SymPPO

__version__ = "0.1.0"

__all__ = [
    "DiscretizeAction",
    "RewardNoiseCallback",
    "SymA2C",
    "SymPPO",
    "a2c_reverse_loss",
    "clipped_surrogate",
    "masked_mean",
    "other_action_prob",
    "ppo_equivalent",
    "ppo_reverse_loss",
    "sign_flips",
]
