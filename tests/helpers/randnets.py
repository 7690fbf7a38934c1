"""A seeded generator of conv DAGs over the ops the core follows, for the random-architecture oracle."""
import numpy as np
import paddle
import paddle.nn.functional as F

from . import nets

HW = 8


BASIC = ("conv", "conv", "dw", "grouped", "add", "concat", "split", "se", "interp", "act")
OPS = BASIC + ("csp", "gate", "shuffle", "cond")


class RandomNet:
    """Build with `RandomNet(seed)(x)`; `ops` are the patterns drawn from (a seed found with another list
    builds another net)."""

    def __init__(self, seed, steps=10, ops=OPS):
        self.rng = np.random.RandomState(seed)
        self.steps, self.ops = steps, list(ops)
        self.count = 0

    def _name(self, kind):
        self.count += 1
        return f"{kind}{self.count}"

    def __call__(self, x):
        self.x = x
        nodes = [(nets.conv(x, 3, 8, self._name("c")), 8)]
        used = set()
        for _ in range(self.steps):
            op = self.rng.choice(self.ops)
            i = self.rng.randint(len(nodes))
            t, c = nodes[i]
            new = getattr(self, "_" + op)(t, c, nodes)
            if new:
                used.add(i)
                nodes.extend(new)
        leaves = [n for j, n in enumerate(nodes) if j not in used] or [nodes[-1]]
        y = paddle.concat([t for t, _ in leaves], axis=1) if len(leaves) > 1 else leaves[0][0]
        c = sum(c for _, c in leaves)
        y = nets.conv(y, c, 6, self._name("mix"), k=1)
        return nets.head(y, 6, HW)

    def _conv(self, t, c, nodes):
        cout = int(self.rng.randint(3, 12))
        k = int(self.rng.choice([1, 3]))
        act = str(self.rng.choice(["relu", "relu6", "hardswish", "leaky_relu", "none"]))
        return [(nets.conv(t, c, cout, self._name("c"), k=k, bias=bool(self.rng.rand() < 0.3),
                           act=None if act == "none" else act), cout)]

    def _dw(self, t, c, nodes):
        return [(nets.conv(t, c, c, self._name("dw"), groups=c, act="relu6"), c)]

    def _grouped(self, t, c, nodes):
        if c % 2:
            return None
        cout = 2 * int(self.rng.randint(2, 5))
        return [(nets.conv(t, c, cout, self._name("g"), groups=2), cout)]

    def _add(self, t, c, nodes):
        same = [u for u, cu in nodes if cu == c and u is not t]
        if not same:
            return None
        return [(t + same[self.rng.randint(len(same))], c)]

    def _concat(self, t, c, nodes):
        u, cu = nodes[self.rng.randint(len(nodes))]
        return [(paddle.concat([t, u], axis=1), c + cu)]

    def _split(self, t, c, nodes):
        if c < 4:
            return None
        a = c // 2
        p, q = paddle.split(t, [a, c - a], axis=1)
        return [(p, a), (q, c - a)]

    def _se(self, t, c, nodes):
        s = F.adaptive_avg_pool2d(t, 1)
        s = nets.conv(s, c, max(2, c // 2), self._name("sq"), k=1, bias=True, bn=False)
        s = nets.conv(s, max(2, c // 2), c, self._name("ex"), k=1, bias=True, bn=False, act="sigmoid")
        return [(t * s, c)]

    def _interp(self, t, c, nodes):
        up = F.interpolate(t, size=[2 * HW, 2 * HW], mode=str(self.rng.choice(["nearest", "bilinear"])))
        return [(F.avg_pool2d(up, 2), c)]

    def _act(self, t, c, nodes):
        return [(nets._act(str(self.rng.choice(["swish", "hardsigmoid", "relu6", "mish"])))(t), c)]

    def _csp(self, t, c, nodes):
        """Two convs concatenated, added to a third conv as wide as both: their groups overlap."""
        if c < 4:
            return None
        a = int(self.rng.randint(1, c))
        halves = [nets.conv(t, c, a, self._name("ca"), k=1), nets.conv(t, c, c - a, self._name("cb"))]
        return [(paddle.concat(halves, axis=1) + nets.conv(t, c, c, self._name("cs"), k=1, act=None), c)]

    def _gate(self, t, c, nodes):
        """A 1-channel map broadcast over the channels ([N, C, H, W] * [N, 1, H, W])."""
        g = nets.conv(t, c, 1, self._name("gt"), k=1, bias=True, bn=False, act="hardsigmoid")
        return [(t * g, c)]
    def _shuffle(self, t, c, nodes):
        groups = int(self.rng.choice([2, 4]))
        if c % groups or c == groups:
            return None
        return [(nets._channel_shuffle(t, groups), c)]

    def _cond(self, t, c, nodes):
        """A branch decided by the input image (a predicate on pruned channels is refused): a conv (built
        outside the block, see nets.cond_block) added to the tensor on one side, a scale on the other."""
        inside = paddle.nn.Conv2D(c, c, 3, padding=1, weight_attr=nets._attr(self._name("cb") + "_weights"), bias_attr=False)
        with nets._legacy_logical_not():
            out = paddle.static.nn.cond(paddle.mean(self.x) > 0.25, lambda: F.relu(inside(t)) + t, lambda: t * 0.5)
        return [(out, c)]
