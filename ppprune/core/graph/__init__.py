"""Graph views: one adapter per IR. Nothing outside this package touches `paddle.pir` or a ProgramDesc.

A view exposes a program's global block as ops with canonical type names (PIR spelling without the
`pd_op.` prefix and without the in-place `_` suffix) and canonical lower-case slot names, values as
hashable keys, their recorded shapes, producers and consumers, and the few edits pruning needs.
"""
from .base import OpView, FORWARD, BACKWARD, OPTIMIZER, OTHER


def view_of(program):
    """Return the graph view matching the program's IR."""
    if _is_pir(program):
        from .pir import PirView

        return PirView(program)
    from .legacy import LegacyView

    return LegacyView(program)


def clone(program):
    """Copy a program; return (copy, lookup) where lookup(v) finds a value (PIR) or variable (legacy) of
    the original program in the copy, so fetch targets built against the original still work."""
    if _is_pir(program):
        import paddle

        mapping = paddle.pir.IrMapping()
        copy = program.clone(mapping)
        return copy, mapping.look_up
    copy = program.clone()
    return copy, lambda var: copy.global_block().var(var if isinstance(var, str) else var.name)


def _is_pir(program):
    import paddle

    return isinstance(program, paddle.pir.Program)


__all__ = ["view_of", "clone", "OpView", "FORWARD", "BACKWARD", "OPTIMIZER", "OTHER"]
