"""What a plan's removal implies beyond the tensors its walk reached: gradients and optimizer state that
follow them, the new recorded shapes, and the scope tensors that lose entries. Decided here, applied by
`program_edit` (the program) and `scope_write` (the scope)."""
import numpy as np

from .graph import BACKWARD, OPTIMIZER


def extend_to_training(view, removal):
    """Gradients and optimizer state follow their forward tensors: a pruned weight's `@GRAD`, velocity
    and moments lose the same indices, or training would continue silently on misaligned state."""
    out = dict(removal)
    by_key = {}
    for (key, axis), idx in removal.items():
        by_key.setdefault(key, []).append((axis, idx))
    for grad, fwd in view.grad_mirror().items():
        for axis, idx in by_key.get(fwd, []):
            out[(grad, axis)] = idx
            by_key.setdefault(grad, []).append((axis, idx))
    for op in view.ops:  # update arithmetic (weight decay, clipping): an output shaped like a pruned input follows it
        if op.kind != BACKWARD or op.type.endswith("_grad"):
            continue
        sources = [k for ks in op.inputs.values() for k in ks if k in by_key]
        for k in (k for ks in op.outputs.values() for k in ks):
            src = next((s for s in sources if view.shape(s) == view.shape(k)), None)
            if src is not None and k not in by_key:
                for axis, idx in by_key[src]:
                    out[(k, axis)] = idx
                by_key[k] = list(by_key[src])
    for op in view.ops:
        if op.kind != OPTIMIZER:
            continue
        (param,) = op.ins("param")
        shape = view.shape(param)
        for keys in list(op.inputs.values()) + list(op.outputs.values()):
            for k in keys:
                if k != param and view.shape(k) == shape:
                    for axis, idx in by_key.get(param, []):
                        out[(k, axis)] = idx
    return out


def new_shapes(view, removal):
    """{key: shape after pruning} for every value whose recorded shape changes."""
    dec = {}
    for (key, axis), idx in removal.items():
        dec.setdefault(key, {})[axis] = len(idx)
    shapes = {}
    for key, axes in dec.items():
        shape = view.shape(key)
        if shape is None:
            continue
        new = list(shape)
        for axis, n in axes.items():
            if axis < len(new) and new[axis] > 0:
                new[axis] -= n
        if new != shape:
            shapes[key] = new
    return shapes


def scope_changes(view, removal):
    """{persistable name: {axis: indices}} for the tensors of the scope that a removal touches."""
    out = {}
    for (key, axis), idx in removal.items():
        name = view.persistable_name(key)
        if name is not None:
            out.setdefault(name, {})[axis] = np.asarray(idx, dtype=np.int64)
    return out
