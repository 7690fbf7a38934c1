"""Models: PaddleDetection parameter names, output shapes, in PIR, legacy IR and dygraph."""
import contextlib
import os

import numpy as np
import paddle
import pytest

from ppprune.config import create, load_config
from ppprune.engine import build_programs, persistable_names
from ppprune.registry import ARCHITECTURES, BACKBONES

from tests.helpers import ROOT
TINY = ["MobileNetV1.scale=0.25", "YOLOv3Head.base_channels=32", "num_classes=3",
        "TrainReader.image_shape=[3,64,64]", "EvalReader.image_shape=[3,64,64]"]
IRS = {"pir": contextlib.nullcontext, "legacy": paddle.pir_utils.OldIrGuard}


def tiny_cfg(*extra):
    return load_config(os.path.join(ROOT, "configs/yolov3/yolov3_mobilenet_v1_demo.yml"), TINY + list(extra))


@pytest.fixture(autouse=True)
def static_mode():
    paddle.enable_static()
    yield
    paddle.disable_static()


@pytest.mark.parametrize("ir", IRS)
def test_yolov3_names_and_shapes(ir):
    with IRS[ir]():
        programs = build_programs(tiny_cfg("YOLOv3Head.conf_thresh=0.0001"), "train")  # untrained: low scores
        names = set(programs.param_names)
        for n in ["conv1_weights", "conv1_bn_scale", "conv2_1_dw_weights", "conv2_1_sep_weights", "conv6_sep_weights",
                  "yolo_block.0.0.0.conv.weights", "yolo_block.0.0.0.bn.scale", "yolo_block.0.0.0.bn.offset",
                  "yolo_block.0.0.0.bn.mean", "yolo_block.0.0.0.bn.var", "yolo_block.0.0.1.conv.weights",
                  "yolo_block.2.tip.conv.weights", "yolo_transition.1.conv.weights", "yolo_output.2.conv.bias"]:
            assert n in names
        # the programs address these names (the pruner looks them up there), train and eval alike
        assert names <= set(persistable_names(programs.train.program))
        assert names <= set(persistable_names(programs.eval.program))
        # the demo trains with Adam: its moments (and beta powers) are optimizer state a checkpoint keeps
        assert {"conv1_weights_moment1_0", "conv1_weights_moment2_0"} <= set(programs.opt_names)

        exe, scope = paddle.static.Executor(paddle.CPUPlace()), paddle.static.Scope()
        exe.run(programs.startup, scope=scope)
        w = np.array(scope.find_var("yolo_block.0.0.0.conv.weights").get_tensor())
        assert w.shape == (32, 256, 1, 1)  # base_channels out, conv6 of MobileNetV1 x0.25 in
        rng = np.random.default_rng(0)
        image = rng.standard_normal((2, 3, 64, 64)).astype("float32")
        with paddle.static.scope_guard(scope):
            bbox, num = exe.run(programs.eval.program, feed={"image": image, "im_shape": np.array([[64, 64], [50, 80]], "int32")},
                                fetch_list=[programs.eval.fetches["bbox"], programs.eval.fetches["bbox_num"]],
                                return_numpy=False)
        bbox, num = np.array(bbox), np.array(num)
        assert num.shape == (2,) and num.min() > 0 and bbox.shape == (num.sum(), 6)
        assert bbox[:, 0].max() < 3 and (bbox[:, 4] <= 80).all()  # classes in range, boxes clipped to the image


def test_mobilenet_widths_follow_scale():
    paddle.disable_static()
    for scale, expect in [(1.0, [256, 512, 1024]), (0.25, [64, 128, 256])]:
        with paddle.utils.unique_name.guard():  # dygraph refuses a parameter name twice per name scope
            net = create(BACKBONES, "MobileNetV1", {"MobileNetV1": {"scale": scale}})
        assert net.out_channels == expect
    feats = net(paddle.rand([1, 3, 64, 64]))
    assert [tuple(f.shape) for f in feats] == [(1, 64, 8, 8), (1, 128, 4, 4), (1, 256, 2, 2)]


