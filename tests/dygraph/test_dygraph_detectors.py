"""Today's detectors as dygraph Layers: PP-YOLOE and PicoDet (demo configs, narrowed) with every conv at 0.3 in
one `prune_vars` call compute what the original computes with the same channels zeroed, and restore."""
import numpy as np
import paddle
import pytest

from ppprune.config import create, load_config
from ppprune.dygraph import L1NormFilterPruner
from ppprune.engine.programs import eval_mode
from ppprune.registry import ARCHITECTURES
from tests.helpers.dygraph import assert_attrs_true, assert_same, snapshot
from tests.pipeline import test_picodet
from tests.pipeline.test_ppyoloe_prune import DEMO as PPYOLOE_DEMO

pytestmark = [pytest.mark.usefixtures("dygraph"), pytest.mark.heavy(15)]  # heavy: seconds, about


class Network(paddle.nn.Layer):
    """The detector's network outputs before NMS as one tensor (boxes and scores come from them by fixed
    arithmetic), so every conv's channels reach the output."""

    def __init__(self, arch, cfg):
        super().__init__()
        self.arch, self.model = arch, create(ARCHITECTURES, arch, cfg)

    def forward(self, x):
        m = self.model
        if self.arch == "PPYOLOE":
            cls, reg, _, _ = m.yolo_head(m.neck(m.backbone(x)))
            return paddle.concat([cls, reg.flatten(2), m.yolo_head.distances(reg)], axis=-1)
        boxes, scores = m.head.decode(m.head(m.neck(m.backbone(x))))
        return paddle.concat([boxes.flatten(1), scores.flatten(1)], axis=1)


FAMILIES = {  # config, overrides, input side
    "PPYOLOE": (PPYOLOE_DEMO, [], 32),
    "PicoDet": (test_picodet.DEMO, test_picodet.TINY, test_picodet.SIZE),
}


def _randomise(model, seed=0):
    """Random conv weights (PaddleDetection starts the output convs at zero: the outputs would be their
    biases alone) and BN statistics and affine terms, so a zeroed channel changes the output wherever it goes."""
    rng = np.random.RandomState(seed)
    for p in model.parameters():
        if len(p.shape) == 4:
            p.set_value(rng.normal(0, 0.2, p.shape).astype("float32"))
    for layer in model.sublayers():
        if isinstance(layer, (paddle.nn.BatchNorm2D, paddle.nn.BatchNorm)):
            for t in (layer.weight, layer.bias, layer._mean):
                t.set_value(rng.uniform(-1, 1, t.shape).astype("float32"))
            layer._variance.set_value(rng.uniform(0.5, 1.5, layer._variance.shape).astype("float32"))


@pytest.mark.parametrize("arch", sorted(FAMILIES))
def test_every_conv_at_0_3_equals_zeroing_and_restores(arch):
    config, opts, size = FAMILIES[arch]
    paddle.seed(0)
    net = Network(arch, load_config(config, opts))
    _randomise(net)
    eval_mode(net)
    shape = [1, 3, size, size]
    x = paddle.to_tensor(np.random.RandomState(1).rand(2, 3, size, size).astype("float32"))
    before, ref = snapshot(net), net(x).numpy()

    pruner = L1NormFilterPruner(net, shape)
    ratios = {w: 0.3 for w in pruner.conv_weights(followers=False)}
    lazy = pruner.prune_vars(ratios, apply="lazy")
    zeroed = net(x).numpy()
    lazy.restore(net)
    assert_same(snapshot(net), before)
    assert not np.allclose(zeroed, ref)

    plan = pruner.prune_vars(ratios)
    assert [e.pruned for e in plan.entries] == [e.pruned for e in lazy.entries]
    assert sum(len(e.pruned) for e in plan.entries) > 0 and plan.pruned_flops > 0.2
    # only the output convs keep their channels (the head's class, box and, in PicoDet, class-alignment convs)
    skipped = {s["param"] for s in plan.skipped}
    assert skipped and all(("pred_" in p) or ("head_" in p) or ("cls_align" in p) for p in skipped), skipped
    np.testing.assert_allclose(net(x).numpy(), zeroed, rtol=1e-4, atol=1e-4)
    assert_attrs_true(net)

    plan.restore(net)
    assert_same(snapshot(net), before)
    np.testing.assert_array_equal(net(x).numpy(), ref)
