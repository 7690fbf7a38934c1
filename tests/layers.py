"""Dygraph Layers for the pruning oracle: shape queries, a data-dependent `if`, a shuffle block."""
import paddle
from paddle import nn
import paddle.nn.functional as F


def _cbr(cin, cout, k=3, groups=1, act=nn.ReLU):
    return nn.Sequential(nn.Conv2D(cin, cout, k, padding=k // 2, groups=groups, bias_attr=False), nn.BatchNorm2D(cout),
                         act() if act else nn.Identity())


class ShapeQueryHead(nn.Layer):
    """PicoDet-style: `x.shape` gives the upsample target and the regression reshape, a depthwise +
    pointwise head, a [N, C, H, W] * [N, 1, H, W] quality product, a DFL-style [N, 4*m, H, W] ->
    [N, 4, m, H*W] reshape into the output."""

    def __init__(self):
        super().__init__()
        self.stem = _cbr(3, 8)
        self.down = nn.Sequential(nn.Conv2D(8, 12, 3, stride=2, padding=1), nn.ReLU())
        self.lat = _cbr(12, 8, k=1)
        self.dw = _cbr(8, 8, groups=8, act=nn.Hardswish)
        self.pw = _cbr(8, 12, k=1, act=nn.Hardswish)
        self.cls = nn.Conv2D(12, 3, 1)
        self.quality = nn.Conv2D(12, 1, 1)
        self.reg = nn.Conv2D(12, 4 * 5, 1)
        self.register_buffer("project", paddle.linspace(0, 4, 5).reshape([5, 1]))

    def forward(self, x):
        y = self.stem(x)
        n, c, h, w = y.shape
        up = F.interpolate(self.lat(self.down(y)), size=[h, w], mode="nearest")
        feat = self.pw(self.dw(up + y))
        cls = F.sigmoid(self.cls(feat))
        score = cls * F.sigmoid(self.quality(feat))  # [N, 3, H, W] * [N, 1, H, W]
        reg = self.reg(feat)
        b, _, rh, rw = reg.shape
        # PicoDet's Integral: a softmax over the m bins, then a fixed projection (a buffer, not trained)
        reg = F.linear(F.softmax(paddle.reshape(reg, [-1, 5]), axis=1), self.project)
        return paddle.concat([paddle.flatten(score, 1), paddle.reshape(reg, [-1, 4 * rh * rw])], axis=1)


class DataDependentIf(nn.Layer):
    """A Python `if` on a tensor value: to_static turns it into a conditional block with a conv inside."""

    def __init__(self):
        super().__init__()
        self.before = _cbr(3, 8)
        self.inside = _cbr(8, 6)
        self.back = nn.Conv2D(6, 8, 1)
        self.after = _cbr(8, 6)
        self.fc = nn.Linear(6, 10)

    def forward(self, x):
        y = self.before(x)
        if paddle.mean(x) > 0.25:
            y = self.back(self.inside(y)) + y
        else:
            y = y * 2.0
        y = self.after(y)
        return self.fc(paddle.flatten(F.adaptive_avg_pool2d(y, 1), 1))
