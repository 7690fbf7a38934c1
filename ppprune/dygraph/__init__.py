"""Dygraph filter pruners: trace a Layer, plan with the static core, shrink the Layer in place."""
from .pruners import FilterPruner, FPGMFilterPruner, L1NormFilterPruner, L2NormFilterPruner

__all__ = ["FilterPruner", "FPGMFilterPruner", "L1NormFilterPruner", "L2NormFilterPruner"]
