"""Channel rules: how pruned channels flow through each op type. One small function per op type.

A rule is called as `rule(walk, op, key, axis, ch)` when channels `ch` of `key` (one of the op's inputs or
outputs) along `axis` are pruned; it answers through `walk`, whose whole interface is `core/walk.py`
(flow, side, tie, tie_blocks, shrink_attr, shrink_const, renormalizes, cannot, ...). Where only network
outputs lie beyond an op that refuses, the master becomes an output conv (skipped with the reason)
unless `anywhere=True`.

Supporting a new op is one function here, registered with `@RULES.under("op_type", ...)` (canonical PIR
type), plus its test in tests/core/test_rules.py (see docs/architecture.md, "How to add").
"""
import numpy as np

from . import reshape_geometry as geometry
from .errors import PruneError
from .registry import Registry

RULES = Registry("channel rule", error=PruneError)


def _channel_axis(op, rank):
    fmt = op.attr("data_format") or "NCHW"
    return rank - 1 if fmt in ("NHWC", "NDHWC", "NLC") else 1


def _share(walk, op, key, axis, ch, members, why=None):
    """All `members` ((key, axis, kind, tag)) index the same channels: entering one prunes the others.
    Entering on anything else is refused (`why`: the reason to give)."""
    if not any(k == key and a == axis for k, a, _, _ in members):
        walk.cannot(op, why or f"channels enter on axis {axis} of an input the rule does not couple")
    for k, a, kind, tag in members:
        if k == key and a == axis:
            continue
        (walk.flow if kind == "flow" else walk.side)(k, a, ch, tag)


# -- convolutions -------------------------------------------------------------------------------


@RULES.under("conv2d", "depthwise_conv2d")
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
    walk.tie_blocks(ch, block)
    group_ch = ch.blocks(block)
    for (k, a), (size, kind) in spaces.items():
        if (k, a) != (key, axis):
            (walk.flow if kind == "flow" else walk.side)(k, a, group_ch.expand(size), tags.get((k, a)))
    walk.shrink_attr(op, "groups", group_ch)


@RULES.under("conv2d_transpose")
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


@RULES.under("batch_norm", "sync_batch_norm")
def batch_norm(walk, op, key, axis, ch):
    x, out = op.ins("x")[0], op.outs("out")[0]
    cax = _channel_axis(op, len(walk.shape(x)))
    members = [(x, cax, "flow", None), (out, cax, "flow", None)]
    for slot in _BN_SIDE:
        members += [(k, 0, "side", "bn_" + slot) for k in op.ins(slot)]
    for slot in _BN_SIDE_OUT:
        members += [(k, 0, "side", None) for k in op.outs(slot) if _static_dim(walk, k, 0)]
    _share(walk, op, key, axis, ch, members)


@RULES.under("instance_norm")
def instance_norm(walk, op, key, axis, ch):
    x, y = op.ins("x")[0], op.outs("y")[0]
    members = [(x, 1, "flow", None), (y, 1, "flow", None)]
    members += [(k, 0, "side", None) for slot in ("scale", "bias") for k in op.ins(slot)]
    _share(walk, op, key, axis, ch, members)


@RULES.under("group_norm")
def group_norm(walk, op, key, axis, ch):
    x, y = op.ins("x")[0], op.outs("y")[0]
    cax = _channel_axis(op, len(walk.shape(x)))
    per_group = walk.shape(x)[cax] // op.attr("groups")
    members = [(x, cax, "flow", None), (y, cax, "flow", None)]
    members += [(k, 0, "side", None) for s in ("scale", "bias") for k in op.ins(s)]
    _share(walk, op, key, axis, ch, members, why=f"group_norm statistics cannot be pruned directly (axis {axis})")
    walk.tie_blocks(ch, per_group)
    group_ch = ch.blocks(per_group)
    for slot in ("mean", "variance"):
        for k in op.outs(slot):
            if _static_dim(walk, k, 1):
                walk.side(k, 1, group_ch, None)
    walk.shrink_attr(op, "groups", group_ch)


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


@RULES.under(*_UNARY)
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


@RULES.under("prelu")
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


@RULES.under("softmax", "log_softmax")
def softmax(walk, op, key, axis, ch):
    x, out = op.ins("x")[0], op.outs("out")[0]
    if axis == op.attr("axis") % len(walk.shape(x)):
        walk.cannot(op, "it normalizes over the pruned axis")
    _share(walk, op, key, axis, ch, [(x, axis, "flow", None), (out, axis, "flow", None)])


# -- broadcasting binary ops (residual adds, SE blocks, biases) ---------------------------------


@RULES.under("add", "subtract", "multiply", "divide", "maximum", "minimum", "elementwise_pow")
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


