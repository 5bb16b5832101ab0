from sb3_symmetric.common.minatar import MinAtarCNN, MinAtarPolicy, register_minatar_envs
from sb3_symmetric.common.wrappers import DiscretizeAction

__all__ = ["DiscretizeAction", "MinAtarCNN", "MinAtarPolicy", "register_minatar_envs"]
