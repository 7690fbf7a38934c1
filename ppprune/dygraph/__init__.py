"""Dygraph filter pruners: trace a Layer, plan with the static core, shrink the Layer in place; and its FLOPs."""
from .flops import dygraph_flops
from .pruners import FilterPruner, FPGMFilterPruner, L1NormFilterPruner, L2NormFilterPruner

__all__ = ["dygraph_flops", "FilterPruner", "FPGMFilterPruner", "L1NormFilterPruner", "L2NormFilterPruner"]
