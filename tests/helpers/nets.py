"""Small networks for the pruning oracle, built from paddle.nn Layers (work in both IRs)."""
import contextlib

import paddle
from paddle import nn
import paddle.nn.functional as F


def _attr(name):
    return paddle.ParamAttr(name=name) if name else None


def conv(x, cin, cout, name=None, k=3, stride=1, groups=1, bias=False, act="relu", bn=True):
    y = nn.Conv2D(cin, cout, k, stride=stride, padding=k // 2, groups=groups, weight_attr=_attr(name and name + "_weights"),
                  bias_attr=_attr(name and name + "_bias") if bias else False)(x)
    if bn:
        # Running statistics, as in an eval program, so the executor and Paddle Inference agree.
        y = nn.BatchNorm2D(cout, weight_attr=_attr(name and name + "_bn_scale"), bias_attr=_attr(name and name + "_bn_offset"),
                           use_global_stats=True)(y)
    if act:
        y = _act(act)(y)
    return y


def _act(name):
    if name in _LEGACY_OPS and not paddle.framework.in_pir_mode():
        return lambda x: _legacy_op(name, x)
    return _ACTS[name]()


# Activation layers rather than functionals: some functionals dispatch wrongly under OldIrGuard.
_ACTS = {"relu": nn.ReLU, "relu6": nn.ReLU6, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "gelu": nn.GELU,
         "hardswish": nn.Hardswish, "leaky_relu": nn.LeakyReLU, "swish": nn.Swish,
         "hardsigmoid": nn.Hardsigmoid, "mish": nn.Mish, "silu": nn.Silu}
# paddle 3.3.1's layers for these reject a legacy Variable (_C_ops): append the legacy op itself, as a
# Paddle 2.x program would hold it.
_LEGACY_OPS = {"sigmoid": {}, "tanh": {}, "gelu": {"approximate": False}}


def _legacy_op(op_type, x):
    from paddle.base.layer_helper import LayerHelper

    helper = LayerHelper(op_type)
    out = helper.create_variable_for_type_inference(x.dtype)
    helper.append_op(type=op_type, inputs={"X": x}, outputs={"Out": out}, attrs=_LEGACY_OPS[op_type])
    return out


def head(x, c, hw, classes=10):
    y = paddle.flatten(x, 1)
    return nn.Linear(c * hw * hw, classes)(y)


def residual(x):
    """The seed's net: conv1..conv6 with sum1 = conv1 + conv2, sum2 = conv4 + sum1, then fc."""
    c1 = conv(x, 3, 8, "conv1", act=None)
    c2 = conv(c1, 8, 8, "conv2", act=None)
    s1 = c1 + c2
    c3 = conv(s1, 8, 8, "conv3", act=None)
    c4 = conv(c3, 8, 8, "conv4", act=None)
    s2 = c4 + s1
    c5 = conv(s2, 8, 8, "conv5", act=None)
    c6 = conv(c5, 8, 8, "conv6", act=None)
    return head(c6, 8, 8)


def mobilenet_block(x):
    """Depthwise-separable stack (MobileNetV1 style) with conv bias and relu6."""
    y = conv(x, 3, 8, "stem", stride=2, act="relu6")
    y = conv(y, 8, 8, "dw1", groups=8, act="relu6")
    y = conv(y, 8, 16, "pw1", k=1, act="relu6")
    y = conv(y, 16, 16, "dw2", groups=16, stride=2, act="relu6")
    y = conv(y, 16, 12, "pw2", k=1, bias=True, bn=False, act="hardswish")
    y = F.adaptive_avg_pool2d(y, 1)
    return head(y, 12, 1)


def inception(x):
    """Parallel branches joined by concat, then a conv and an fc."""
    stem = conv(x, 3, 8, "stem")
    a = conv(stem, 8, 4, "b1", k=1)
    b = conv(conv(stem, 8, 6, "b2a", k=1), 6, 6, "b2b")
    c = conv(F.max_pool2d(stem, 3, 1, 1), 8, 5, "b3", k=1)
    y = paddle.concat([a, b, c], axis=1)
    y = conv(y, 15, 8, "mix", k=1, act="sigmoid")
    return head(F.avg_pool2d(y, 2), 8, 4)


