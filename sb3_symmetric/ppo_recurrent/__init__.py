from sb3_symmetric.ppo_recurrent.ppo_recurrent import SymRecurrentPPO

__all__ = ["SymRecurrentPPO"]
