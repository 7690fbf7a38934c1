"""The PaddleSlim-style static pruning API."""
from .pruner import Pruner

__all__ = ["Pruner"]
