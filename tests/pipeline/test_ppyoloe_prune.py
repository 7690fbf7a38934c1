"""The whole PP-YOLOE (demo width and depth) with every prunable conv at 0.3 in one call: the pruned program
computes what the original computes with the same channels zeroed and records the shapes it really has."""
import os

import paddle
import pytest

from ppprune.config import create, load_config
from ppprune.engine.programs import eval_mode
from ppprune.models.legacy_ops import legacy_ops
from ppprune.registry import ARCHITECTURES
from tests.helpers import ROOT, oracle
from tests.pipeline.test_ppyoloe import _reference

DEMO = os.path.join(ROOT, "configs", "ppyoloe", "ppyoloe_crn_demo.yml")
SHAPE = [3, 32, 32]  # the deepest map 1 x 1: every op still sees every channel


def ppyoloe(x):
    """The network's outputs before NMS, every anchor's class logits, box-bin logits and expected distances, as
    one [B, L, C + 4 * 17 + 4] tensor (boxes and scores come from these by fixed arithmetic)."""
    model = create(ARCHITECTURES, "PPYOLOE", load_config(DEMO))
    eval_mode(model)
    with legacy_ops():  # what Detector.forward does for the head
        cls, reg, _, _ = model.yolo_head(model.neck(model.backbone(x)))
        return paddle.concat([cls, reg.flatten(2), model.yolo_head.distances(reg)], axis=-1)


# PaddleDetection's convs of PP-YOLOE-s, whose depth the demo shares (its width is half of -s's):
# the fixture names every conv of the program (proj_conv is the DFL bin values, used by a matmul, no conv)
CONVS = [n for n, s in _reference().items() if len(s) == 4 and n != "yolo_head.proj_conv.weight"]


@pytest.mark.parametrize("ir", ["pir", "legacy"])
def test_every_prunable_conv_at_once(ir):
    params = CONVS
    # Paddle Inference runs a pruned PP-YOLOE in test_ppyoloe_tools (export checks it against the executor)
    pruner = oracle.check(ppyoloe, SHAPE, params, [0.3] * len(params), ir, batch=1)
    outputs = {p for p in params if ".pred_cls." in p or ".pred_reg." in p}
    assert {s["param"] for s in pruner.plan.skipped} == outputs
    # every other conv loses filters: on its own, or with the convs its channels are tied to (residual sums,
    # RepVGG branches, ESE gates), as one merged group
    whole = [p for p in params if p not in outputs and not len(pruner.plan.tensors.get(p, {}).get(0, []))]
    assert not whole, whole
