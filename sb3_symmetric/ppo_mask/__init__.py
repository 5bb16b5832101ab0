from sb3_symmetric.ppo_mask.ppo_mask import SymMaskablePPO

__all__ = ["SymMaskablePPO"]
