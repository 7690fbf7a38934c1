"""PP-LCNet (PicoDet's backbone) with PaddleDetection's structured names (`backbone.blocks5.1.dw_conv.conv.weight`).

A 3x3/2 stem, then stages of depthwise-separable blocks (depthwise kxk, optional SE, pointwise 1x1), all
hardswish; `scale` widens every stage (PicoDet xs: 0.35, s: 0.75, m: 1.0, l: 2.0).
"""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ...registry import BACKBONES
from ..layers import ConvBN, activate, conv2d

# per stage: (kernel, in channels, out channels, stride, SE) of each block, at scale 1.0
STAGES = {
    "blocks2": [(3, 16, 32, 1, False)],
    "blocks3": [(3, 32, 64, 2, False), (3, 64, 64, 1, False)],
    "blocks4": [(3, 64, 128, 2, False), (3, 128, 128, 1, False)],
    "blocks5": [(3, 128, 256, 2, False)] + [(5, 256, 256, 1, False)] * 5,
    "blocks6": [(5, 256, 512, 2, True), (5, 512, 512, 1, True)],
}


def make_divisible(v, divisor=8):
    """The nearest multiple of `divisor` (at least `divisor`), rounded up where rounding would lose over 10%."""
    rounded = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * v else rounded


def bn_names(prefix):
    return tuple(f"{prefix}.{s}" for s in ("weight", "bias", "_mean", "_variance"))


class ConvBNLayer(ConvBN):
    """`name`.conv (no bias) -> `name`.bn -> activation."""

    def __init__(self, cin, cout, k, name, stride=1, groups=1, act="hard_swish"):
        super().__init__(cin, cout, k, f"{name}.conv.weight", bn_names(f"{name}.bn"), stride=stride, groups=groups,
                         act=None)
        self.act_type = act

    def forward(self, x):
        return activate(self.bn(self.conv(x)), self.act_type)


class SEModule(nn.Layer):
    """x * hardsigmoid(conv2(relu(conv1(mean of x over H, W)))), squeezing to a quarter of the channels."""

    def __init__(self, channels, name, reduction=4):
        super().__init__()
        mid = channels // reduction
        self.conv1 = conv2d(channels, mid, 1, f"{name}.conv1.weight", bias_name=f"{name}.conv1.bias")
        self.conv2 = conv2d(mid, channels, 1, f"{name}.conv2.weight", bias_name=f"{name}.conv2.bias")

    def forward(self, x):
        se = F.relu(self.conv1(paddle.mean(x, axis=[2, 3], keepdim=True)))
        return paddle.multiply(x, F.hardsigmoid(self.conv2(se)))


class DepthwiseSeparable(nn.Layer):
    """Depthwise kxk ConvBN (`dw_conv`), optional SE (`se`), pointwise 1x1 ConvBN (`pw_conv`)."""

    def __init__(self, cin, cout, name, stride=1, dw_size=3, use_se=False, act="hard_swish"):
        super().__init__()
        self.dw_conv = ConvBNLayer(cin, cin, dw_size, f"{name}.dw_conv", stride=stride, groups=cin, act=act)
        self.se = SEModule(cin, f"{name}.se") if use_se else None
        self.pw_conv = ConvBNLayer(cin, cout, 1, f"{name}.pw_conv", act=act)

    def forward(self, x):
        x = self.dw_conv(x)
        if self.se is not None:
            x = self.se(x)
        return self.pw_conv(x)


def blocks(rows, name, act="hard_swish"):
    """A Sequential of DepthwiseSeparable blocks (`name`.0, `name`.1, ...) from (k, cin, cout, stride, se) rows."""
    return nn.Sequential(*[DepthwiseSeparable(cin, cout, f"{name}.{i}", stride=s, dw_size=k, use_se=se, act=act)
                           for i, (k, cin, cout, s, se) in enumerate(rows)])


@BACKBONES.register
class LCNet(nn.Layer):
    """Returns the outputs of the stages `feature_maps` names (2..5: blocks3..blocks6, strides 4..32;
    PicoDet takes [3, 4, 5]), shallow to deep."""

    def __init__(self, scale=1.0, feature_maps=(3, 4, 5), act="hard_swish", name="backbone"):
        super().__init__()
        bad = [i for i in feature_maps if not 2 <= i <= 5]
        if bad or not feature_maps:
            raise ValueError(f"LCNet feature_maps {list(feature_maps)}: give stage numbers among 2, 3, 4, 5")
        self.conv1 = ConvBNLayer(3, make_divisible(16 * scale), 3, f"{name}.conv1", stride=2, act=act)
        for stage, rows in STAGES.items():
            rows = [(k, make_divisible(cin * scale), make_divisible(cout * scale), s, se) for k, cin, cout, s, se in rows]
            setattr(self, stage, blocks(rows, f"{name}.{stage}", act))
        self.feature_maps = sorted(feature_maps)
        self.out_channels = [make_divisible(STAGES[f"blocks{i + 1}"][-1][2] * scale) for i in self.feature_maps]

    def forward(self, x):
        x = self.blocks2(self.conv1(x))
        feats = []
        for i in range(2, 6):
            x = getattr(self, f"blocks{i + 1}")(x)
            if i in self.feature_maps:
                feats.append(x)
        return feats
