"""
The MinAtar network for SB3 actor-critic algorithms: :class:`MinAtarCNN` and :class:`MinAtarPolicy`.

MinAtar (Young & Tian 2019, arXiv 1903.03176; PyPI ``minatar``) is a 10x10 miniature of five Atari games with
``C`` boolean channels per cell. Its paper's network is one 3x3 convolution with 16 channels (stride 1) and a
128-unit layer, ReLU after each. Here that trunk is the features extractor, shared by actor and critic
(as the Atari CNN of ``CnnPolicy``), with the policy and value heads directly on its 128 features.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import gymnasium as gym
import torch as th
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.type_aliases import Schedule
from torch import nn

__all__ = ["MINATAR_GAMES", "MinAtarCNN", "MinAtarPolicy", "register_minatar_envs"]


class MinAtarCNN(BaseFeaturesExtractor):
    """
    MinAtar's network trunk: 3x3 conv (16 channels, stride 1), ReLU, flatten, linear to ``features_dim``, ReLU.

    :param observation_space: a ``Box`` of shape ``(height, width, channels)`` (MinAtar's channels-last layout;
        MinAtar's ``bool`` observations reach the network as 0.0 / 1.0)
    :param features_dim: width of the last layer; 128 in the MinAtar paper
    :param n_filters: channels of the convolution; 16 in the MinAtar paper
    """

    def __init__(self, observation_space: gym.Space, features_dim: int = 128, n_filters: int = 16) -> None:
        if not isinstance(observation_space, gym.spaces.Box) or len(observation_space.shape) != 3:
            raise ValueError(
                f"MinAtarCNN needs a Box observation space of shape (height, width, channels), as MinAtar's "
                f"gymnasium envs give (e.g. MinAtar/Breakout-v1 after minatar.gym.register_envs()); got {observation_space}."
            )
        height, width, channels = observation_space.shape
        if height < 3 or width < 3:
            raise ValueError(f"MinAtarCNN's 3x3 convolution needs at least 3x3 cells; got {height}x{width}.")
        super().__init__(observation_space, features_dim)
        self.conv = nn.Sequential(nn.Conv2d(channels, n_filters, kernel_size=3, stride=1), nn.ReLU(), nn.Flatten())
        self.linear = nn.Sequential(nn.Linear(n_filters * (height - 2) * (width - 2), features_dim), nn.ReLU())

    def forward(self, observations: th.Tensor) -> th.Tensor:
        # channels-last (batch, height, width, channels) -> channels-first for Conv2d
        return self.linear(self.conv(observations.permute(0, 3, 1, 2)))


class MinAtarPolicy(ActorCriticPolicy):
    """
    ``ActorCriticPolicy`` with MinAtar's network: :class:`MinAtarCNN` shared by actor and critic, heads on its features.

    For PPO, A2C, SymPPO and SymA2C: ``PPO(MinAtarPolicy, "MinAtar/Breakout-v1")``; in RL-Zoo YAML
    ``policy: sb3_symmetric.common.minatar.MinAtarPolicy``. Every argument of ``ActorCriticPolicy`` is accepted
    (by keyword); only the two defaults below differ.

    :param observation_space: Observation space
    :param action_space: Action space
    :param lr_schedule: Learning rate schedule
    :param net_arch: hidden layers between the extractor and the heads; default ``[]`` (none, as MinAtar's network)
    :param features_extractor_class: default :class:`MinAtarCNN`
    :param kwargs: the other keyword arguments of :class:`stable_baselines3.common.policies.ActorCriticPolicy`
    """

    def __init__(
        self,
        observation_space: gym.spaces.Space,
        action_space: gym.spaces.Space,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        features_extractor_class: type[BaseFeaturesExtractor] = MinAtarCNN,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            net_arch=[] if net_arch is None else net_arch,
            features_extractor_class=features_extractor_class,
            **kwargs,
        )


# MinAtar's games and the ids its `minatar.gym.register_envs()` gives them (minatar 1.0.15)
MINATAR_GAMES = ("asterix", "breakout", "freeway", "seaquest", "space_invaders")


def register_minatar_envs() -> list[str]:
    """
    Register MinAtar's gymnasium ids, ``MinAtar/<Game>-v0`` (all 6 actions) and ``-v1`` (minimal action set).

    The same specs as ``minatar.gym.register_envs()``, but without importing ``minatar`` (which loads seaborn and
    pandas, seconds per process): ``gym.make`` imports it. Ids already registered are left as they are.

    :return: the ids registered now; empty when ``minatar`` is not installed (``pip install sb3-symmetric[envs]``)
    """
    if importlib.util.find_spec("minatar") is None:
        return []
    registered = []
    for game in MINATAR_GAMES:
        name = game.title().replace("_", "")
        for version, minimal in (("v0", False), ("v1", True)):
            env_id = f"MinAtar/{name}-{version}"
            if env_id not in gym.registry:
                gym.register(env_id, entry_point="minatar.gym:BaseEnv", kwargs=dict(game=game, use_minimal_action_set=minimal))
                registered.append(env_id)
    return registered
