"""Dygraph Layers for the pruning oracle: shape queries, a data-dependent `if`, a shuffle block."""
import numpy as np
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


def _gelu(x):
    if paddle.in_dynamic_mode() or paddle.framework.in_pir_mode():
        return F.gelu(x)
    from .nets import _legacy_op  # paddle 3.3.1's gelu rejects a legacy Variable

    return _legacy_op("gelu", x)


class ConvNeXtStage(nn.Layer):
    """ConvNeXt-style: a patchify stem, two blocks (depthwise 7x7, NHWC layer norm over the channels,
    pointwise MLP as Linear layers, layer scale, residual), a downsampling conv and a linear head. The
    layer norms take their statistics over the residual stream's channels, so the stem's pruned model is
    the narrower network (`sliced`), not the zeroed one."""

    def __init__(self, width=16, wide=24, hidden=64, classes=10):
        super().__init__()
        self.stem = nn.Conv2D(3, width, 2, stride=2)
        self.dws = nn.LayerList([nn.Conv2D(width, width, 7, padding=3, groups=width) for _ in range(2)])
        self.norms = nn.LayerList([nn.LayerNorm(width) for _ in range(2)])
        self.ups = nn.LayerList([nn.Linear(width, hidden) for _ in range(2)])
        self.downs = nn.LayerList([nn.Linear(hidden, width) for _ in range(2)])
        self.gamma0, self.gamma1 = (self.create_parameter([width]) for _ in range(2))  # ParameterList fails in PIR
        self.down = nn.Conv2D(width, wide, 2, stride=2)
        self.fc = nn.Linear(wide, classes)

    def forward(self, x):
        x = self.stem(x)
        for dw, norm, up, down, gamma in zip(self.dws, self.norms, self.ups, self.downs, (self.gamma0, self.gamma1)):
            y = paddle.transpose(dw(x), [0, 2, 3, 1])
            y = gamma * down(_gelu(up(norm(y))))
            x = x + paddle.transpose(y, [0, 3, 1, 2])
        return self.fc(paddle.flatten(F.adaptive_avg_pool2d(self.down(x), 1), 1))

    @staticmethod
    def sliced(state, keep, keep_wide):
        """The state of the narrower network keeping stream channels `keep` and downsampling outputs
        `keep_wide`, cut from a full `state` ({structured name: array}) by the architecture alone."""
        axes = {"stem.weight": 0, "stem.bias": 0, "down.weight": 1}
        for i in range(2):
            axes.update({f"dws.{i}.weight": 0, f"dws.{i}.bias": 0, f"norms.{i}.weight": 0, f"norms.{i}.bias": 0,
                         f"ups.{i}.weight": 0, f"downs.{i}.weight": 1, f"downs.{i}.bias": 0, f"gamma{i}": 0})
        out = {}
        for name, arr in state.items():
            if name in axes:
                arr = np.take(arr, keep, axis=axes[name])
            if name in ("down.weight", "down.bias"):
                arr = np.take(arr, keep_wide, axis=0)
            if name == "fc.weight":
                arr = np.take(arr, keep_wide, axis=0)
            out[name] = arr
        return out

    @classmethod
    def narrower(cls, state, keep, keep_wide):
        """A Layer built `len(keep)` / `len(keep_wide)` wide holding the `sliced` weights."""
        ref = cls(len(keep), len(keep_wide))
        for name, arr in cls.sliced(state, keep, keep_wide).items():
            param = dict(ref.named_parameters())[name]
            assert list(param.shape) == list(arr.shape), (name, param.shape, arr.shape)
            param.set_value(arr)
        ref.eval()
        return ref