def se_block(x):
    """Squeeze-and-excitation: the excite conv must keep the channels of the block it scales."""
    y = conv(x, 3, 12, "body")
    s = F.adaptive_avg_pool2d(y, 1)
    s = conv(s, 12, 4, "squeeze", k=1, bias=True, bn=False)
    s = conv(s, 4, 12, "excite", k=1, bias=True, bn=False, act="sigmoid")
    y = y * s
    y = conv(y, 12, 8, "after", act="swish")
    return head(y, 8, 8)


def fpn(x):
    """Two levels: upsample the coarse one, concat with the fine one, add a lateral conv."""
    c1 = conv(x, 3, 8, "c1")
    c2 = conv(c1, 8, 12, "c2", stride=2)
    # conv + leaky_relu and interpolate break oneDNN passes in Paddle Inference 3.3.1 (ppprune.deploy skips them)
    top = conv(c2, 12, 6, "top", k=1, act="leaky_relu")
    up = F.interpolate(top, scale_factor=2, mode="nearest")
    lat = conv(c1, 8, 6, "lat", k=1, act=None)
    merged = paddle.concat([up, c1], axis=1)
    fused = conv(merged, 14, 6, "fuse", k=1, act=None) + lat
    bil = F.interpolate(fused, size=[4, 4], mode="bilinear")
    return head(bil, 6, 4)


def grouped(x):
    """ResNeXt-style grouped conv (groups=4) between 1x1 convs, with a residual add."""
    y = conv(x, 3, 16, "stem")
    z = conv(y, 16, 16, "reduce", k=1)
    z = conv(z, 16, 16, "group", groups=4)
    z = conv(z, 16, 16, "expand", k=1, act=None)
    y = F.relu(y + z)
    return head(F.avg_pool2d(y, 2), 16, 4)


def transposed(x):
    """A decoder: conv2d_transpose after a conv, pad, transpose to NHWC and back."""
    y = conv(x, 3, 8, "enc", stride=2)
    y = nn.Conv2DTranspose(8, 6, 2, stride=2, weight_attr=_attr("dec_weights"))(y)
    y = F.pad(y, [1, 1, 1, 1])
    y = paddle.transpose(y, [0, 2, 3, 1])
    y = paddle.transpose(y, [0, 3, 1, 2])
    y = conv(y, 6, 4, "last")
    return head(y, 4, 10)


def assorted(x):
    """The rarer channel-wise ops: group/instance norm, channel prelu, scale, sub/div by per-channel
    tensors, dropout, and a reshape whose constant spells out C*H*W."""
    y = nn.Conv2D(3, 8, 3, padding=1, weight_attr=_attr("gn_conv_weights"))(x)
    y = nn.GroupNorm(4, 8)(y)
    y = nn.PReLU(num_parameters=8)(y)
    y = nn.Conv2D(8, 6, 3, padding=1, weight_attr=_attr("in_conv_weights"))(y)
    y = nn.InstanceNorm2D(6)(y)
    y = paddle.scale(y, 2.0, 1.0)
    shift = paddle.create_parameter([6, 1, 1], "float32", attr=_attr("shift"))
    y = (y - shift) / (shift * shift + 1.0)
    y = F.dropout(y, 0.5, training=False)
    y = conv(y, 6, 4, "tail", act="relu6")
    y = paddle.reshape(y, [-1, 4 * 8 * 8])
    return nn.Linear(4 * 8 * 8, 10)(y)


def activations(x):
    """Every unary activation the core follows, one after each conv, then a cast round trip."""
    y, c = x, 3
    for i, act in enumerate(["relu", "relu6", "leaky_relu", "sigmoid", "tanh", "swish", "silu", "hardswish",
                             "hardsigmoid", "mish", "gelu"]):
        y = conv(y, c, 6, f"act{i}", k=3 if i % 2 else 1, act=act)
        c = 6
    y = paddle.cast(paddle.cast(y, "float64"), "float32")
    return head(y, 6, 8)