@RULES.under("add_n", "sum_op")
def add_n(walk, op, key, axis, ch):
    members = [(k, axis, "flow", None) for k in op.ins("inputs") + op.ins("x")] + [(op.outs("out")[0], axis, "flow", None)]
    _share(walk, op, key, axis, ch, members)


# -- control flow: values that cross a block boundary ------------------------------------------


@RULES.under("if", "while", "select_input")
def block_boundary(walk, op, key, axis, ch):
    """What a branch yields is the if's result; a loop-carried value is one tensor before, inside and
    after the loop. All of them keep one shape, so they lose the same channels."""
    keys = [k for s, ks in list(op.inputs.items()) + list(op.outputs.items()) if s != "mask" for k in ks]
    size = walk.shape(key)[axis]
    for k in keys:
        shape = walk.shape(k)
        if shape is None or len(shape) <= axis or shape[axis] != size:
            walk.cannot(op, f"the values meeting there differ in shape on axis {axis} ({walk.shape(key)} vs {shape}): "
                            f"the branches or iterations would disagree after pruning")
    _share(walk, op, key, axis, ch, [(k, axis, "flow", None) for k in keys])


@RULES.under("condition")
def condition(walk, op, key, axis, ch):
    """The predicate of an if or a while (the view's stand-in op): pruning would change the decision."""
    walk.cannot(op, "its value decides which branch runs or whether the loop goes on", anywhere=True)


# -- concat and split: offsets along the joined axis ----------------------------------------------


@RULES.under("concat")
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


@RULES.under("split", "split_with_num")
def split(walk, op, key, axis, ch):
    x, outs = op.ins("x")[0], op.outs("out")
    split_axis = op.attr("axis") % len(walk.shape(x))
    if axis != split_axis:
        _share(walk, op, key, axis, ch, [(k, axis, "flow", None) for k in [x] + outs])
        return
    offsets = np.cumsum([0] + [walk.shape(k)[split_axis] for k in outs])
    sizes = np.diff(offsets)
    if not op.attr("sections") or (walk.from_layer and len(outs) > 1 and (sizes == sizes[0]).all()):
        # Equal parts (`num`, or in a traced Layer sections its code may compute as C // n): every part
        # loses the same positions, so they stay equal.
        size = int(offsets[1])
        full = (ch.shift(offsets[outs.index(key)]) if key != x else ch).modulo(size).tile(size, len(outs))
        walk.tie(full)
        walk.flow(x, axis, full, None)
        for i, (k, lo) in enumerate(zip(outs, offsets[:-1])):
            walk.flow(k, axis, full.window(lo, lo + size), None)
            if op.attr("sections"):
                walk.shrink_const(op, "sections", i, full.window(lo, lo + size))
        return
    pieces = [(i, k, ch.window(lo, hi)) for i, (k, lo, hi) in enumerate(zip(outs, offsets[:-1], offsets[1:]))]
    if key != x:
        i = outs.index(key)
        walk.flow(x, axis, ch.shift(offsets[i]), None)
        pieces = [(i, key, ch)]
    for i, k, piece in pieces:
        if len(piece):
            if k != key:
                walk.flow(k, axis, piece, None)
            walk.shrink_const(op, "sections", i, piece)


# -- ops that move the channel axis -------------------------------------------------------------


@RULES.under("transpose")
def transpose(walk, op, key, axis, ch):
    x, out = op.ins("x")[0], op.outs("out")[0]
    perm = list(op.attr("perm"))
    other = (out, perm.index(axis)) if key == x else (x, perm[axis])
    walk.flow(other[0], other[1], ch, None)


def _shape_const(walk, op, out_axis, units, per=1):
    if op.type == "reshape":
        shape_const = op.attr("shape")
        if shape_const is not None and len(shape_const) > out_axis and shape_const[out_axis] > 0:
            walk.shrink_const(op, "shape", out_axis, units, per=per)


def _blocks_pair(walk, a, a_axis, b, b_axis, k, key, ch):
    """Channel c of (a, a_axis) is channels c*k .. c*k+k-1 of (b, b_axis); entering b prunes whole blocks."""
    if key == a:
        walk.flow(b, b_axis, ch.expand(k), None)
        return ch
    walk.tie_blocks(ch, k)
    blocks = ch.blocks(k)
    walk.flow(a, a_axis, blocks, None)
    walk.flow(b, b_axis, blocks.expand(k), None)
    return blocks


