"""PicoDet: PaddleDetection's state-dict names and shapes; built from its configs in both IRs it learns a fixed
batch, evaluates to [N, 6] boxes in original pixels, and prunes exactly (pruned == zeroed) with every conv at 0.3."""
import ast
import contextlib
import os

import numpy as np
import paddle
import pytest

from ppprune.config import create, load_config
from ppprune.engine import build_programs, train_loop
from ppprune.models.legacy_ops import legacy_ops
from ppprune.registry import ARCHITECTURES

from tests.helpers import ROOT, oracle

pytestmark = pytest.mark.heavy(50)  # seconds, about: heavy modules start first

REFERENCE = os.path.join(os.path.dirname(__file__), "fixtures", "picodet_s_320_coco_lcnet.state_dict.txt")
DEMO = os.path.join(ROOT, "configs/picodet/picodet_lcnet_demo.yml")
SIZE = 64
# the demo config narrowed (LCNet x0.25, 16-channel neck and head) at 64 px: the same structure (4 levels, SE,
# cls_align), cheap to build. Momentum, as the full configs: the demo's Adam doubles the train program (and
# its first PIR run took ~20 s)
TINY = ["Optimizer={name: Momentum, momentum: 0.9}", "LCNet.scale=0.25", "LCPAN.out_channels=16",
        "PicoHeadV2.conv_feat.feat_in=16", "PicoHeadV2.conv_feat.feat_out=16", "PicoHeadV2.feat_in_chan=16",
        "num_classes=3", f"TrainReader.image_shape=[3,{SIZE},{SIZE}]", f"EvalReader.image_shape=[3,{SIZE},{SIZE}]",
        "LearningRate.base_lr=0.01", "LearningRate.schedulers={LinearWarmup: {start_factor: 0.1, steps: 4}}"]
IRS = {"pir": contextlib.nullcontext, "legacy": paddle.pir_utils.OldIrGuard}
FIRST_LOSSES = {}  # per IR: the same seed and batch must give the same losses in both


def _reference():
    rows = [line.rstrip("\n").split("\t") for line in open(REFERENCE) if not line.startswith("#")]
    return [(name, ast.literal_eval(shape)) for name, shape in rows]


def test_picodet_s_has_paddledetection_names_and_shapes():
    cfg = load_config(os.path.join(ROOT, "configs/picodet/picodet_s_320_coco_lcnet.yml"))
    main, startup = paddle.static.Program(), paddle.static.Program()  # kept: PIR values die with their program
    with paddle.static.program_guard(main, startup), paddle.utils.unique_name.guard():
        state = create(ARCHITECTURES, "PicoDet", cfg).state_dict()
    assert [(k, list(t.shape)) for k, t in state.items()] == _reference()  # names, shapes and order
    # every tensor is named by its key, but for the output convs PaddleDetection registers twice (one tensor)
    aliases = {k: t.name for k, t in state.items() if k != t.name}
    assert aliases == {f"head.head_{kind}{i}.{p}": f"head.head_{kind}_list.{i}.{p}"
                       for kind in ("cls", "reg") for i in range(4) for p in ("weight", "bias")}


@pytest.fixture(scope="module", params=list(IRS))
def built(request):
    """Train + eval programs of the tiny demo config in one IR, initialised."""
    paddle.seed(0)  # the same initial weights every run (and in both IRs)
    with IRS[request.param]():
        programs = build_programs(load_config(DEMO, TINY), "train")
        exe, scope = paddle.static.Executor(paddle.CPUPlace()), paddle.static.Scope()
        exe.run(programs.startup, scope=scope)
        yield request.param, programs, exe, scope


def fixed_batch(n=2):
    rng = np.random.default_rng(0)
    corner = rng.uniform(2, 30, (n, 2, 2))
    boxes = np.zeros((n, 4, 4), "float32")  # two real boxes, two padding rows per image
    boxes[:, :2] = np.concatenate([corner, np.minimum(corner + rng.uniform(16, 32, (n, 2, 2)), SIZE - 1)], -1)
    score = np.zeros((n, 4), "float32")
    score[:, :2] = 1
    return {"image": rng.standard_normal((n, 3, SIZE, SIZE)).astype("float32"), "gt_bbox": boxes,
            "gt_class": rng.integers(0, 3, (n, 4)).astype("int32"), "gt_score": score}


