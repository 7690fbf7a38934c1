"""MobileNetV1 with PaddleDetection's parameter names (`conv1_weights`, `conv2_1_dw_weights`, ...)."""
import paddle.nn as nn

from ...config import ConfigValueError
from ...config.checks import need, need_list
from ...registry import BACKBONES
from ..layers import ConvBN

# (name, depthwise stride, output channels at scale 1.0) for the 13 depthwise-separable blocks
_BLOCKS = [("conv2_1", 1, 64), ("conv2_2", 2, 128), ("conv3_1", 1, 128), ("conv3_2", 2, 256),
           ("conv4_1", 1, 256), ("conv4_2", 2, 512), ("conv5_1", 1, 512), ("conv5_2", 1, 512),
           ("conv5_3", 1, 512), ("conv5_4", 1, 512), ("conv5_5", 1, 512), ("conv5_6", 2, 1024),
           ("conv6", 1, 1024)]


def _conv_bn(cin, cout, k, name, stride=1, groups=1):
    return ConvBN(cin, cout, k, f"{name}_weights",
                  (f"{name}_bn_scale", f"{name}_bn_offset", f"{name}_bn_mean", f"{name}_bn_variance"),
                  stride=stride, groups=groups, act="relu")


@BACKBONES.register
class MobileNetV1(nn.Layer):
    """Returns the last feature map at each of `feature_strides` (8, 16, 32 -> conv4_1, conv5_5, conv6).

    `scale` multiplies every width, so 0.25 gives a 16x cheaper network for CPU demos.
    """

    def __init__(self, scale=1.0, in_channels=3, feature_strides=(8, 16, 32)):
        super().__init__()
        need("MobileNetV1.scale", scale, float, above=0)
        need("MobileNetV1.in_channels", in_channels, int, low=1)
        need_list("MobileNetV1.feature_strides", feature_strides, int)
        width = lambda c: max(8, int(c * scale))  # noqa: E731 - one-line width rule
        self.conv1 = _conv_bn(in_channels, width(32), 3, "conv1", stride=2)
        blocks, stride, cin = [], 2, width(32)
        self._taps = {}  # block index -> stride of its output, for the requested strides only
        for i, (name, s, cout) in enumerate(_BLOCKS):
            dw = _conv_bn(cin, cin, 3, f"{name}_dw", stride=s, groups=cin)
            sep = _conv_bn(cin, width(cout), 1, f"{name}_sep")
            blocks.append(nn.Sequential(dw, sep))
            stride, cin = stride * s, width(cout)
            nxt = _BLOCKS[i + 1][1] if i + 1 < len(_BLOCKS) else 2
            if stride in feature_strides and nxt == 2:  # last block before the next downsampling
                self._taps[i] = cin
        if len(self._taps) != len(set(feature_strides)):
            raise ConfigValueError(f"MobileNetV1.feature_strides is {feature_strides!r}; they must be among 2, 4, 8, 16, 32 "
                                   "(fix the config or -o MobileNetV1.feature_strides=...)")
        self.blocks = nn.LayerList(blocks)
        self.out_channels = list(self._taps.values())

    def forward(self, x):
        x = self.conv1(x)
        feats = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self._taps:
                feats.append(x)
        return feats
