"""Small networks for the pruning oracle, built from paddle.nn Layers (work in both IRs)."""
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
