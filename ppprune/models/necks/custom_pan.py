"""CustomCSPPAN (PP-YOLOE's neck): a top-down FPN then a bottom-up PAN of CSP stages, SPP on the deepest level.

Names follow PaddleDetection (`neck.fpn_stages.0.0.convs.spp.conv.conv.weight`).
"""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ...registry import NECKS
from ..backbones.cspresnet import BasicBlock, ConvBNLayer, scaled


class SPP(nn.Layer):
    """x and its stride-1 max pools (5, 9, 13) concatenated, then a 1x1 ConvBN (`name`.conv)."""

    def __init__(self, cin, cout, name, pool_sizes=(5, 9, 13), act="swish"):
        super().__init__()
        self.pool_sizes = list(pool_sizes)
        self.conv = ConvBNLayer(cin, cout, 1, f"{name}.conv", act=act)

    def forward(self, x):
        pools = [F.max_pool2d(x, k, stride=1, padding=k // 2) for k in self.pool_sizes]
        return self.conv(paddle.concat([x, *pools], axis=1))


class CSPStage(nn.Layer):
    """Two 1x1 halves; `n` BasicBlocks (no shortcut) on one, SPP after the middle block if `spp`; concat; 1x1."""

    def __init__(self, cin, cout, n, name, act="swish", spp=False):
        super().__init__()
        mid = cout // 2
        self.conv1 = ConvBNLayer(cin, mid, 1, f"{name}.conv1", act=act)
        self.conv2 = ConvBNLayer(cin, mid, 1, f"{name}.conv2", act=act)
        convs = []
        for i in range(n):
            convs.append((str(i), BasicBlock(mid, mid, f"{name}.convs.{i}", act=act, shortcut=False)))
            if spp and i == (n - 1) // 2:
                convs.append(("spp", SPP(mid * 4, mid, f"{name}.convs.spp", act=act)))
        self.convs = nn.Sequential(*convs)
        self.conv3 = ConvBNLayer(mid * 2, cout, 1, f"{name}.conv3", act=act)

    def forward(self, x):
        return self.conv3(paddle.concat([self.conv1(x), self.convs(self.conv2(x))], axis=1))


def _stage(cin, cout, stage_num, block_num, name, act, spp):
    """`stage_num` CSPStages in a Sequential (`name`.0, `name`.1, ...)."""
    return nn.Sequential(*[(str(j), CSPStage(cin if j == 0 else cout, cout, block_num, f"{name}.{j}", act=act, spp=spp))
                           for j in range(stage_num)])


@NECKS.register
class CustomCSPPAN(nn.Layer):
    """`in_channels` lists the backbone features shallow to deep; returns fused maps deep to shallow
    (`out_channels`, e.g. strides 32, 16, 8), as PPYOLOEHead takes them."""

    __shared__ = ["width_mult", "depth_mult"]

    def __init__(self, in_channels, out_channels=(1024, 512, 256), act="swish", stage_num=1, block_num=3,
                 spp=True, width_mult=1.0, depth_mult=1.0, name="neck"):
        super().__init__()
        out_channels = scaled(out_channels, width_mult)
        block_num = scaled([block_num], depth_mult)[0]
        if len(out_channels) != len(in_channels):
            raise ValueError(f"CustomCSPPAN: {len(out_channels)} out_channels for {len(in_channels)} input levels")
        self.num_levels = len(in_channels)
        fpn_stages, fpn_routes, pre = [], [], 0
        for i, (cin, cout) in enumerate(zip(reversed(in_channels), out_channels)):
            fpn_stages.append(_stage(cin + pre // 2, cout, stage_num, block_num, f"{name}.fpn_stages.{i}", act, spp and i == 0))
            if i < self.num_levels - 1:
                fpn_routes.append(ConvBNLayer(cout, cout // 2, 1, f"{name}.fpn_routes.{i}", act=act))
            pre = cout
        pan_stages, pan_routes = [], []
        for i in range(self.num_levels - 1):  # index i fuses level i + 1 (downsampled) into level i
            pan_routes.append(ConvBNLayer(out_channels[i + 1], out_channels[i + 1], 3, f"{name}.pan_routes.{i}",
                                          stride=2, act=act))
            pan_stages.append(_stage(out_channels[i] + out_channels[i + 1], out_channels[i], stage_num, block_num,
                                     f"{name}.pan_stages.{i}", act, False))
        self.fpn_stages, self.fpn_routes = nn.LayerList(fpn_stages), nn.LayerList(fpn_routes)
        self.pan_stages, self.pan_routes = nn.LayerList(pan_stages), nn.LayerList(pan_routes)
        self.out_channels = list(out_channels)

    def forward(self, feats):
        fpn, route = [], None
        for i, feat in enumerate(reversed(feats)):
            if route is not None:
                feat = paddle.concat([route, feat], axis=1)
            route = self.fpn_stages[i](feat)
            fpn.append(route)
            if i < self.num_levels - 1:
                route = F.interpolate(self.fpn_routes[i](route), scale_factor=2.0, mode="nearest")
        outs = [fpn[-1]]
        for i in reversed(range(self.num_levels - 1)):
            route = paddle.concat([self.pan_routes[i](outs[-1]), fpn[i]], axis=1)
            outs.append(self.pan_stages[i](route))
        return outs[::-1]
