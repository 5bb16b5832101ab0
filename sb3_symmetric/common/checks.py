"""Input checks shared by the symmetric algorithms."""

from __future__ import annotations

from gymnasium import spaces

DISCRETE_ACTION_SPACES = (spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)


def check_action_space(algo_name: str, action_space: spaces.Space | None) -> None:
    """
    Refuse action spaces the symmetric loss is not defined for (it needs the probability of "every other action").

    :param algo_name: name of the algorithm, for the message
    :param action_space: the env's action space (``None`` while a model is loaded without env)
    :raises ValueError: for a ``Box`` or any other non-discrete space, saying how to discretize it
    """
    if action_space is None or isinstance(action_space, DISCRETE_ACTION_SPACES):
        return
    if isinstance(action_space, spaces.Box):
        raise ValueError(
            f"{algo_name} needs a discrete action space; got {action_space}. "
            "Wrap the env: DiscretizeAction(env, n_bins=11) "
            "(from sb3_symmetric; for a VecEnv: make_vec_env(..., wrapper_class=DiscretizeAction)), "
            "or in an RL-Zoo YAML: env_wrapper: [{sb3_symmetric.DiscretizeAction: {n_bins: 11}}]."
        )
    raise ValueError(f"{algo_name} supports Discrete, MultiDiscrete and MultiBinary action spaces; got {action_space}.")
