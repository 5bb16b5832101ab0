"""Symmetric RL loss (SPPO, SA2C) for Stable-Baselines3 and sb3-contrib: Byun & Perrault, ICML 2025."""

from typing import Any

from sb3_symmetric.common.wrappers import DiscretizeAction
from sb3_symmetric.equivalence import ppo_equivalent
from sb3_symmetric.losses import (
    PolicyLossTerms,
    SymmetricPolicyLoss,
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
    "PolicyLossTerms",
    "RewardNoiseCallback",
    "SymA2C",
    "SymMaskablePPO",
    "SymPPO",
    "SymRecurrentPPO",
    "SymmetricPolicyLoss",
    "a2c_reverse_loss",
    "clipped_surrogate",
    "masked_mean",
    "other_action_prob",
    "ppo_equivalent",
    "ppo_reverse_loss",
    "sign_flips",
]

# The sb3-contrib algorithms load on first use: sb3-contrib is an optional dependency (extra "contrib")
_CONTRIB = {"SymRecurrentPPO": "sb3_symmetric.ppo_recurrent", "SymMaskablePPO": "sb3_symmetric.ppo_mask"}


def __getattr__(name: str) -> Any:
    if name in _CONTRIB:
        import importlib

        try:
            module = importlib.import_module(_CONTRIB[name])
        except ImportError as error:
            raise ImportError(f"{name} needs sb3-contrib: pip install 'sb3-symmetric[contrib]'") from error
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
