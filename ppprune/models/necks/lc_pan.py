"""LCPAN (PicoDet's neck, the LCNet-block CSP-PAN of picodet_*_lcnet): every input level to `out_channels` by a
1x1 ConvBN, a top-down then a bottom-up path whose fusions are two LCNet depthwise-separable blocks, and
optionally a fourth, stride-2 level on top.

Names follow PaddleDetection (`neck.conv_t.convs.0.conv.weight`, `neck.downsamples.1.dwconv.weight`,
`neck.top_down_blocks.0.1.pw_conv.bn.weight`).
"""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ...registry import NECKS
from ..backbones.lcnet import ConvBNLayer, blocks, bn_names
from ..layers import activate
from ..layers import batch_norm, conv2d


class DPModule(nn.Layer):
    """kxk conv with `cout` groups (`dwconv`, `bn1`), activation, 1x1 conv (`pwconv`, `bn2`), activation
    unless `use_act_in_out` is off. Depthwise when cin == cout; PicoHeadV2's cls_align (cout 1) is a dense conv."""

    def __init__(self, cin, cout, k, name, stride=1, act="hard_swish", use_act_in_out=True):
        super().__init__()
        self.dwconv = conv2d(cin, cout, k, f"{name}.dwconv.weight", stride=stride, groups=cout)
        self.bn1 = batch_norm(cout, bn_names(f"{name}.bn1"))
        self.pwconv = conv2d(cout, cout, 1, f"{name}.pwconv.weight")
        self.bn2 = batch_norm(cout, bn_names(f"{name}.bn2"))
        self.act_type, self.act_out = act, use_act_in_out

    def forward(self, x):
        x = self.bn2(self.pwconv(activate(self.bn1(self.dwconv(x)), self.act_type)))
        return activate(x, self.act_type) if self.act_out else x


class ChannelT(nn.Layer):
    """One 1x1 ConvBN per input level, all to the same width (`name`.convs.i)."""

    def __init__(self, in_channels, out_channels, name, act="hard_swish"):
        super().__init__()
        self.convs = nn.LayerList([ConvBNLayer(c, out_channels, 1, f"{name}.convs.{i}", act=act)
                                   for i, c in enumerate(in_channels)])

    def forward(self, feats):
        return [conv(f) for conv, f in zip(self.convs, feats)]


@NECKS.register
class LCPAN(nn.Layer):
    """`in_channels` lists the backbone features shallow to deep; returns `num_features` maps of
    `out_channels` each, shallow to deep (strides 8, 16, 32 and, with 4, 64), as PicoHeadV2 takes them."""

    def __init__(self, in_channels, out_channels=96, kernel_size=5, num_features=3, use_depthwise=True,
                 act="hard_swish", name="neck"):
        super().__init__()
        if num_features not in (len(in_channels), len(in_channels) + 1):
            raise ValueError(f"LCPAN num_features {num_features}: give {len(in_channels)} (one per input level) or "
                             f"{len(in_channels) + 1} (an extra stride-2 level on top)")
        c = out_channels

        def down(what):  # a stride-2 kxk conv: depthwise-separable or plain
            if use_depthwise:
                return DPModule(c, c, kernel_size, f"{name}.{what}", stride=2, act=act)
            return ConvBNLayer(c, c, kernel_size, f"{name}.{what}", stride=2, act=act)

        def fuse(what):  # concat of two levels (2c) -> c by two LCNet blocks
            return blocks([(kernel_size, 2 * c, 2 * c, 1, False), (kernel_size, 2 * c, c, 1, False)], f"{name}.{what}", act)

        self.conv_t = ChannelT(in_channels, c, f"{name}.conv_t", act)
        self.num_levels = len(in_channels)
        self.first_top_conv = self.second_top_conv = None
        if num_features > self.num_levels:
            self.first_top_conv, self.second_top_conv = down("first_top_conv"), down("second_top_conv")
        # top_down_blocks.j fuses level L-2-j with the upsampled level above it
        self.top_down_blocks = nn.LayerList([fuse(f"top_down_blocks.{j}") for j in range(self.num_levels - 1)])
        self.downsamples = nn.LayerList([down(f"downsamples.{i}") for i in range(self.num_levels - 1)])
        self.bottom_up_blocks = nn.LayerList([fuse(f"bottom_up_blocks.{i}") for i in range(self.num_levels - 1)])
        self.out_channels = [c] * num_features

    def forward(self, feats):
        feats = self.conv_t(feats)
        inner = [feats[-1]]
        for j in range(self.num_levels - 1):
            up = F.interpolate(inner[0], scale_factor=2.0, mode="nearest")
            inner.insert(0, self.top_down_blocks[j](paddle.concat([up, feats[-2 - j]], axis=1)))
        outs = [inner[0]]
        for i in range(self.num_levels - 1):
            outs.append(self.bottom_up_blocks[i](paddle.concat([self.downsamples[i](outs[-1]), inner[i + 1]], axis=1)))
        if self.first_top_conv is not None:
            outs.append(paddle.add(self.first_top_conv(feats[-1]), self.second_top_conv(outs[-1])))
        return outs