def single_channel(x):
    """A conv left with one channel (2 at ratio 0.4) feeding a depthwise conv, a residual add, a concat and
    an SE gate: oneDNN kernels pick other code paths for a single channel."""
    narrow = conv(x, 3, 2, "narrow", act="leaky_relu")
    dw = conv(narrow, 2, 2, "narrow_dw", groups=2, act="relu6")
    added = narrow + conv(dw, 2, 2, "narrow_pw", k=1, act=None)
    s = F.adaptive_avg_pool2d(added, 1)
    s = conv(s, 2, 2, "narrow_ex", k=1, bias=True, bn=False, act="sigmoid")
    y = paddle.concat([added * s, conv(x, 3, 5, "side")], axis=1)
    y = conv(y, 7, 6, "mix", k=1, act="hardswish")
    return head(y, 6, 8)


ARCHITECTURES = {
    "single_channel": (single_channel, [3, 8, 8]),
    "activations": (activations, [3, 8, 8]),
    "assorted": (assorted, [3, 8, 8]),
    "residual": (residual, [3, 8, 8]),
    "mobilenet_block": (mobilenet_block, [3, 16, 16]),
    "inception": (inception, [3, 8, 8]),
    "se_block": (se_block, [3, 8, 8]),
    "fpn": (fpn, [3, 8, 8]),
    "grouped": (grouped, [3, 8, 8]),
    "transposed": (transposed, [3, 8, 8]),
}


def vision_model(name):
    """paddle.vision.models at small sizes; the output layer is kept (no classifier for vgg11)."""
    from paddle.vision import models

    makers = {
        "mobilenet_v1": lambda: models.mobilenet_v1(scale=0.25, num_classes=10),
        "mobilenet_v2": lambda: models.mobilenet_v2(scale=0.25, num_classes=10),
        "resnet18": lambda: models.resnet18(num_classes=10),
        "vgg11": lambda: models.vgg11(num_classes=0, with_pool=True),
        "shufflenet_v2_x0_25": lambda: models.shufflenet_v2_x0_25(num_classes=10),
    }

    def net(x):
        model = makers[name]()
        model.eval()
        return model(x)

    return net, [3, 32, 32]


# -- Layers (static and dygraph): today's detectors in miniature ------------------------------------


class ConvBN(nn.Layer):
    """conv + BN (running statistics) + activation, as PaddleDetection's ConvBNLayer."""

    def __init__(self, cin, cout, k=3, stride=1, groups=1, act="swish"):
        super().__init__()
        self.conv = nn.Conv2D(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias_attr=False)
        self.bn = nn.BatchNorm2D(cout, use_global_stats=True)
        self.act = _ACTS[act]() if act else None

    def forward(self, x):
        y = self.bn(self.conv(x))
        return self.act(y) if self.act else y


class ESE(nn.Layer):
    """PP-YOLOE's effective SE: one 1x1 conv on the channel means, a hard-sigmoid gate."""

    def __init__(self, c):
        super().__init__()
        self.fc = nn.Conv2D(c, c, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x):
        return x * self.gate(self.fc(x.mean((2, 3), keepdim=True)))


