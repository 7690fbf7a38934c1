"""Graph views: one adapter per IR. Nothing outside this package touches `paddle.pir` or a ProgramDesc.

A view exposes a program's global block as ops with canonical type names (PIR spelling without the
`pd_op.` prefix and without the in-place `_` suffix) and canonical lower-case slot names, values as
hashable keys, their recorded shapes, producers and consumers, and the few edits pruning needs.
"""
from .base import BACKWARD, FORWARD, OPTIMIZER, OTHER, GraphView, OpView


def view_of(program):
    """Return the graph view matching the program's IR."""
    return _view_class(program)(program)


def clone(program):
    """Copy a program; return (copy, lookup) where lookup(v) finds a value (PIR) or variable (legacy) of
    the original program in the copy, so fetch targets built against the original still work."""
    return _view_class(program).clone(program)


def feed_vars(program, names):
    """The input variables (legacy) or `pd_op.data` values (PIR) of `program` called `names`."""
    return _view_class(program).feed_vars(program, names)


def persistable_names(program):
    """Names of the persistable tensors a program reads or writes (parameters, BN stats, accumulators)."""
    return _view_class(program).persistable_names(program)


def _view_class(program):
    import paddle

    if isinstance(program, paddle.pir.Program):
        from .pir import PirView

        return PirView
    from .legacy import LegacyView

    return LegacyView


__all__ = ["view_of", "clone", "feed_vars", "persistable_names", "GraphView", "OpView", "FORWARD", "BACKWARD",
           "OPTIMIZER", "OTHER"]
