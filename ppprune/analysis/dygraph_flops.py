"""FLOPs of a dygraph Layer: multiply-adds of its convolutions and matmuls (fc), per sample.

The Layer is traced (as the dygraph pruners do) and counted on the traced program's recorded shapes.
"""
import numpy as np

from ..core.graph import FORWARD, view_of


def dygraph_flops(model, input_shape):
    """Multiply-adds of one sample through `model` for an input of `input_shape` (e.g. [1, 3, 224, 224])."""
    from ..dygraph.trace import trace

    return program_flops(trace(model, input_shape).program)


def program_flops(program):
    """Conv and matmul multiply-adds of `program` per sample (the unknown batch dim counts as one)."""
    view = view_of(program)
    total = 0
    for op in view.ops:
        if op.kind != FORWARD:
            continue
        if op.type in ("conv2d", "depthwise_conv2d"):
            f = view.shape(op.ins("filter")[0])
            total += _per_sample(view.shape(op.outs("out")[0])) * int(np.prod(f[1:]))
        elif op.type == "conv2d_transpose":
            f = view.shape(op.ins("filter")[0])
            x = (op.ins("x") or op.ins("input"))[0]
            total += _per_sample(view.shape(x)) * int(np.prod(f[1:]))
        elif op.type == "matmul":
            x, y = view.shape(op.ins("x")[0]), view.shape(op.ins("y")[0])
            k = x[-2] if op.attr("transpose_x") else x[-1]
            total += _per_sample(view.shape(op.outs("out")[0])) * k
    return total


def _per_sample(shape):
    """Elements of one sample of an output (dim 0 is the batch)."""
    return int(np.prod([max(d, 1) for d in shape[1:]]))