def _shuffle_split(walk, x, x_axis, out, b, g, m, ch):
    """x's axis becomes [g, m] on out: the g groups lose the same positions (so every group keeps m' and
    the later transpose/reshape back sees a plain axis); returns the positions on out axis b+1."""
    inner = ch.modulo(m)
    full = inner.tile(m, g)
    walk.tie(full)
    walk.flow(x, x_axis, full, None)
    walk.flow(out, b + 1, inner, None)
    return inner


@RULES.under("reshape", "flatten", "squeeze", "unsqueeze")
def reshape(walk, op, key, axis, ch):
    x, out = op.ins("x")[0], op.outs("out")[0]
    xs, os_ = walk.shape(x), walk.shape(out)
    if key == x:
        where = geometry.regroup(xs, os_, axis)
        split = None if where is not None else geometry.split_axis(xs, os_, axis)
        if where is not None:
            out_axis, k = where
            walk.flow(out, out_axis, ch.expand(k), None)
            _shape_const(walk, op, out_axis, ch, per=k)
        elif split is not None:
            b, g, m = split
            _shape_const(walk, op, b + 1, _shuffle_split(walk, x, axis, out, b, g, m, ch))
        else:
            walk.cannot(op, f"it folds pruned axis {axis} of {xs} into other axes of {os_}")
    else:
        where = geometry.regroup(os_, xs, axis)
        if where is not None and where[1] == 1:
            walk.flow(x, where[0], ch, None)
            _shape_const(walk, op, axis, ch)
        elif geometry.merged_into(xs, os_, axis) is not None:  # undoing a split: whole blocks of the merged axis
            a, k = geometry.merged_into(xs, os_, axis)
            _shape_const(walk, op, axis, _blocks_pair(walk, x, a, out, axis, k, key, ch), per=k)
        elif geometry.split_source(xs, os_, axis) is not None:  # positions inside the groups of a split axis
            a, (b, g, m) = geometry.split_source(xs, os_, axis)
            _shape_const(walk, op, axis, _shuffle_split(walk, x, a, out, b, g, m, ch))
        else:
            walk.cannot(op, f"channels would have to be regrouped from {os_} back to {xs}")
    for k in op.outs("xshape"):  # legacy reshape2/flatten2 record [0] + input shape for their grads
        if key == x and walk.shape(k):
            walk.side(k, axis + 1, ch, None)


@RULES.under("mean", "sum", "max", "min", "prod")
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


@RULES.under("pixel_shuffle", "pixel_unshuffle")
def pixel_shuffle(walk, op, key, axis, ch):
    """pixel_shuffle: channel c of out is channels c*r*r .. c*r*r+r*r-1 of x (unshuffle: the reverse)."""
    x, out = op.ins("x")[0], op.outs("out")[0]
    cax = _channel_axis(op, len(walk.shape(x)))
    if axis != cax:
        walk.cannot(op, f"it moves axis {axis} into other axes")
    r = op.attr("upscale_factor") or op.attr("downscale_factor")
    if op.type == "pixel_shuffle":
        _blocks_pair(walk, out, cax, x, cax, r * r, key, ch)
    else:
        _blocks_pair(walk, x, cax, out, cax, r * r, key, ch)


@RULES.under("layer_norm")
def layer_norm(walk, op, key, axis, ch):
    x = op.ins("x")[0]
    y = (op.outs("out") or op.outs("y"))[0]
    rank = len(walk.shape(x))
    begin = op.attr("begin_norm_axis") % rank
    if key not in (x, y):
        walk.cannot(op, "its weight and bias cannot lose entries on their own")
    members = [(x, axis, "flow", None), (y, axis, "flow", None)]
    if axis < begin:  # statistics per channel: they lose entries like the data
        members += [(k, axis, "side", None) for slot in ("mean", "variance") for k in op.outs(slot)
                    if _static_dim(walk, k, axis)]
    elif begin == rank - 1:
        # Normalized over the channels alone (ConvNeXt's layer norm after NCHW -> NHWC): weight and bias
        # follow, and the statistics are taken over the channels that remain.
        members += [(k, 0, "side", None) for slot in ("scale", "bias") for k in op.ins(slot)]
        walk.renormalizes(op)
    else:
        walk.cannot(op, f"it normalizes over the pruned axis {axis} together with axes {begin}..{rank - 1} "
                        f"(a flattened weight); only a layer norm over the channel axis alone can be pruned")
    _share(walk, op, key, axis, ch, members)


@RULES.under("shape", "shape64")
def shape(walk, op, key, axis, ch):
    """A shape query reads sizes, not channel data. Only a use of the channel count itself could see the
    pruning (the run-time value follows the pruned tensor, but what is built from it is not followed)."""
    (out,) = op.outs("out")
    for user in walk.users(out):
        if user.type == "slice" and not _slice_reads(user, axis, walk.shape(out)[0]):
            continue
        if not any(walk.used(k) for ks in user.outputs.values() for k in ks):
            continue  # nothing reads what it computes
        walk.cannot(op, f"the channel count it reads is used by '{user.type}' (op #{user.index}), whose "
                        f"result would follow the pruned size unchecked", anywhere=True)


