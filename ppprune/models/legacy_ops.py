"""Building legacy-IR programs through paddle 3.3.1's C++-bound functions.

`paddle.matmul`, `paddle.multiply`, `F.sigmoid`, `Tensor.sum`, ... are bound straight to `_C_ops`, which
takes dygraph tensors and PIR values only: under `OldIrGuard` they fail with "argument must be Value, but
got Variable". A forward that must also build legacy programs (a detector's head, assigner and losses)
runs inside `legacy_ops()`, which, only while a legacy program is being built, routes those names to the
legacy ops (whose gradients the legacy backward knows). PIR and dygraph are untouched.
"""
import contextlib

import paddle
from paddle.base.framework import Variable
from paddle.base.layer_helper import LayerHelper


def _append(op_type, inputs, attrs=None):
    helper = LayerHelper(op_type)
    out = helper.create_variable_for_type_inference(inputs["X"].dtype)
    helper.append_op(type=op_type, inputs={k: [v] for k, v in inputs.items()}, outputs={"Out": [out]}, attrs=attrs or {})
    return out


def _unary(op_type):
    return lambda x, name=None: _append(op_type, {"X": x})


def _elementwise(op_type):
    return lambda x, y, name=None: _append(op_type, {"X": x, "Y": y}, {"axis": -1})


def _matmul(x, y, transpose_x=False, transpose_y=False, name=None):
    return _append("matmul_v2", {"X": x, "Y": y}, {"trans_x": transpose_x, "trans_y": transpose_y})


def _sum(x, axis=None, dtype=None, keepdim=False, name=None):
    if dtype is not None:
        x = x.astype(dtype)
    dims = [] if axis is None else [axis] if isinstance(axis, int) else list(axis)
    return _append("reduce_sum", {"X": x}, {"dim": dims, "keep_dim": keepdim, "reduce_all": axis is None})


LEGACY = {"sigmoid": _unary("sigmoid"), "sqrt": _unary("sqrt"), "floor": _unary("floor"), "round": _unary("round"),
          "multiply": _elementwise("elementwise_mul"), "maximum": _elementwise("elementwise_max"),
          "minimum": _elementwise("elementwise_min"), "matmul": _matmul, "sum": _sum}


@contextlib.contextmanager
def legacy_ops():
    """While building a legacy program: paddle.<op>, F.sigmoid and Variable.<op> append legacy ops."""
    if paddle.in_dynamic_mode() or paddle.framework.in_pir_mode():
        yield
        return
    targets = [(owner, name) for owner in (paddle, Variable) for name in LEGACY] + [(paddle.nn.functional, "sigmoid")]
    saved = [(owner, name, getattr(owner, name)) for owner, name in targets if hasattr(owner, name)]
    try:
        for owner, name, _ in saved:
            setattr(owner, name, LEGACY[name])
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)
