"""Carry a plan's cuts out on a static program: new recorded shapes, attributes and shape constants (and
the backward ops' copies of them), and initialisers of a startup program."""
from .graph import BACKWARD


def apply_program(view, cuts):
    """Give the program the new shapes and edits of a plan's `cuts` (made on this `view`)."""
    for key, shape in cuts.shapes.items():
        view.set_shape(key, shape)
    for e in cuts.edits:
        if e.kind == "attr":
            value = e.op.attr(e.name) - e.n
            for target in [e.op] + _paired_grads(view, e.op, e.name):
                view.set_attr(target, e.name, value)
        else:
            values = list(e.op.attr(e.name))
            values[e.pos] -= e.n
            view.set_const(e.op, e.name, values)
            for grad in _paired_grads(view, e.op, e.name):  # legacy grads copy the constant as an attribute
                view.set_attr(grad, e.name, values)


def _paired_grads(view, op, attr):
    """Backward ops of `op` that carry their own copy of attribute `attr` (e.g. groups)."""
    inputs = {k for ks in op.inputs.values() for k in ks} | {k for ks in op.outputs.values() for k in ks}
    found = []
    for k in inputs:
        for b in view.consumers.get(k, []):
            if b.kind == BACKWARD and b.type == op.type + "_grad" and b not in found and b.attr(attr) is not None:
                found.append(b)
    return found


def prune_startup(view, shapes):
    """Make a startup program create tensors of the pruned `shapes` ({persistable name: shape})."""
    return [name for name, shape in shapes.items() if view.resize_init(name, shape)]
