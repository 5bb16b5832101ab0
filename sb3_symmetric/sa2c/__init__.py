from sb3_symmetric.sa2c.sa2c import SymA2C

__all__ = ["SymA2C"]