class CSPResStage(nn.Layer):
    """CSPResNet stage: a strided conv, two 1x1 halves (one through a residual block), concat, ESE, 1x1.
    The concat also feeds an add with the strided conv's output: that conv's channels are the halves'."""

    def __init__(self, cin, cout, cmid):
        super().__init__()
        self.down = ConvBN(cin, cmid, 3, stride=2)
        self.conv1 = ConvBN(cmid, cmid // 2, 1)
        self.conv2 = ConvBN(cmid, cmid // 2, 1)
        self.block_a = ConvBN(cmid // 2, cmid // 2, 3)
        self.block_b = ConvBN(cmid // 2, cmid // 2, 3, act=None)
        self.attn = ESE(cmid)
        self.conv3 = ConvBN(cmid, cout, 1)

    def forward(self, x):
        x = self.down(x)
        y2 = self.conv2(x)
        y2 = y2 + self.block_b(self.block_a(y2))
        y = paddle.concat([self.conv1(x), y2], axis=1) + x
        return self.conv3(self.attn(y))


class CSPResPAN(nn.Layer):
    """Two CSPResNet stages and a CSP-PAN neck (input 3x32x32): top-down, a concat feeding an add with a
    1x1 conv; bottom-up, two concats of differently split branches added to each other (4+12 vs 8+8)."""

    def __init__(self):
        super().__init__()
        self.stem = ConvBN(3, 16, 3, stride=2)
        self.stage1 = CSPResStage(16, 16, 16)
        self.stage2 = CSPResStage(16, 24, 16)
        self.lat1, self.lat2 = ConvBN(16, 8, 1), ConvBN(24, 8, 1)
        self.td_a, self.td_b1, self.td_b2 = ConvBN(16, 8, 1), ConvBN(16, 8, 1), ConvBN(8, 8, 3)
        self.td_short = ConvBN(16, 16, 1, act=None)
        self.bu_down = ConvBN(16, 8, 3, stride=2)
        self.bu_x, self.bu_y = ConvBN(24, 4, 1), ConvBN(24, 12, 1)
        self.bu_out = ConvBN(16, 16, 3)
        self.head1, self.head2 = ConvBN(16, 6, 1), ConvBN(16, 6, 1)
        self.fc = nn.Linear(12 * 16, 10)

    def forward(self, x):
        c1 = self.stage1(self.stem(x))  # 16 @ 8x8
        c2 = self.stage2(c1)  # 24 @ 4x4
        l2 = self.lat2(c2)
        p1 = paddle.concat([F.interpolate(l2, scale_factor=2, mode="nearest"), self.lat1(c1)], axis=1)
        m = paddle.concat([self.td_a(p1), self.td_b2(self.td_b1(p1))], axis=1) + self.td_short(p1)
        p2 = paddle.concat([self.bu_down(m), l2], axis=1) + paddle.concat([self.bu_x(c2), self.bu_y(c2)], axis=1)
        p2 = self.bu_out(p2)
        y = paddle.concat([F.avg_pool2d(self.head1(m), 2), self.head2(p2)], axis=1)
        return self.fc(paddle.flatten(y, 1))


class DepthwiseSeparable(nn.Layer):
    """LCNet's block: depthwise conv, optional SE (relu, hard-sigmoid), pointwise conv, hard-swish."""

    def __init__(self, cin, cout, stride, se=False):
        super().__init__()
        self.dw = ConvBN(cin, cin, 3, stride=stride, groups=cin, act="hardswish")
        self.se = se
        if se:
            self.squeeze, self.relu, self.excite, self.gate = nn.Conv2D(cin, cin // 4, 1), nn.ReLU(), nn.Conv2D(cin // 4, cin, 1), nn.Hardsigmoid()
        self.pw = ConvBN(cin, cout, 1, act="hardswish")

    def forward(self, x):
        y = self.dw(x)
        if self.se:
            y = y * self.gate(self.excite(self.relu(self.squeeze(F.adaptive_avg_pool2d(y, 1)))))
        return self.pw(y)


class PicoLevel(nn.Layer):
    """One level of a PicoHead: depthwise + pointwise features, a 1-channel alignment map that scales them
    ([N, C, H, W] * [N, 1, H, W]) and the class scores, then class and box convs."""

    def __init__(self, c, classes=4, reg=8):
        super().__init__()
        self.dw = ConvBN(c, c, 3, groups=c, act="hardswish")
        self.pw = ConvBN(c, c, 1, act="hardswish")
        self.align = nn.Conv2D(c, 1, 1)
        self.gate = nn.Hardsigmoid()
        self.cls = nn.Conv2D(c, classes, 1)
        self.reg = nn.Conv2D(c, reg, 1)

    def forward(self, x):
        feat = self.pw(self.dw(x))
        prob = self.gate(self.align(feat))
        score = self.gate(self.cls(feat * prob)) * prob
        return paddle.concat([paddle.flatten(score, 2), paddle.flatten(self.reg(feat), 2)], axis=1)


class LCNetPico(nn.Layer):
    """An LCNet-style backbone (input 3x32x32), a lateral-add neck and PicoHead-style levels."""

    def __init__(self):
        super().__init__()
        self.stem = ConvBN(3, 8, 3, stride=2, act="hardswish")
        self.b1 = DepthwiseSeparable(8, 16, 1)
        self.b2 = DepthwiseSeparable(16, 24, 2)
        self.b3 = DepthwiseSeparable(24, 32, 2, se=True)
        self.n3, self.n4 = ConvBN(24, 16, 1, act=None), ConvBN(32, 16, 1, act=None)
        self.level3, self.level4 = PicoLevel(16), PicoLevel(16)

    def forward(self, x):
        c3 = self.b2(self.b1(self.stem(x)))  # 24 @ 8x8
        c4 = self.b3(c3)  # 32 @ 4x4
        n4 = self.n4(c4)
        n3 = self.n3(c3) + F.interpolate(n4, scale_factor=2, mode="nearest")
        return paddle.concat([self.level3(n3), self.level4(n4)], axis=2)


LAYERS = {"csp_res_pan": CSPResPAN, "lcnet_pico": LCNetPico}


def _layer_net(cls):
    def net(x):
        model = cls()
        model.eval()
        return model(x)

    return net


ARCHITECTURES.update({name: (_layer_net(cls), [3, 32, 32]) for name, cls in LAYERS.items()})


# -- shape queries, shuffles, pixel shuffle, chunks (issue 14) -----------------------------------


def shape_queries(x):
    """PicoHead / PP-YOLOE-style: spatial sizes read with `paddle.shape`, an upsample to them, a depthwise
    + pointwise head, a broadcast quality product, and a regression map reshaped [N, 4*m, H, W] ->
    [N, 4, m, H*W] into a distribution integral (softmax, fixed projection conv) that is an output."""
    y = conv(x, 3, 8, "sq_stem", stride=2)
    size = paddle.shape(y)
    unused = size[1]  # noqa: F841 -- a query of the channel count nothing uses
    up = F.interpolate(conv(y, 8, 8, "sq_lat", k=1), size=[size[2] * 2, size[3] * 2], mode="nearest")
    feat = conv(up, 8, 8, "sq_dw", groups=8, act="hardswish")
    feat = conv(feat, 8, 12, "sq_pw", k=1, act="hardswish")
    cls = conv(feat, 12, 3, "sq_cls", k=1, bias=True, bn=False, act="sigmoid")
    obj = conv(feat, 12, 1, "sq_obj", k=1, bias=True, bn=False, act="sigmoid")
    score = cls * obj  # [N, 3, H, W] * [N, 1, H, W]
    reg = conv(feat, 12, 4 * 5, "sq_reg", k=1, bias=True, bn=False, act=None)
    hw = paddle.shape(reg)
    # PP-YOLOE's DFL: [N, 4*m, H, W] -> [N, m, H*W, 4], softmax over the m bins, a fixed 1x1 projection
    reg = paddle.transpose(paddle.reshape(reg, [-1, 4, 5, hw[2] * hw[3]]), [0, 2, 3, 1])
    reg = nn.Conv2D(5, 1, 1, weight_attr=_attr("sq_proj_weights"), bias_attr=False)(F.softmax(reg, axis=1))
    return paddle.concat([paddle.flatten(score, 1), paddle.flatten(reg, 1)], axis=1)


def _channel_shuffle(x, groups):
    _, c, h, w = x.shape
    x = paddle.reshape(x, [-1, groups, c // groups, h, w])
    x = paddle.transpose(x, [0, 2, 1, 3, 4])
    return paddle.reshape(x, [-1, c, h, w])


def shuffle(x):
    """ShuffleNetV2 units: split in halves, a branch on one half, concat, shuffle (g=2), then a g=4
    shuffle after a grouped conv (ShuffleNetV1 style)."""
    y = conv(x, 3, 16, "sh_stem")
    for i in range(2):
        a, b = paddle.split(y, [8, 8], axis=1)
        b = conv(b, 8, 8, f"sh{i}_pw", k=1)
        b = conv(b, 8, 8, f"sh{i}_dw", groups=8, act=None)
        b = conv(b, 8, 8, f"sh{i}_lin", k=1)
        y = _channel_shuffle(paddle.concat([a, b], axis=1), 2)
    y = conv(y, 16, 16, "sh_group", k=1, groups=4)
    y = _channel_shuffle(y, 4)
    y = conv(y, 16, 8, "sh_tail", k=1)
    return head(y, 8, 8)


def pixel_shuffle(x):
    """A sub-pixel upsampler (channels in blocks of r*r) and its inverse, then chunks and uneven splits."""
    y = conv(x, 3, 16, "ps_body")
    up = F.pixel_shuffle(conv(y, 16, 8 * 4, "ps_up", k=1), 2)  # [N, 8, 16, 16]
    down = F.pixel_unshuffle(conv(up, 8, 4, "ps_mid"), 2)  # [N, 16, 8, 8]
    p, q, r = paddle.split(conv(down, 16, 9, "ps_split", k=1), [2, 3, 4], axis=1)
    a, b, c = paddle.chunk(conv(y, 16, 12, "ps_chunk", k=1), 3, axis=1)
    y = paddle.concat([p * 2.0, q, r, a * _act("hardsigmoid")(b) + c], axis=1)  # 9 + 4 channels
    return head(conv(y, 13, 6, "ps_tail", k=1), 6, 8)


def convnext(x):
    """A ConvNeXt-style block: depthwise 7x7, NHWC layer norm over channels, pointwise MLP as Linear layers,
    layer scale, residual; a layer norm over the spatial axes (channels untouched) after it."""
    y = conv(x, 3, 16, "cn_stem", k=1, act=None)
    z = conv(y, 16, 16, "cn_dw", k=7, groups=16, bias=True, bn=False, act=None)
    z = paddle.transpose(z, [0, 2, 3, 1])
    z = nn.LayerNorm(16)(z)
    z = nn.Linear(64, 16)(_act("gelu")(nn.Linear(16, 64)(z)))
    z = paddle.transpose(z, [0, 3, 1, 2])
    y = y + z
    y = conv(y, 16, 8, "cn_down", stride=2, act=None)
    y = nn.LayerNorm([4, 4])(y)  # normalizes H, W: the channels pass through
    return head(y, 8, 4)


ARCHITECTURES.update({
    "shape_queries": (shape_queries, [3, 16, 16]),
    "pixel_shuffle": (pixel_shuffle, [3, 8, 8]),
})
# Shuffles tie each branch conv to positions of the tensor it is concatenated with, so a conv's group
# partly overlaps its neighbours' (the overlapping-groups merge of issue 14, point 1, plans them as one).
SHUFFLES = {"shuffle": (shuffle, [3, 8, 8])}


# -- control flow (issue 14) ----------------------------------------------------------------------


@contextlib.contextmanager
def _legacy_logical_not():
    """`static.nn.cond` negates its predicate with paddle.logical_not, which rejects a legacy Variable in
    paddle 3.3.1 (like sigmoid): append the legacy op instead while building a legacy program."""
    if paddle.framework.in_pir_mode():
        yield
        return
    from paddle.base.layer_helper import LayerHelper

    def logical_not(x, out=None, name=None):
        helper = LayerHelper("logical_not")
        result = helper.create_variable_for_type_inference("bool")
        helper.append_op(type="logical_not", inputs={"X": x}, outputs={"Out": result})
        return result

    original, paddle.logical_not = paddle.logical_not, logical_not
    try:
        yield
    finally:
        paddle.logical_not = original


def cond_block(x):
    """A data-dependent `cond` with convs before, inside the true branch and after it; the false branch
    passes the tensor through a scale; a second cond whose branches never see the channels."""
    y = conv(x, 3, 8, "cb_before")
    flag = paddle.mean(x) > 0.25  # true for the oracle's inputs: the branch with the convs runs
    # Layers built outside the branch: paddle 3.3.1's save_inference_model drops parameters created
    # inside a PIR `if` block (Paddle Inference then fails with "Persistable var ... not in scope").
    inside = nn.Conv2D(8, 6, 3, padding=1, weight_attr=_attr("cb_inside_weights"), bias_attr=False)
    inside_bn = nn.BatchNorm2D(6, use_global_stats=True)
    back = nn.Conv2D(6, 8, 1, weight_attr=_attr("cb_back_weights"))
    with _legacy_logical_not():
        y = paddle.static.nn.cond(flag, lambda: back(F.relu(inside_bn(inside(y)))) + y, lambda: y * 2.0)
        gain = paddle.static.nn.cond(flag, lambda: paddle.full([1], 2.0), lambda: paddle.full([1], 0.5))
    y = conv(y * gain, 8, 6, "cb_after")
    return head(y, 6, 8)


def while_block(x):
    """A `while_loop` whose body applies a conv to the loop-carried feature map, between two convs."""
    y = conv(x, 3, 8, "wb_before")
    w = paddle.create_parameter([8, 8, 3, 3], "float32", attr=_attr("wb_inside_weights"))

    def body(i, y):
        return i + 1, F.conv2d(y, w, padding=1) * 0.5 + y

    i = paddle.full([1], 0, "int64")
    _, y = paddle.static.nn.while_loop(lambda i, y: i < 2, body, [i, y])
    y = conv(y, 8, 6, "wb_after")
    return head(y, 6, 8)


ARCHITECTURES.update({
    "cond_block": (cond_block, [3, 8, 8]),
    "while_block": (while_block, [3, 8, 8]),
})


_BOXES = [[0, 0, 8, 8], [4, 2, 15, 12], [1, 1, 6, 14], [8, 8, 16, 16]]  # x1, y1, x2, y2 on the 16 x 16 map


def two_stage(x):
    """Faster R-CNN in miniature, at batch 2: a backbone, an FPN level (lateral + upsampled top + output
    conv), and on it an RoI head (roi_align of two fixed boxes per image, put back in order by a gather as
    after PaddleDetection's per-level pooling -> conv -> fc) and an RPN head. The
    shared RPN conv is read sliced along the height (no cut of its channels) by the score conv, whose
    scores then meet a top-k (no channel rule: not prunable); the predictor's output is sliced along its
    channels (objectness, then boxes refined by two more convs: not prunable either). Naming every conv
    fails on those two, so it is not in ARCHITECTURES (tests/core/test_prune_two_stage.py)."""
    import numpy as np

    c1 = conv(x, 3, 8, "frc_c1")
    c2 = conv(c1, 8, 12, "frc_c2", stride=2)
    top = F.interpolate(conv(c2, 12, 6, "frc_top", k=1, act=None), scale_factor=2, mode="nearest")
    p2 = conv(conv(c1, 8, 6, "frc_lat", k=1, act=None) + top, 6, 6, "frc_fpn", act=None)
    boxes = paddle.assign(np.array(_BOXES, "float32"))
    pooled = paddle.vision.ops.roi_align(p2, boxes, paddle.assign(np.array([2, 2], "int32")), 2, spatial_scale=1.0)
    pooled = paddle.gather(pooled, paddle.assign(np.array([1, 3, 0, 2], "int64")), axis=0)  # RoIs back in order
    logits = head(conv(pooled, 6, 8, "roi_conv"), 8, 2, classes=5)
    rpn = conv(p2, 6, 6, "rpn_conv", bias=True, bn=False)
    score = conv(rpn[:, :, 2:14], 6, 3, "rpn_score", k=1, bias=True, bn=False, act=None)
    best, _ = paddle.topk(paddle.flatten(score, 1), 4)
    pred = conv(rpn, 6, 5, "rpn_pred", k=1, bias=True, bn=False, act=None)
    refined = conv(conv(pred[:, 1:], 4, 4, "rpn_refine", k=1), 4, 4, "rpn_box", k=1, act=None, bn=False)
    return paddle.concat([paddle.flatten(t) for t in (logits, best, pred[:, :1], refined)])


TWO_STAGE = (two_stage, [3, 16, 16])