def test_yolov3_runs_in_dygraph():
    paddle.disable_static()
    with paddle.utils.unique_name.guard():
        model = create(ARCHITECTURES, "YOLOv3", tiny_cfg())
    outs = model.yolo_head(model.backbone(paddle.rand([2, 3, 64, 64])))
    assert [tuple(o.shape) for o in outs] == [(2, 24, 2, 2), (2, 24, 4, 4), (2, 24, 8, 8)]  # 3 anchors * (5 + 3)
    loss = model({"image": paddle.rand([2, 3, 64, 64]), "gt_bbox": paddle.to_tensor([[[0.5, 0.5, 0.3, 0.4]]] * 2),
                  "gt_class": paddle.zeros([2, 1], "int32"), "gt_score": paddle.ones([2, 1])})["loss"]
    assert loss.shape == [] and np.isfinite(float(loss))
    assert {p.name for p in model.parameters()} >= {"yolo_block.0.0.0.conv.weights", "conv1_weights"}


@pytest.mark.parametrize("ir", IRS)
def test_resnet_classifier_names_and_logits(ir):
    cfg = {"num_classes": 10, "Classifier": {"backbone": "ResNet"},
           "ResNet": {"depth": 18, "width": 8, "in_channels": 1, "small_input": True}}
    with IRS[ir]():
        main, startup = paddle.static.Program(), paddle.static.Program()
        with paddle.static.program_guard(main, startup), paddle.utils.unique_name.guard():
            model = create(ARCHITECTURES, "Classifier", cfg)
            feeds = {n: paddle.static.data(n, s, d) for n, s, d in model.input_specs("train", [1, 28, 28])}
            out = model(feeds, mode="train")
        names = {p.name for p in model.parameters()}
        assert {"conv1_weights", "bn_conv1_scale", "res2a_branch2a_weights", "bn2a_branch2a_scale",
                "res3a_branch1_weights", "res5b_branch2b_weights", "fc_weights", "fc_offset"} <= names
        exe, scope = paddle.static.Executor(paddle.CPUPlace()), paddle.static.Scope()
        exe.run(startup, scope=scope)
        loss, = exe.run(main, feed={"image": np.zeros((4, 1, 28, 28), "float32"), "label": np.zeros((4, 1), "int64")},
                        fetch_list=[out["loss"]], scope=scope)
        assert np.isclose(float(loss), np.log(10), atol=0.5)  # untrained: near-uniform over 10 classes


@pytest.mark.parametrize("ir", IRS)
def test_demo_adam_train_program_stays_prunable(ir):
    """paddle's Adam would add no-op regularization ops on every BN gradient (the models give BN L2Decay(0.0));
    the pruner reads those as network outputs and skips every yolo_block conv. ppprune's Adam adds none."""
    from ppprune.prune import Pruner

    with IRS[ir]():
        programs = build_programs(tiny_cfg(), "train")
        exe, scope = paddle.static.Executor(paddle.CPUPlace()), paddle.static.Scope()
        exe.run(programs.startup, scope=scope)
        pruner = Pruner()
        pruner.prune(programs.train.program, scope, ["yolo_block.0.0.0.conv.weights"], [0.5], place=paddle.CPUPlace(),
                     only_graph=True)
        assert pruner.plan.skipped == [] and "yolo_block.0.0.0.conv.weights" in pruner.plan.shapes


def test_detector_contract_is_read_from_the_class():
    """export and infer_cfg read the deploy arch from the class, not from a table keyed by name."""
    from ppprune.cli.export_model import deploy_arch
    from ppprune.models.base import Detector

    assert deploy_arch({"architecture": "YOLOv3"}) == ("YOLO", 3)
    feeds = Detector.eval_inputs(np.zeros((3, 32, 48), "float32"), (64, 96))
    assert feeds["image"].shape == (1, 3, 32, 48)
    assert feeds["im_shape"].tolist() == [[64, 96]]
    np.testing.assert_allclose(feeds["scale_factor"], [[0.5, 0.5]])

    class Family(Detector):
        eval_feeds = ("image", "im_shape", "scale_factor")

        def train_specs(self, image_shape):
            return [("gt_bbox", [-1, 4, 4], "float32")]

    specs = Family().input_specs("eval", [3, 32, 32])
    assert [s[0] for s in specs] == ["image", "im_shape", "scale_factor"]
    assert [s[0] for s in Family().input_specs("train", [3, 32, 32])] == ["image", "gt_bbox"]
    with pytest.raises(NotImplementedError, match="Family must define loss"):
        Family().loss({})
