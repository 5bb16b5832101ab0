from sb3_symmetric.sppo.sppo import SymPPO

__all__ = ["SymPPO"]
