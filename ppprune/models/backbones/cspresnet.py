"""CSPResNet (PP-YOLOE's backbone) with PaddleDetection's structured names (`backbone.stages.0.conv1.conv.weight`).

Blocks are in their training form: RepVggBlock keeps its 3x3 and 1x1 branches (PaddleDetection fuses them
only for deployment), so checkpoints of PaddleDetection's trained models load key for key.
"""
import paddle
import paddle.nn as nn
from paddle import ParamAttr
from paddle.regularizer import L2Decay

from ...registry import BACKBONES
from ..layers import ConvBN, activate


def scaled(values, mult):
    """PaddleDetection's width/depth rule: round(v * mult), at least 1."""
    return [max(round(v * mult), 1) for v in values]


class ConvBNLayer(ConvBN):
    """`name`.conv (no bias) -> `name`.bn -> activation; tensors named as PaddleDetection's state dict."""

    def __init__(self, cin, cout, k, name, stride=1, act="swish"):
        super().__init__(cin, cout, k, f"{name}.conv.weight",
                         tuple(f"{name}.bn.{s}" for s in ("weight", "bias", "_mean", "_variance")),
                         stride=stride, act=None)
        self.act_type = act

    def forward(self, x):
        return activate(self.bn(self.conv(x)), self.act_type)


class RepVggBlock(nn.Layer):
    """act(BN(3x3 conv) + BN(1x1 conv))."""

    def __init__(self, cin, cout, name, act="swish"):
        super().__init__()
        self.conv1 = ConvBNLayer(cin, cout, 3, f"{name}.conv1", act=None)
        self.conv2 = ConvBNLayer(cin, cout, 1, f"{name}.conv2", act=None)
        self.act_type = act

    def forward(self, x):
        return activate(paddle.add(self.conv1(x), self.conv2(x)), self.act_type)


class BasicBlock(nn.Layer):
    """3x3 ConvBN then a RepVggBlock, with an identity shortcut when asked (and the widths agree)."""

    def __init__(self, cin, cout, name, act="swish", shortcut=True):
        super().__init__()
        self.conv1 = ConvBNLayer(cin, cout, 3, f"{name}.conv1", act=act)
        self.conv2 = RepVggBlock(cout, cout, f"{name}.conv2", act=act)
        self.shortcut = shortcut and cin == cout

    def forward(self, x):
        y = self.conv2(self.conv1(x))
        return paddle.add(x, y) if self.shortcut else y


class EffectiveSELayer(nn.Layer):
    """x * hardsigmoid(fc(mean over H, W of x)): one 1x1 conv with bias (`name`.fc), no reduction."""

    def __init__(self, channels, name, act="hardsigmoid"):
        super().__init__()
        self.fc = nn.Conv2D(channels, channels, 1, weight_attr=ParamAttr(name=f"{name}.fc.weight"),
                            bias_attr=ParamAttr(name=f"{name}.fc.bias", regularizer=L2Decay(0.0)))
        self.act_type = act

    def forward(self, x):
        se = paddle.mean(x, axis=[2, 3], keepdim=True)
        return x * activate(self.fc(se), self.act_type)  # `*`: paddle.multiply takes no legacy Variable


class CSPResStage(nn.Layer):
    """[3x3/2 down] -> two 1x1 halves, blocks on one -> concat -> ESE -> 1x1 to `cout`."""

    def __init__(self, cin, cout, n, stride, name, act="swish"):
        super().__init__()
        mid = (cin + cout) // 2
        self.conv_down = ConvBNLayer(cin, mid, 3, f"{name}.conv_down", stride=2, act=act) if stride == 2 else None
        self.conv1 = ConvBNLayer(mid, mid // 2, 1, f"{name}.conv1", act=act)
        self.conv2 = ConvBNLayer(mid, mid // 2, 1, f"{name}.conv2", act=act)
        self.blocks = nn.Sequential(*[BasicBlock(mid // 2, mid // 2, f"{name}.blocks.{i}", act=act) for i in range(n)])
        self.attn = EffectiveSELayer(mid, f"{name}.attn")
        self.conv3 = ConvBNLayer(mid, cout, 1, f"{name}.conv3", act=act)

    def forward(self, x):
        if self.conv_down is not None:
            x = self.conv_down(x)
        y = paddle.concat([self.conv1(x), self.blocks(self.conv2(x))], axis=1)
        return self.conv3(self.attn(y))


@BACKBONES.register
class CSPResNet(nn.Layer):
    """Large stem (three 3x3 convs, stride 2) and one stride-2 CSPResStage per entry of `layers`.

    Returns the stages of `return_idx` (1, 2, 3: strides 8, 16, 32). `width_mult` and `depth_mult` scale
    channels and block counts as in PaddleDetection (s: 0.50 / 0.33, m: 0.75 / 0.67, l: 1.0 / 1.0).
    """

    __shared__ = ["width_mult", "depth_mult"]

    def __init__(self, layers=(3, 6, 6, 3), channels=(64, 128, 256, 512, 1024), act="swish", return_idx=(1, 2, 3),
                 use_large_stem=True, width_mult=1.0, depth_mult=1.0, name="backbone"):
        super().__init__()
        if len(channels) != len(layers) + 1:
            raise ValueError(f"CSPResNet: {len(channels)} channels for {len(layers)} stages; give len(layers) + 1")
        if not use_large_stem:
            raise ValueError("CSPResNet: only use_large_stem: true (PP-YOLOE's crn backbones) is implemented")
        channels, layers = scaled(channels, width_mult), scaled(layers, depth_mult)
        half = channels[0] // 2
        self.stem = nn.Sequential(
            ("conv1", ConvBNLayer(3, half, 3, f"{name}.stem.conv1", stride=2, act=act)),
            ("conv2", ConvBNLayer(half, half, 3, f"{name}.stem.conv2", act=act)),
            ("conv3", ConvBNLayer(half, channels[0], 3, f"{name}.stem.conv3", act=act)))
        self.stages = nn.Sequential(*[
            CSPResStage(channels[i], channels[i + 1], n, 2, f"{name}.stages.{i}", act=act) for i, n in enumerate(layers)])
        bad = [i for i in return_idx if not 0 <= i < len(layers)]
        if bad:
            raise ValueError(f"CSPResNet return_idx {bad} out of range: stages are 0..{len(layers) - 1}")
        self.return_idx = list(return_idx)
        self.out_channels = [channels[i + 1] for i in self.return_idx]

    def forward(self, x):
        x = self.stem(x)
        feats = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.return_idx:
                feats.append(x)
        return feats
