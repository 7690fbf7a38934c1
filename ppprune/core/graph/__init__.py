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


def feed_vars(program, names):
    """The input variables (legacy) or `pd_op.data` values (PIR) of `program` called `names`."""
    if _is_pir(program):  # pd_op.feed: a legacy model translated to PIR
        found = {op.str_attr("name"): op.result(0) for op in program.global_block().ops if op.name() in ("pd_op.data", "pd_op.feed")}
    else:
        found = {n: program.global_block().var(n) for n in names if program.global_block().has_var(n)}
    missing = [n for n in names if n not in found]
    if missing:
        raise KeyError(f"the program has no input named {', '.join(missing)}")
    return [found[n] for n in names]


def _is_pir(program):
    import paddle

    return isinstance(program, paddle.pir.Program)


__all__ = ["view_of", "clone", "feed_vars", "OpView", "FORWARD", "BACKWARD", "OPTIMIZER", "OTHER"]
