"""Write a plan's tensor changes into a scope: prune (or zero) tensors in place, atomically, and put
them back from a backup."""
import numpy as np

from . import tensors


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
