"""The whole PP-YOLOE (demo width and depth) with every prunable conv at 0.3 in one call: the pruned program
computes what the original computes with the same channels zeroed and records the shapes it really has. The
train program learns a fixed batch, and goes on learning it once pruned."""
import os

import paddle
import pytest

from ppprune.config import create, load_config
from ppprune.engine.programs import eval_mode
from ppprune.models.legacy_ops import legacy_ops
from ppprune.registry import ARCHITECTURES
from tests.helpers import ROOT, oracle
from tests.pipeline.test_ppyoloe import _reference

pytestmark = pytest.mark.heavy(45)  # seconds, about: heavy modules start first

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
    # Paddle Inference runs a pruned PP-YOLOE in test_detector_tools (export checks it against the executor)
    pruner = oracle.check(ppyoloe, SHAPE, params, [0.3] * len(params), ir, batch=1)
    outputs = {p for p in params if ".pred_cls." in p or ".pred_reg." in p}
    assert {s["param"] for s in pruner.plan.skipped} == outputs
    # every other conv loses filters: on its own, or with the convs its channels are tied to (residual sums,
    # RepVGG branches, ESE gates), as one merged group
    whole = [p for p in params if p not in outputs and not len(pruner.plan.tensors.get(p, {}).get(0, []))]
    assert not whole, whole


# the demo config (Adam) at 64 px with 3 classes
TINY = ["num_classes=3", "TrainReader.image_shape=[3,64,64]", "EvalReader.image_shape=[3,64,64]",
        "LearningRate.base_lr=0.001", "LearningRate.schedulers={LinearWarmup: {start_factor: 0.1, steps: 4}}"]


@pytest.mark.parametrize("ir", ["pir", "legacy"])
def test_learns_a_fixed_batch_then_again_with_every_conv_pruned(ir):
    """The train program learns one batch; pruned as tools/prune.py prunes it (every prunable conv at 0.3,
    weights, gradients and Adam's moments together), it goes on learning from where it was."""
    import numpy as np

    from ppprune.cli.plans import remap
    from ppprune.engine import build_programs, train_loop
    from ppprune.prune import Pruner
    from tests.pipeline.test_picodet import IRS, fixed_batch

    paddle.seed(0)
    with IRS[ir]():
        programs = build_programs(load_config(DEMO, TINY), "train")
        exe, scope = paddle.static.Executor(paddle.CPUPlace()), paddle.static.Scope()
        exe.run(programs.startup, scope=scope)
        batch = [fixed_batch()]
        before, after = [], []
        train_loop(programs.train, exe, scope, batch, 30, on_iter=lambda it, loss: before.append(loss))
        # the task-aligned targets scale with the predicted scores and IoUs, about 0 at first: the loss climbs
        # while the model starts to predict, then falls
        peak = int(np.argmax(before))
        assert np.isfinite(before).all() and 0 < peak < 20 and np.mean(before[-5:]) < 0.5 * before[peak], before

        def stem():
            return np.array(scope.find_var("backbone.stem.conv1.conv.weight").get_tensor()).shape[0]

        filters, pruner = stem(), Pruner()
        params = [p for p in CONVS if ".pred_" not in p]  # the output convs write the losses' class and box axes
        train, _, _ = pruner.prune(programs.train.program, scope, params, [0.3] * len(params), place=paddle.CPUPlace())
        assert stem() == filters - int(0.3 * filters)  # the scope holds the pruned shapes
        train_loop(remap(programs.train, pruner, train), exe, scope, batch, 50, start_iter=30,
                   on_iter=lambda it, loss: after.append(loss))
        # the pruned model starts worse than where the unpruned one ended, and learns the batch again
        assert np.isfinite(after).all() and after[0] > np.mean(before[-5:]), (before, after)
        assert np.mean(after[-5:]) < 0.7 * max(after), after
