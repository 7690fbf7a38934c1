"""Channel rules: how pruned channels flow through each op type. One small function per op type.

A rule is called as `rule(walk, op, key, axis, ch)` when channels `ch` of `key` (one of the op's inputs or
outputs) along `axis` are pruned. It tells the walk which other tensors of the op lose channels
(`walk.flow` for data the walk keeps following, `walk.side` for weights and statistics), which channels
must go together (`walk.atoms`), and which attributes or shape constants shrink (`walk.dec_attr`,
`walk.dec_const`). A rule that cannot follow the channels calls `walk.cannot(op, why)`.

Supporting a new op is one function here, registered with `@rule("op_type", ...)` (canonical PIR type).
"""
import numpy as np

RULES = {}


def rule(*types):
    def add(fn):
        for t in types:
            if t in RULES:
                raise KeyError(f"a channel rule for '{t}' is already registered ({RULES[t].__name__})")
            RULES[t] = fn
        return fn

    return add


def _channel_axis(op, rank):
    fmt = op.attr("data_format") or "NCHW"
    return rank - 1 if fmt in ("NHWC", "NDHWC", "NLC") else 1


def _share(walk, op, key, axis, ch, members):
    """All `members` ((key, axis, kind, tag)) index the same channels: entering one prunes the others."""
    if not any(k == key and a == axis for k, a, _, _ in members):
        walk.cannot(op, f"channels enter on axis {axis} of an input the rule does not couple")
    for k, a, kind, tag in members:
        if k == key and a == axis:
            continue
        (walk.flow if kind == "flow" else walk.side)(k, a, ch, tag)


# -- convolutions -------------------------------------------------------------------------------


