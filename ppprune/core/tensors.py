"""Scope tensors as numpy without needless copies.

Copying every weight out of the scope before scoring or slicing it costs more than the pruning itself on
large models (fresh memory is page-faulted in), so CPU tensors are read as zero-copy views.
"""
import numpy as np

from .errors import PruneError


class _DLPack:
    """Just enough of the DLPack protocol for `np.from_dlpack` to view a Paddle DenseTensor."""

    __slots__ = ("tensor",)

    def __init__(self, tensor):
        self.tensor = tensor

    def __dlpack__(self, stream=None, **_):
        return self.tensor._to_dlpack()

    def __dlpack_device__(self):
        return (1, 0)  # kDLCPU


def read(tensor):
    """The tensor's values as numpy: a read-only view of a CPU tensor's memory, else a copy. A view is valid
    only until the tensor is next `set` (Paddle then overwrites that memory in place, or frees it): use it
    before, or copy it."""
    if tensor._place().is_cpu_place():
        try:
            return np.from_dlpack(_DLPack(tensor))
        except (TypeError, ValueError, RuntimeError, BufferError):  # dtypes numpy cannot view (bfloat16)
            pass
    return np.array(tensor)


def owned(arr):
    """`arr` itself if it owns its memory, else a copy that does (so it outlives the tensor it viewed)."""
    return arr if arr.flags.owndata else arr.copy()


def place_of(tensor):
    """The Paddle place a scope tensor lives on, to set its replacement there."""
    import paddle

    place = tensor._place()
    if place.is_gpu_place():
        return paddle.CUDAPlace(place.gpu_device_id())
    return paddle.CPUPlace()


def scope_reader(scope, view=None):
    """`read_tensor(name)`: a scope tensor as numpy, for the criteria; with `view`, each must have the shape
    the program records (a scope pruned already, or holding another model, would index out of range)."""
    def read_tensor(name):
        var = scope.find_var(name)
        if var is None:
            raise PruneError(f"'{name}' has no value in the scope: run the startup program or load weights first")
        key = view.param_key(name) if view is not None else None
        check_scope_tensor(name, var.get_tensor(), view.shape(key) if key is not None else None)
        return read(var.get_tensor())

    return read_tensor


def check_scope_tensor(name, tensor, shape):
    """Scope tensor `name` is initialised and, unless `shape` is None, has the program's `shape`."""
    if not tensor._is_initialized():
        raise PruneError(f"'{name}' is in the scope but was never initialised: run the startup program (or load "
                         "weights) into this scope before pruning")
    if shape is not None and list(tensor.shape()) != list(shape):
        raise PruneError(f"'{name}' has shape {list(tensor.shape())} in the scope but {list(shape)} in the "
                         "program: the scope was pruned already or holds another model's weights. Prune the "
                         "program this scope belongs to, or reload the weights")
