"""ResNet (18/34 basic blocks, 50 bottlenecks) with PaddleDetection names (`res2a_branch2a_weights`, ...).

Meant for classification experiments; `width` and `small_input` shrink it for 28x28 / 32x32 images.
"""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ...config import ConfigValueError
from ...config.checks import need, need_list
from ...registry import BACKBONES
from ..layers import ConvBN

_DEPTHS = {18: ("basic", [2, 2, 2, 2]), 34: ("basic", [3, 4, 6, 3]), 50: ("bottleneck", [3, 4, 6, 3])}


def _conv_bn(cin, cout, k, name, stride=1, act="relu"):
    # PaddleDetection: res2a_branch2a_weights pairs with bn2a_branch2a_*, conv1_weights with bn_conv1_*
    bn = "bn_" + name if name == "conv1" else "bn" + name[3:]
    return ConvBN(cin, cout, k, f"{name}_weights",
                  (f"{bn}_scale", f"{bn}_offset", f"{bn}_mean", f"{bn}_variance"), stride=stride, act=act)


class _Block(nn.Layer):
    def __init__(self, kind, cin, width, stride, name):
        super().__init__()
        expansion = 4 if kind == "bottleneck" else 1
        cout = width * expansion
        if kind == "bottleneck":
            self.branch2 = nn.Sequential(
                _conv_bn(cin, width, 1, f"{name}_branch2a"),
                _conv_bn(width, width, 3, f"{name}_branch2b", stride=stride),
                _conv_bn(width, cout, 1, f"{name}_branch2c", act=None))
        else:
            self.branch2 = nn.Sequential(
                _conv_bn(cin, width, 3, f"{name}_branch2a", stride=stride),
                _conv_bn(width, cout, 3, f"{name}_branch2b", act=None))
        self.branch1 = _conv_bn(cin, cout, 1, f"{name}_branch1", stride=stride, act=None) \
            if stride != 1 or cin != cout else None
        self.out_channels = cout

    def forward(self, x):
        short = x if self.branch1 is None else self.branch1(x)
        return F.relu(paddle.add(short, self.branch2(x)))


@BACKBONES.register
class ResNet(nn.Layer):
    """Returns the outputs of stages `return_stages` (2..5, PaddleDetection numbering)."""

    def __init__(self, depth=18, width=64, in_channels=3, small_input=False, return_stages=(5,)):
        super().__init__()
        if depth not in _DEPTHS:
            raise ConfigValueError(f"ResNet.depth is {depth!r}; it must be one of {sorted(_DEPTHS)} (fix the config or "
                                   "-o ResNet.depth=...)")
        need("ResNet.width", width, int, low=1)
        need("ResNet.in_channels", in_channels, int, low=1)
        need("ResNet.small_input", small_input, bool)
        for i, stage in enumerate(need_list("ResNet.return_stages", return_stages, int)):
            need(f"ResNet.return_stages[{i}]", stage, int, low=2, high=5)
        kind, counts = _DEPTHS[depth]
        # small images (28x28, 32x32) lose too much to the 7x7/2 stem + max pool
        self.conv1 = _conv_bn(in_channels, width, 3 if small_input else 7, "conv1", stride=1 if small_input else 2)
        self.pool = None if small_input else nn.MaxPool2D(3, stride=2, padding=1)
        stages, cin = [], width
        for s, count in enumerate(counts):
            blocks = []
            for b in range(count):
                name = f"res{s + 2}{chr(ord('a') + b)}"
                block = _Block(kind, cin, width * 2 ** s, 2 if b == 0 and s > 0 else 1, name)
                blocks.append(block)
                cin = block.out_channels
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.LayerList(stages)
        self.return_stages = list(return_stages)
        self.out_channels = [stages[s - 2][-1].out_channels for s in self.return_stages]

    def forward(self, x):
        x = self.conv1(x)
        if self.pool is not None:
            x = self.pool(x)
        feats = []
        for s, stage in enumerate(self.stages, start=2):
            x = stage(x)
            if s in self.return_stages:
                feats.append(x)
        return feats