def _slice_reads(op, index, length):
    """Whether a slice of a shape vector includes entry `index` (unknown bounds count as yes)."""
    axes = op.attr("axes")
    kept = _slice_range(op, 0, length) if axes and list(axes) == [0] else None
    return kept is None or kept[0] <= index < kept[1]


# -- slices -------------------------------------------------------------------------------------


def _slice_range(op, pos, length):
    """[lo, hi) that a slice or strided_slice keeps of its `pos`-th sliced axis (of `length` entries), with
    a step of one; None when a bound is computed at run time or the step is not one."""
    starts, ends, strides = op.attr("starts"), op.attr("ends"), op.attr("strides")
    computed = any(op.ins(s) for s in ("starts_tensor", "ends_tensor", "starts_tensor_list", "ends_tensor_list",
                                       "strides_tensor", "strides_tensor_list"))
    if computed or not starts or not ends or len(starts) <= pos:
        return None
    if op.type == "strided_slice" and (not strides or int(strides[pos]) != 1):  # strides unknown or not one
        return None
    lo, hi = int(starts[pos]), int(ends[pos])
    lo, hi = lo + length if lo < 0 else lo, hi + length if hi < 0 else hi
    return max(lo, 0), min(hi, length)


@RULES.under("slice", "strided_slice")
def slices(walk, op, key, axis, ch):
    """A slice along other axes keeps every channel, on the same axis less the axes it drops
    (`decrease_axis`). One that cuts the pruned axis is refused: its bounds index the channels before
    pruning (a slice of all of them, [0, C), is no cut)."""
    x, out = (op.ins("input") or op.ins("x"))[0], op.outs("out")[0]
    rank = len(walk.shape(x))
    dropped = [a % rank for a in op.attr("decrease_axis") or []]
    kept = [a for a in range(rank) if a not in dropped]
    x_axis = kept[axis] if key == out else axis
    sliced = [a % rank for a in op.attr("axes")]
    if x_axis in sliced:
        length = walk.shape(x)[x_axis]
        if x_axis in dropped or _slice_range(op, sliced.index(x_axis), length) != (0, length):
            walk.cannot(op, f"it cuts axis {x_axis}, the pruned one: its bounds count the channels before pruning")
    _share(walk, op, key, axis, ch, [(x, x_axis, "flow", None), (out, kept.index(x_axis), "flow", None)])


# -- detection heads ----------------------------------------------------------------------------


@RULES.under("roi_align")
def roi_align(walk, op, key, axis, ch):
    """Each box is pooled from every channel of its image (NCHW): the pooled [R, C, h, w] keeps the feature
    map's channels. The boxes and their counts carry none."""
    x, out = op.ins("x")[0], op.outs("out")[0]
    _share(walk, op, key, axis, ch, [(x, 1, "flow", None), (out, 1, "flow", None)],
           why=f"only the channel axis (1) of its feature map passes through it (entered on axis {axis})")


@RULES.under("gather")
def gather(walk, op, key, axis, ch):
    """Rows picked along another axis (a two-stage head putting its RoIs back in order after pooling them
    level by level) keep every channel. A gather along the pruned axis picks channels by their positions
    before pruning, and one whose axis is computed at run time may be that one: both are refused."""
    x, out = op.ins("x")[0], op.outs("out")[0]
    picked = op.attr("axis")
    if picked is None:
        walk.cannot(op, "its axis is computed at run time")
    picked %= len(walk.shape(x))
    if key in (x, out) and axis == picked:
        walk.cannot(op, f"it picks along axis {axis}, the pruned one, by the channels' positions before pruning")
    _share(walk, op, key, axis, ch, [(x, axis, "flow", None), (out, axis, "flow", None)],
           why="its index holds positions, not channels")


# -- fully connected heads ----------------------------------------------------------------------


@RULES.under("matmul")
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


@RULES.under("mul")
def mul(walk, op, key, axis, ch):
    """Legacy fc: x is flattened to 2-D at x_num_col_dims before multiplying."""
    x, y = op.ins("x")[0], op.ins("y")[0]
    k = op.attr("x_num_col_dims") or 1
    xs = walk.shape(x)
    if key == x and axis == k:
        walk.side(y, 0, ch.expand(int(np.prod(xs[k + 1:]))), "fc_in")
    else:
        walk.cannot(op, f"only the first flattened axis of its input can be pruned (axis {k})")