@rule("conv2d", "depthwise_conv2d")
def conv2d(walk, op, key, axis, ch):
    x, f, out = op.ins("input")[0], op.ins("filter")[0], op.outs("out")[0]
    cout, cin_g = walk.shape(f)[:2]
    groups = op.attr("groups") or 1
    cax = _channel_axis(op, len(walk.shape(out)))
    if groups == 1:
        # Input channels and output channels are independent spaces.
        if (key, axis) in ((x, cax), (f, 1)):
            _share(walk, op, key, axis, ch, [(x, cax, "flow", None), (f, 1, "side", "filter_in")])
        else:
            _share(walk, op, key, axis, ch, [(out, cax, "flow", None), (f, 0, "side", "filter_out")])
        return
    # Grouped and depthwise: a group's inputs, filters and outputs go together, whole groups at a time.
    spaces = {(x, cax): (cin_g, "flow"), (f, 0): (cout // groups, "side"), (out, cax): (cout // groups, "flow")}
    tags = {(f, 0): "filter_out"}
    if (key, axis) not in spaces:
        walk.cannot(op, f"a grouped conv cannot lose channels on axis {axis} of its filter")
    block = spaces[(key, axis)][0]
    walk.atoms(key, axis, ch, block)
    group_ch = ch.blocks(block)
    for (k, a), (size, kind) in spaces.items():
        if (k, a) != (key, axis):
            (walk.flow if kind == "flow" else walk.side)(k, a, group_ch.expand(size), tags.get((k, a)))
    walk.dec_attr(op, "groups", group_ch)


@rule("conv2d_transpose")
def conv2d_transpose(walk, op, key, axis, ch):
    x, f, out = op.ins("x")[0] if op.ins("x") else op.ins("input")[0], op.ins("filter")[0], op.outs("out")[0]
    if (op.attr("groups") or 1) != 1:
        walk.cannot(op, "grouped conv2d_transpose is not supported")
    cax = _channel_axis(op, len(walk.shape(out)))
    if (key, axis) in ((x, cax), (f, 0)):
        _share(walk, op, key, axis, ch, [(x, cax, "flow", None), (f, 0, "side", "filter_in")])
    else:
        _share(walk, op, key, axis, ch, [(out, cax, "flow", None), (f, 1, "side", "filter_out")])


# -- normalization ------------------------------------------------------------------------------

_BN_SIDE = ("mean", "variance", "scale", "bias")
_BN_SIDE_OUT = ("mean_out", "variance_out", "saved_mean", "saved_variance")


@rule("batch_norm", "sync_batch_norm")
def batch_norm(walk, op, key, axis, ch):
    x, out = op.ins("x")[0], op.outs("out")[0]
    cax = _channel_axis(op, len(walk.shape(x)))
    members = [(x, cax, "flow", None), (out, cax, "flow", None)]
    for slot in _BN_SIDE:
        members += [(k, 0, "side", "bn_" + slot) for k in op.ins(slot)]
    for slot in _BN_SIDE_OUT:
        members += [(k, 0, "side", None) for k in op.outs(slot) if _static_dim(walk, k, 0)]
    _share(walk, op, key, axis, ch, members)


@rule("instance_norm")
def instance_norm(walk, op, key, axis, ch):
    x, y = op.ins("x")[0], op.outs("y")[0]
    members = [(x, 1, "flow", None), (y, 1, "flow", None)]
    members += [(k, 0, "side", None) for slot in ("scale", "bias") for k in op.ins(slot)]
    _share(walk, op, key, axis, ch, members)


@rule("group_norm")
def group_norm(walk, op, key, axis, ch):
    x, y = op.ins("x")[0], op.outs("y")[0]
    cax = _channel_axis(op, len(walk.shape(x)))
    groups = op.attr("groups")
    per_group = walk.shape(x)[cax] // groups
    members = [(x, cax, "flow"), (y, cax, "flow")] + [(k, 0, "side") for s in ("scale", "bias") for k in op.ins(s)]
    if not any(k == key and a == axis for k, a, _ in members):
        walk.cannot(op, f"group_norm statistics cannot be pruned directly (axis {axis})")
    walk.atoms(key, axis, ch, per_group)
    for k, a, kind in members:
        if (k, a) != (key, axis):
            (walk.flow if kind == "flow" else walk.side)(k, a, ch, None)
    group_ch = ch.blocks(per_group)
    for slot in ("mean", "variance"):
        for k in op.outs(slot):
            if _static_dim(walk, k, 1):
                walk.side(k, 1, group_ch, None)
    walk.dec_attr(op, "groups", group_ch)


def _static_dim(walk, key, axis):
    shape = walk.shape(key)
    return shape is not None and len(shape) > axis and shape[axis] > 0


# -- ops that keep the channel axis where it is -------------------------------------------------

_UNARY = (
    "relu", "relu6", "leaky_relu", "sigmoid", "tanh", "swish", "silu", "hardswish", "hardsigmoid", "mish",
    "gelu", "elu", "selu", "celu", "softplus", "softsign", "logsigmoid", "tanh_shrink", "hardtanh",
    "thresholded_relu", "exp", "abs", "sqrt", "square", "log", "dropout", "scale", "cast", "clip", "assign",
    "pool2d", "max_pool2d_with_index", "nearest_interp", "bilinear_interp", "bicubic_interp", "pad3d", "pad",
    "identity", "brelu", "floor", "ceil", "sign",
)


@rule(*_UNARY)
def unary(walk, op, key, axis, ch):
    """One data input; every output of the same rank keeps the same channels on the same axis."""
    x = next(ks[0] for s, ks in op.inputs.items() if ks and s in ("x", "input"))
    rank = len(walk.shape(x))
    members = [(x, axis, "flow", None)]
    for slot, keys in op.outputs.items():
        for k in keys:
            shape = walk.shape(k)
            if shape is not None and len(shape) == rank:
                if shape[axis] not in (-1, walk.shape(x)[axis]):
                    walk.cannot(op, f"axis {axis} changes size ({walk.shape(x)[axis]} -> {shape[axis]})")
                members.append((k, axis, "flow" if slot in ("out", "output") else "side", None))
    _share(walk, op, key, axis, ch, members)


@rule("prelu")
def prelu(walk, op, key, axis, ch):
    x, alpha, out = op.ins("x")[0], op.ins("alpha")[0], op.outs("out")[0]
    mode = op.attr("mode")
    if mode == "element":
        walk.cannot(op, "element-wise prelu weights are not supported")
    cax = _channel_axis(op, len(walk.shape(x)))
    if mode == "channel" and (key == alpha or axis == cax):
        alpha_axis = walk.shape(alpha).index(walk.shape(x)[cax])  # [C] or [1, C, 1, 1]
        members = [(x, cax, "flow", None), (out, cax, "flow", None), (alpha, alpha_axis, "side", None)]
    else:  # one shared slope, or an axis the slopes do not vary along
        members = [(x, axis, "flow", None), (out, axis, "flow", None)]
    _share(walk, op, key, axis, ch, members)


@rule("softmax", "log_softmax")
def softmax(walk, op, key, axis, ch):
    x, out = op.ins("x")[0], op.outs("out")[0]
    if axis == op.attr("axis") % len(walk.shape(x)):
        walk.cannot(op, "it normalizes over the pruned axis")
    _share(walk, op, key, axis, ch, [(x, axis, "flow", None), (out, axis, "flow", None)])


# -- broadcasting binary ops (residual adds, SE blocks, biases) ---------------------------------


@rule("add", "subtract", "multiply", "divide", "maximum", "minimum", "elementwise_pow")
def elementwise(walk, op, key, axis, ch):
    x, y, out = op.ins("x")[0], op.ins("y")[0], op.outs("out")[0]
    rank = len(walk.shape(out))
    legacy_axis = op.attr("axis")

    def offset(k):  # out axis = operand axis + offset
        r = len(walk.shape(k))
        if k == y and legacy_axis not in (None, -1) and r < rank:
            return legacy_axis
        return rank - r

    out_axis = axis + offset(key) if key != out else axis
    width = walk.shape(out)[out_axis]
    if key != out and walk.shape(key)[axis] == 1 and width != 1:
        return  # a size-1 operand broadcast over the channels ([N, 1, H, W] * [N, C, H, W]): it loses nothing
    members = [(out, out_axis, "flow", None)]
    for k in (x, y):
        a = out_axis - offset(k)
        shape = walk.shape(k)
        if 0 <= a < len(shape) and (shape[a] != 1 or width == 1):  # size 1 against more: broadcast
            members.append((k, a, "flow", None))
    _share(walk, op, key, axis, ch, members)


@rule("add_n", "sum_op")
def add_n(walk, op, key, axis, ch):
    members = [(k, axis, "flow", None) for k in op.ins("inputs") + op.ins("x")] + [(op.outs("out")[0], axis, "flow", None)]
    _share(walk, op, key, axis, ch, members)


# -- concat and split: offsets along the joined axis ----------------------------------------------


@rule("concat")
def concat(walk, op, key, axis, ch):
    xs, out = op.ins("x"), op.outs("out")[0]
    cat_axis = op.attr("axis") % len(walk.shape(out))
    if axis != cat_axis:
        _share(walk, op, key, axis, ch, [(k, axis, "flow", None) for k in xs + [out]])
        return
    offsets = np.cumsum([0] + [walk.shape(k)[cat_axis] for k in xs])
    if key == out:
        for k, lo, hi in zip(xs, offsets[:-1], offsets[1:]):
            walk.flow(k, axis, ch.window(lo, hi), None)
    else:  # a tensor may be concatenated with itself: every position it holds loses the channels
        for i in (i for i, k in enumerate(xs) if k == key):
            walk.flow(out, axis, ch.shift(offsets[i]), None)


@rule("split")
def split(walk, op, key, axis, ch):
    x, outs = op.ins("x")[0], op.outs("out")
    split_axis = op.attr("axis") % len(walk.shape(x))
    if axis != split_axis:
        _share(walk, op, key, axis, ch, [(k, axis, "flow", None) for k in [x] + outs])
        return
    offsets = np.cumsum([0] + [walk.shape(k)[split_axis] for k in outs])
    pieces = [(i, k, ch.window(lo, hi)) for i, (k, lo, hi) in enumerate(zip(outs, offsets[:-1], offsets[1:]))]
    if key != x:
        i = outs.index(key)
        walk.flow(x, axis, ch.shift(offsets[i]), None)
        pieces = [(i, key, ch)]
    for i, k, piece in pieces:
        if len(piece):
            if k != key:
                walk.flow(k, axis, piece, None)
            walk.dec_const(op, "sections", i, piece)


# -- ops that move the channel axis -------------------------------------------------------------


@rule("transpose")
def transpose(walk, op, key, axis, ch):
    x, out = op.ins("x")[0], op.outs("out")[0]
    perm = list(op.attr("perm"))
    other = (out, perm.index(axis)) if key == x else (x, perm[axis])
    walk.flow(other[0], other[1], ch, None)


# Stands in for an unknown (-1) dim when comparing products of shapes: a large prime that no real
# product of dims matches by accident, so a batch dim only ever matches a batch dim.
_UNKNOWN = 1_000_003


def _known(shape):
    return [_UNKNOWN if d < 0 else d for d in shape]


def _regroup(in_shape, out_shape, axis):
    """Where axis `axis` of a tensor lands after a reshape: (out_axis, k) where input channel c becomes
    output entries c*k .. c*k+k-1, or None when the reshape mixes that axis with others."""
    ins, outs = _known(in_shape), _known(out_shape)
    pre, size, post = int(np.prod(ins[:axis])), ins[axis], int(np.prod(ins[axis + 1:]))
    acc = 1
    for b, d in enumerate(outs):
        if acc == pre and d % size == 0 and post % (d // size) == 0 and int(np.prod(outs[b + 1:])) == post // (d // size):
            return b, d // size
        if acc > pre:
            return None
        acc *= d  # unit dims keep acc == pre: the channel axis may still come ([1,C,1,1] -> [1,C])
    return None


@rule("reshape", "flatten", "squeeze", "unsqueeze")
def reshape(walk, op, key, axis, ch):
    x, out = op.ins("x")[0], op.outs("out")[0]
    if key == x:
        where = _regroup(walk.shape(x), walk.shape(out), axis)
        if where is None:
            walk.cannot(op, f"it folds pruned axis {axis} of {walk.shape(x)} into other axes of {walk.shape(out)}")
        out_axis, k = where
        walk.flow(out, out_axis, ch.expand(k), None)
        if op.type == "reshape":
            shape_const = op.attr("shape")
            if shape_const is not None and shape_const[out_axis] > 0:
                walk.dec_const(op, "shape", out_axis, ch, per=k)
    else:
        where = _regroup(walk.shape(out), walk.shape(x), axis)
        if where is None or where[1] != 1:
            walk.cannot(op, f"channels would have to be regrouped from {walk.shape(out)} back to {walk.shape(x)}")
        walk.flow(x, where[0], ch, None)
        if op.type == "reshape":
            shape_const = op.attr("shape")
            if shape_const is not None and shape_const[axis] > 0:
                walk.dec_const(op, "shape", axis, ch)
    for k in op.outs("xshape"):  # legacy reshape2/flatten2 record [0] + input shape for their grads
        if key == x and walk.shape(k):
            walk.side(k, axis + 1, ch, None)


@rule("mean", "sum", "max", "min", "prod")
def reduce(walk, op, key, axis, ch):
    x, out = op.ins("x")[0], op.outs("out")[0]
    rank = len(walk.shape(x))
    dims = op.attr("axis")
    dims = list(range(rank)) if dims in (None, []) or op.attr("reduce_all") else [d % rank for d in dims]
    keep = bool(op.attr("keepdim"))
    if key == x:
        if axis in dims:
            walk.cannot(op, "it reduces over the pruned axis")
        walk.flow(out, axis if keep else axis - sum(d < axis for d in dims), ch, None)
    else:
        kept = [a for a in range(rank) if a not in dims]
        walk.flow(x, axis if keep else kept[axis], ch, None)


# -- fully connected heads ----------------------------------------------------------------------


@rule("matmul")
def matmul(walk, op, key, axis, ch):
    x, y, out = op.ins("x")[0], op.ins("y")[0], op.outs("out")[0]
    xr, yr, orank = len(walk.shape(x)), len(walk.shape(y)), len(walk.shape(out))
    x_k = xr - 2 if op.attr("transpose_x") else xr - 1
    y_k = yr - 1 if op.attr("transpose_y") else yr - 2
    y_n = yr - 2 if op.attr("transpose_y") else yr - 1
    x_m = xr - 1 if op.attr("transpose_x") else xr - 2
    if (key, axis) in ((x, x_k), (y, y_k)):
        _share(walk, op, key, axis, ch, [(x, x_k, "flow", None), (y, y_k, "side", "fc_in")])
    elif (key, axis) in ((y, y_n), (out, orank - 1)):
        _share(walk, op, key, axis, ch, [(y, y_n, "side", None), (out, orank - 1, "flow", None)])
    elif key == x and axis != x_m:  # batch axes of x pass straight to out
        walk.flow(out, axis + orank - xr, ch, None)
    elif key == out and axis < orank - 2:
        walk.flow(x, axis - (orank - xr), ch, None)
    else:
        walk.cannot(op, f"axis {axis} mixes rows of a matmul")


@rule("mul")
def mul(walk, op, key, axis, ch):
    """Legacy fc: x is flattened to 2-D at x_num_col_dims before multiplying."""
    x, y = op.ins("x")[0], op.ins("y")[0]
    k = op.attr("x_num_col_dims") or 1
    xs = walk.shape(x)
    if key == x and axis == k:
        walk.side(y, 0, ch.expand(int(np.prod(xs[k + 1:]))), "fc_in")
    else:
        walk.cannot(op, f"only the first flattened axis of its input can be pruned (axis {k})")
