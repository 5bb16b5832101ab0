from sb3_symmetric.common.wrappers import DiscretizeAction

__all__ = ["DiscretizeAction"]
