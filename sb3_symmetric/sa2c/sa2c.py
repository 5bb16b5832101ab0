from typing import Any, ClassVar, TypeVar

import torch as th
from gymnasium import spaces
from stable_baselines3 import A2C
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import explained_variance
from torch.nn import functional as F

from sb3_symmetric.common.base import SymmetricLossMixin
from sb3_symmetric.losses import SymmetricPolicyLoss

SelfSymA2C = TypeVar("SelfSymA2C", bound="SymA2C")


class SymA2C(SymmetricLossMixin, A2C):
    """
    Symmetric A2C (SA2C): A2C's policy-gradient loss plus the reverse RL loss.

    ``loss = alpha * L_pg + beta * L_reverse + vf_coef * L_value + ent_coef * L_entropy`` with
    ``L_reverse = mean(-A * Z * (1 - pi))`` (see :func:`sb3_symmetric.losses.a2c_reverse_loss`).
    Paper: Byun & Perrault, "Symmetric Reinforcement Learning Loss for Robust Learning on Diverse Tasks
    and Model Scales", ICML 2025, https://arxiv.org/abs/2405.17618

    Takes every argument of :class:`stable_baselines3.A2C`, in the same order, plus the three below.
    Needs a discrete action space (Discrete, MultiDiscrete, MultiBinary); wrap continuous envs in
    :class:`sb3_symmetric.DiscretizeAction`. ``alpha=1, beta=0`` is A2C exactly.

    :param policy: The policy model to use (MlpPolicy, CnnPolicy, MultiInputPolicy)
    :param env: The environment to learn from (if registered in Gym, can be str)
    :param alpha: Weight of the policy-gradient (ordinary RL) term, ``>= 0``.
        Default 0.5: the paper's released Atari settings (``docs/paper.rst``, "Hyperparameters").
    :param beta: Weight of the reverse RL term, ``>= 0`` (``alpha`` and ``beta`` not both 0).
        Default 1.0: the paper's released Atari settings (``docs/paper.rst``, "Hyperparameters").
    :param rce_z: ``Z``, the finite negative constant that replaces ``log 0`` in the reverse cross-entropy.
        Default -1.0: every released script of the paper (``docs/paper.rst``, "Formulas").
    :param kwargs: see :class:`stable_baselines3.A2C` for ``learning_rate``, ``n_steps``, ``gamma``,
        ``gae_lambda``, ``ent_coef``, ``vf_coef``, ``max_grad_norm``, ``rms_prop_eps``, ``use_rms_prop``,
        ``use_sde``, ``sde_sample_freq``, ``rollout_buffer_class``, ``rollout_buffer_kwargs``,
        ``normalize_advantage``, ``stats_window_size``, ``tensorboard_log``, ``policy_kwargs``, ``verbose``,
        ``seed``, ``device`` and ``_init_setup_model``.
    """

    parent_name: ClassVar[str] = "A2C"

    def __init__(
        self,
        policy: str | type[ActorCriticPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 7e-4,
        n_steps: int = 5,
        gamma: float = 0.99,
        gae_lambda: float = 1.0,
        ent_coef: float = 0.0,
        vf_coef: float = 0.5,
        max_grad_norm: float = 0.5,
        rms_prop_eps: float = 1e-5,
        use_rms_prop: bool = True,
        use_sde: bool = False,
        sde_sample_freq: int = -1,
        rollout_buffer_class: type[RolloutBuffer] | None = None,
        rollout_buffer_kwargs: dict[str, Any] | None = None,
        normalize_advantage: bool = False,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
        alpha: float = 0.5,
        beta: float = 1.0,
        rce_z: float = -1.0,
    ):
        self._set_symmetric_coefficients(alpha, beta, rce_z)
        super().__init__(
            policy,
            env,
            learning_rate=learning_rate,
            n_steps=n_steps,
            gamma=gamma,
            gae_lambda=gae_lambda,
            ent_coef=ent_coef,
            vf_coef=vf_coef,
            max_grad_norm=max_grad_norm,
            rms_prop_eps=rms_prop_eps,
            use_rms_prop=use_rms_prop,
            use_sde=use_sde,
            sde_sample_freq=sde_sample_freq,
            rollout_buffer_class=rollout_buffer_class,
            rollout_buffer_kwargs=rollout_buffer_kwargs,
            normalize_advantage=normalize_advantage,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            seed=seed,
            device=device,
            _init_setup_model=_init_setup_model,
        )

    def train(self) -> None:
        """
        Update policy using the currently gathered
        rollout buffer (one gradient step over whole data).

        A2C's ``train()`` with the policy term scaled by ``alpha`` and ``beta * L_reverse`` added.
        """
        # Switch to train mode (this affects batch norm / dropout)
        self.policy.set_training_mode(True)

        # Update optimizer learning rate
        self._update_learning_rate(self.policy.optimizer)
        symmetric_loss = SymmetricPolicyLoss(self.alpha, self.beta, self.rce_z)

        # This will only loop once (get all data in one go)
        for rollout_data in self.rollout_buffer.get(batch_size=None):
            actions = rollout_data.actions
            if isinstance(self.action_space, spaces.Discrete):
                # Convert discrete action from float to long
                actions = actions.long().flatten()

            values, log_prob, entropy = self.policy.evaluate_actions(rollout_data.observations, actions)
            values = values.flatten()

            # Normalize advantage (not present in the original implementation)
            advantages = rollout_data.advantages
            if self.normalize_advantage:
                advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)

            # Policy gradient loss (alpha * L_pg + beta * L_reverse; policy_loss is L_pg)
            symmetric_policy_loss, policy_loss, _ = symmetric_loss.policy_gradient(
                advantages, log_prob, rollout_data.advantages
            )

            # Value loss using the TD(gae_lambda) target
            value_loss = F.mse_loss(rollout_data.returns, values)

            # Entropy loss favor exploration
            if entropy is None:
                # Approximate entropy when no analytical form
                entropy_loss = -th.mean(-log_prob)
            else:
                entropy_loss = -th.mean(entropy)

            loss = symmetric_policy_loss + self.ent_coef * entropy_loss + self.vf_coef * value_loss

            # Optimization step
            self.policy.optimizer.zero_grad()
            loss.backward()

            # Clip grad norm
            th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
            self.policy.optimizer.step()

        explained_var = explained_variance(self.rollout_buffer.values.flatten(), self.rollout_buffer.returns.flatten())

        self._n_updates += 1
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/explained_variance", explained_var)
        self.logger.record("train/entropy_loss", entropy_loss.item())
        self.logger.record("train/policy_loss", policy_loss.item())
        self.logger.record("train/value_loss", value_loss.item())
        self._record_symmetric_stats(symmetric_loss)
        if hasattr(self.policy, "log_std"):
            self.logger.record("train/std", th.exp(self.policy.log_std).mean().item())

    def learn(
        self: SelfSymA2C,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 100,
        tb_log_name: str = "SymA2C",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfSymA2C:
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )
