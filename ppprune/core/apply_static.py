"""Carry a plan out on a static Program (shapes, attributes, constants) and its Scope (tensors)."""
import numpy as np

from . import tensors
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


def scope_changes(view, removal):
    """{persistable name: {axis: indices}} for the tensors of the scope that a removal touches."""
    out = {}
    for (key, axis), idx in removal.items():
        name = view.persistable_name(key)
        if name is not None:
            out.setdefault(name, {})[axis] = np.asarray(idx, dtype=np.int64)
    return out


def apply_scope(scope, changes, place=None, lazy=False, backup=True):
    """Prune (or, lazily, zero) scope tensors in place by `changes` ({name: {axis: indices}}, a plan's
    `tensors`). Every new array is computed before the first is written, so a failure leaves the scope as
    it was. Returns {name: original array} ({} unless `backup`)."""
    jobs = []
    for name, axes in changes.items():
        axes = {axis: np.asarray(idx, dtype=np.int64) for axis, idx in axes.items()}
        var = scope.find_var(name)
        if var is None:  # e.g. optimizer state not created yet: nothing to prune
            continue
        tensor = var.get_tensor()
        if tensor._is_initialized():
            arr = tensors.read(tensor)
            kept = {} if lazy else {axis: _kept(arr.shape[axis], idx) for axis, idx in sorted(axes.items())}
            shape = [len(kept[a]) if a in kept else n for a, n in enumerate(arr.shape)]
            jobs.append((name, tensor, arr, axes, kept, shape))
    # The new arrays live in one arena: one allocation instead of one per tensor, which on large models
    # costs more in fresh-page faults than the copying itself.
    sizes = [-(-int(np.prod(shape)) * arr.itemsize // 64) * 64 for _, _, arr, _, _, shape in jobs]
    arena, offset, scratch = np.empty(sum(sizes), np.uint8), 0, (_Scratch(), _Scratch())
    originals, updates = {}, []
    for (name, tensor, arr, axes, kept, shape), size in zip(jobs, sizes):
        out = arena[offset:offset + size][:int(np.prod(shape)) * arr.itemsize].view(arr.dtype).reshape(shape)
        offset += size
        if lazy:
            np.copyto(out, arr)
            for axis, idx in axes.items():
                index = [slice(None)] * arr.ndim
                index[axis] = idx
                out[tuple(index)] = 0
        else:
            _write_kept(arr, kept, out, scratch)
        if backup:
            originals[name] = tensors.owned(arr)
        updates.append((tensor, out))
    for tensor, new in updates:
        tensor.set(new, place if place is not None else tensors.place_of(tensor))
    return originals


def _kept(n, removed):
    keep = np.ones(n, bool)
    keep[removed] = False
    return np.flatnonzero(keep)


class _Scratch:
    """A reusable buffer for the intermediates of tensors pruned on several axes."""

    def __init__(self):
        self.buf = np.empty(0, np.uint8)

    def array(self, shape, dtype):
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        if nbytes > self.buf.nbytes:
            self.buf = np.empty(nbytes, np.uint8)
        return self.buf[:nbytes].view(dtype).reshape(shape)


def _write_kept(arr, kept, out, scratch):
    """Write `arr` reduced to the `kept` indices ({axis: indices}) into `out`, through the two `scratch`
    buffers when several axes lose indices."""
    src = arr
    for i, (axis, keep) in enumerate(kept.items()):
        if i == len(kept) - 1:
            dst = out
        else:
            shape = list(src.shape)
            shape[axis] = len(keep)
            dst = scratch[i % 2].array(shape, arr.dtype)  # never the buffer `src` is in
        np.take(src, keep, axis=axis, out=dst, mode="clip")  # indices are valid; "clip" avoids a buffered copy
        src = dst


def restore_scope(scope, backup, place=None):
    """Put tensors saved by `apply_scope` (or `param_backup`) back, shapes included."""
    for name, arr in backup.items():
        tensor = scope.find_var(name).get_tensor()
        tensor.set(arr, place if place is not None else tensors.place_of(tensor))
