"""FLOPs and model size of a static program, read from the recorded shapes of its graph view.

Unit: multiply-adds (MACs), PaddleSlim's convention, per sample (a batch dimension of -1 counts as 1).

- conv2d / depthwise_conv2d: output elements x (input channels per group x kernel h x kernel w)
- conv2d_transpose: input elements x (output channels per group x kernel h x kernel w)
- matmul / mul (fc): output elements x the reduced dimension K
- with `only_conv=False` also one op per output element of batch_norm, elementwise arithmetic and
  activations, and per pooled input element of pool2d (kernel window x output elements).

Nothing else counts (reshapes, slices, concat, interpolation, roi_align, gather, softmax...). Pruned programs
record their exact shapes, so counting a pruned program gives its real cost.
"""
import numpy as np

from ..core.convs import CONV_TYPES
from ..core.errors import PruneError
from ..core.graph import FORWARD, view_of

_FC_OPS = ("matmul", "mul")
_PER_ELEMENT = frozenset((
    "batch_norm", "sync_batch_norm", "add", "subtract", "multiply", "divide",
    "relu", "relu6", "leaky_relu", "prelu", "sigmoid", "tanh", "swish", "silu", "hardswish", "hardsigmoid",
    "mish", "gelu", "elu",
))
# Every op type with a channel rule is either counted (COUNTED) or declared here as counting nothing, by
# choice: data movement, shape queries and control flow do no multiply-adds; the other element-wise ops,
# reductions and norms are not counted, as PaddleSlim does not (tests/core/test_how_to_add.py checks it).
COUNTED = frozenset(CONV_TYPES) | frozenset(_FC_OPS) | _PER_ELEMENT | {"pool2d"}
NOT_COUNTED = frozenset((
    "concat", "split", "split_with_num", "reshape", "flatten", "squeeze", "unsqueeze", "transpose", "assign",
    "identity", "cast", "pad", "pad3d", "dropout", "shape", "shape64", "if", "while", "select_input",
    "condition", "pixel_shuffle", "pixel_unshuffle", "nearest_interp", "bilinear_interp", "bicubic_interp",
    "abs", "brelu", "ceil", "celu", "clip", "exp", "floor", "hardtanh", "log", "logsigmoid", "selu", "sign",
    "softplus", "softsign", "sqrt", "square", "tanh_shrink", "thresholded_relu", "scale", "elementwise_pow",
    "maximum", "minimum", "add_n", "sum_op", "max_pool2d_with_index", "mean", "sum", "max", "min", "prod",
    "softmax", "log_softmax", "instance_norm", "group_norm", "layer_norm", "slice", "strided_slice", "roi_align",
    "gather",
))


def flops(program, detail=False, only_conv=False):
    """Multiply-adds of one sample through `program`'s forward ops (see the module doc for what counts).
    `only_conv=True` counts convolutions alone. With `detail=True` returns `(total, {layer: macs})`, a
    layer being named by its weight for conv/fc ops and `type#index` otherwise, in program order."""
    total, layers = count(view_of(program), only_conv=only_conv)
    return (total, layers) if detail else total


def count(view, shapes=None, only_conv=False):
    """(total, {layer: macs}) on a graph view; `shapes` ({key: shape}) overrides recorded shapes, which
    predicts the cost of a plan without applying it."""
    shapes = shapes or {}

    def shape(key):
        s = shapes.get(key)
        return list(s) if s is not None else view.shape(key)

    layers = {}
    for op in view.ops:
        if op.kind != FORWARD:
            continue
        if op.type in CONV_TYPES:
            macs = _conv(op, shape)
        elif only_conv:
            continue
        elif op.type in _FC_OPS:
            macs = _fc(op, shape)
        elif op.type in _PER_ELEMENT:
            macs = _numel(shape(op.outs("out")[0]), op)
        elif op.type == "pool2d":
            macs = _pool(op, shape)
        else:
            continue
        layers[_layer_name(view, op)] = int(macs)
    return sum(layers.values()), layers


def model_size(program, scope=None):
    """Number of parameter elements: from the scope's tensors when given (what is really stored), else
    from the program's recorded shapes."""
    view = view_of(program)
    total = 0
    for name in view.param_names():
        var = scope.find_var(name) if scope is not None else None
        if var is not None and var.get_tensor()._is_initialized():
            total += int(np.prod(var.get_tensor().shape()))
        else:
            total += int(np.prod(view.shape(view.param_key(name))))
    return total


def _conv(op, shape):
    if op.type == "conv2d_transpose":  # every input element is scattered through a kernel per output group
        x = op.ins("x") or op.ins("input")
        _, cout_g, kh, kw = shape(op.ins("filter")[0])
        return _numel(shape(x[0]), op) * cout_g * kh * kw
    _, cin_g, kh, kw = shape(op.ins("filter")[0])
    return _numel(shape(op.outs("out")[0]), op) * cin_g * kh * kw


def _fc(op, shape):
    x, y = shape(op.ins("x")[0]), shape(op.ins("y")[0])
    if op.type == "mul":
        k = y[0]
    elif len(x) == 1:
        k = x[0]
    else:
        k = x[-2] if op.attr("transpose_x") else x[-1]
    return _numel(shape(op.outs("out")[0]), op) * k


def _pool(op, shape):
    x, out = shape(op.ins("x")[0]), shape(op.outs("out")[0])
    if op.attr("global_pooling") or op.attr("adaptive"):
        return _numel(x, op)  # every input element is read once (adaptive windows tile the input)
    kernel = op.attr("kernel_size") or op.attr("ksize")
    return _numel(out, op) * int(np.prod(kernel))


def _numel(shape, op):
    dims = list(shape)
    if dims and dims[0] == -1:
        dims[0] = 1
    if any(d < 0 for d in dims):
        raise PruneError(
            f"cannot count FLOPs of {op}: a non-batch dimension is unknown ({shape}). Give the program's "
            f"input a fixed size (e.g. paddle.static.data('image', [None, 3, 224, 224]))."
        )
    return int(np.prod(dims))


def _layer_name(view, op):
    if op.type in CONV_TYPES:
        weight = op.ins("filter")[0]
    elif op.type in _FC_OPS:
        weight = op.ins("y")[0]
    else:
        weight = None
    name = view.persistable_name(weight) if weight is not None else None
    return name or f"{op.type}#{op.index}"
