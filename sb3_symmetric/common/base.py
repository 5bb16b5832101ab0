"""What SymPPO and SymA2C share besides the loss functions: coefficients, checks and policy aliases."""

from __future__ import annotations

from typing import Any, ClassVar

from stable_baselines3.common.policies import ActorCriticCnnPolicy, ActorCriticPolicy, BasePolicy, MultiInputActorCriticPolicy

from sb3_symmetric.common.checks import check_action_space
from sb3_symmetric.losses import SymmetricPolicyLoss, check_symmetric_coefficients


class SymmetricLossMixin:
    """
    Mixin placed before ``PPO`` / ``A2C``: holds ``alpha``, ``beta``, ``rce_z`` and refuses bad ones and non-discrete
    action spaces, at construction and in ``load()`` (both go through ``_setup_model``).
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": ActorCriticPolicy,
        "CnnPolicy": ActorCriticCnnPolicy,
        "MultiInputPolicy": MultiInputActorCriticPolicy,
    }
    alpha: float
    beta: float
    rce_z: float
    action_space: Any
    logger: Any

    def _set_symmetric_coefficients(self, alpha: float, beta: float, rce_z: float) -> None:
        check_symmetric_coefficients(alpha, beta, rce_z)
        # Plain floats: NumPy scalars would otherwise travel into the saved model and the logs
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.rce_z = float(rce_z)

    def _record_symmetric_stats(self, symmetric_loss: SymmetricPolicyLoss) -> None:
        """Log ``train/reverse_loss`` and ``train/adv_sign_flip_fraction`` (one host sync, after the update loop)."""
        for key, value in symmetric_loss.stats().items():
            self.logger.record(f"train/{key}", value)

    def _setup_model(self) -> None:
        # In load(), the coefficients and spaces come from the saved model
        check_symmetric_coefficients(self.alpha, self.beta, self.rce_z)
        check_action_space(type(self).__name__, self.action_space)
        super()._setup_model()  # type: ignore[misc]