def test_learns_a_fixed_batch_then_evaluates_to_boxes_in_original_pixels(built):
    ir, programs, exe, scope = built
    with IRS[ir]():
        losses = []
        batch = fixed_batch()
        train_loop(programs.train, exe, scope, [batch], 30, on_iter=lambda it, loss: losses.append(loss))
        # ~3.55 -> ~2.8 on average over the last 10 (the task-aligned assignment still moves, so it is not monotone)
        assert np.isfinite(losses).all() and np.mean(losses[-10:]) < 0.85 * losses[0], losses
        # legacy programs build the head and losses through ppprune.models.legacy_ops: same values as PIR
        FIRST_LOSSES[ir] = losses[:5]
        if len(FIRST_LOSSES) == 2:
            np.testing.assert_allclose(FIRST_LOSSES["legacy"], FIRST_LOSSES["pir"], rtol=1e-4)

        assert programs.eval.feeds == ["image", "scale_factor"]
        fetch = [programs.eval.fetches["bbox"], programs.eval.fetches["bbox_num"]]

        def detect(scale):
            feed = {"image": batch["image"], "scale_factor": np.full((2, 2), scale, "float32")}
            with paddle.static.scope_guard(scope):
                bbox, num = exe.run(programs.eval.program, feed=feed, fetch_list=fetch, return_numpy=False)
            return np.array(bbox), np.array(num)

        bbox, num = detect(1.0)
        assert num.shape == (2,) and num.min() > 0 and bbox.shape == (num.sum(), 6)
        assert set(bbox[:, 0]) <= {0, 1, 2} and (bbox[:, 1] > 0).all() and (bbox[:, 1] <= 1).all()
        # scale_factor = resized / original: an original twice the input size gets every box doubled
        big, big_num = detect(0.5)
        np.testing.assert_array_equal(big_num, num)
        np.testing.assert_allclose(big[:, 2:], 2 * bbox[:, 2:], rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(big[:, :2], bbox[:, :2], rtol=1e-6)


def _network(cfg):
    """image -> the eval network's raw outputs (decoded boxes and class scores, before NMS) in one tensor."""

    def net(image):
        model = create(ARCHITECTURES, "PicoDet", cfg)
        model.eval()
        with legacy_ops():
            boxes, scores = model.head.decode(model.head(model.neck(model.backbone(image))))
        return paddle.concat([boxes.flatten(1), scores.flatten(1)], axis=1)

    return net


@pytest.mark.parametrize("ir", list(IRS))
def test_pruning_every_conv_at_0_3_equals_zeroing(ir):
    net, shape = _network(load_config(DEMO, TINY)), [3, SIZE, SIZE]
    with oracle.ir_guard(ir):
        params = oracle.conv_weights(oracle.build(net, shape)[0])
    pruner = oracle.check(net, shape, params, [0.3] * len(params), ir)
    skipped = {s["param"] for s in pruner.plan.skipped}
    # only the output convs keep their channels: class, box and class-alignment (one channel) convs
    assert skipped == {p for p in params if p.startswith(("head.head_cls", "head.head_reg", "head.cls_align"))}, skipped
    assert sum(len(e.pruned) for e in pruner.plan.entries) > 0


def test_varifocal_loss_on_probabilities_equals_it_on_logits(dygraph):
    """PicoHeadV2 feeds the loss probabilities (a product of sigmoids); PP-YOLOE feeds logits."""
    from ppprune.models.losses.dense import varifocal_loss

    rng = np.random.default_rng(0)
    logits = paddle.to_tensor(rng.normal(0, 3, (2, 7, 3)).astype("float32"))
    onehot = paddle.to_tensor(np.eye(3, dtype="float32")[rng.integers(0, 3, (2, 7))] * (rng.random((2, 7, 1)) < 0.4))
    target = onehot * paddle.to_tensor(rng.random((2, 7, 1)).astype("float32"))
    on_logits = float(varifocal_loss(logits, target, onehot))
    assert on_logits > 0
    np.testing.assert_allclose(float(varifocal_loss(paddle.nn.functional.sigmoid(logits), target, onehot,
                                                    from_logits=False)), on_logits, rtol=1e-5)


def test_paddledetection_checkpoint_with_each_output_conv_under_two_keys_loads(tmp_path, capsys):
    """PaddleDetection's PicoDet state dict holds each output conv twice (`head_cls0` and `head_cls_list.0`, one
    tensor): such a file loads strictly; a second key whose values differ is a tensor the model lacks."""
    import pickle
    import re

    from ppprune.cli import driver
    from ppprune.engine import WeightsError
    from tests.pipeline.test_ppyoloe_weights import _values

    reference = dict(_reference())
    second = re.compile(r"head\.head_(cls|reg)(\d)\.")
    arrays = _values({k: s for k, s in reference.items() if not second.match(k)})
    for key in reference:  # the second names: the same arrays
        if second.match(key):
            arrays[key] = arrays[second.sub(r"head.head_\1_list.\2.", key)]
    path = tmp_path / "picodet_s_320_coco_lcnet.pdparams"
    with paddle.base.dygraph.guard():
        paddle.save({k: paddle.to_tensor(arrays[k]) for k in reference}, str(path))
    config = os.path.join(ROOT, "configs/picodet/picodet_s_320_coco_lcnet.yml")
    model = driver.load_model(load_config(config, ["EvalReader.image_shape=[3,64,64]", f"weights={path}"]), "eval", None)
    assert "16 tensors in the file are second names of loaded ones" in capsys.readouterr().out
    assert len(model.programs.param_names) == len(reference) - 16
    for name in model.programs.param_names:
        np.testing.assert_array_equal(np.array(model.scope.find_var(name).get_tensor()), arrays[name])
    arrays["head.head_cls0.bias"] = arrays["head.head_cls0.bias"] + 1
    with open(tmp_path / "other.pdparams", "wb") as f:
        pickle.dump(arrays, f, protocol=4)
    with pytest.raises(WeightsError, match=r"holds 1 tensor\(s\) the model lacks \(head.head_cls0.bias\)"):
        driver.load_model(load_config(config, ["EvalReader.image_shape=[3,64,64]",
                                               f"weights={tmp_path / 'other.pdparams'}"]), "eval", None)
