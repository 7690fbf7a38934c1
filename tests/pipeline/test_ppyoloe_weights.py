"""PaddleDetection's PP-YOLOE checkpoints load: a `.pdparams` written as PaddleDetection writes it (paddle.save
of a state dict, with PaddleDetection's names and shapes from the fixture, random values) loads through the
tools' path in both IRs, every tensor equal to the file's; a file that does not fit is refused in one line."""
import os
import pickle

import numpy as np
import paddle
import pytest

from ppprune.cli import driver
from ppprune.config import load_config
from ppprune.engine import WeightsError, load_weights
from ppprune.engine.checkpoint import load_start_weights
from tests.helpers import ROOT, oracle
from tests.pipeline.test_ppyoloe import _reference

COCO_S = os.path.join(ROOT, "configs", "ppyoloe", "ppyoloe_crn_s_300e_coco.yml")
SMALL = ["EvalReader.image_shape=[3,64,64]", "use_gpu=false"]  # a small eval input: the weights do not depend on it


def _values(shapes, seed=0):
    """Random values a network stays finite with: filters scaled by fan-in, BN variances positive."""
    rng = np.random.RandomState(seed)
    out = {}
    for name, shape in shapes.items():
        if len(shape) == 4:
            value = rng.normal(0, 1 / np.sqrt(np.prod(shape[1:])), shape)
        elif name.endswith(("_variance", "bn.weight")):
            value = rng.uniform(0.5, 1.5, shape)
        else:
            value = rng.uniform(-0.1, 0.1, shape)
        out[name] = value.astype("float32")
    return out


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """{name: array} of the fixture's names and shapes, and the .pdparams paddle.save wrote of them."""
    arrays = _values(_reference())
    path = str(tmp_path_factory.mktemp("pdet") / "ppyoloe_crn_s_300e_coco.pdparams")
    with paddle.base.dygraph.guard():  # a state dict of Tensors, as PaddleDetection's save_model passes
        paddle.save({n: paddle.to_tensor(a) for n, a in arrays.items()}, path)
    return arrays, path


def _write(path, arrays):
    with open(path, "wb") as f:
        pickle.dump(arrays, f, protocol=4)
    return str(path)


def _load(path, ir):
    """The COCO config's model with `path` loaded as the tools load `-o weights=` (eval, export, sensitive)."""
    with oracle.ir_guard(ir):
        return driver.load_model(load_config(COCO_S, SMALL + [f"weights={path}"]), "eval", None)


@pytest.fixture(scope="module")
def loaded(checkpoint):
    return _load(checkpoint[1], "pir")


def _outputs(model, ir):
    image = np.random.RandomState(1).rand(1, 3, 64, 64).astype("float32")
    with oracle.ir_guard(ir):
        return model.exe.run(model.spec.program, feed={"image": image, "scale_factor": np.ones((1, 2), "float32")},
                             scope=model.scope, fetch_list=[model.spec.fetches["bbox"], *model.spec.network])


def test_paddledetection_checkpoint_loads_key_for_key_in_both_irs(checkpoint, loaded):
    arrays, path = checkpoint
    assert "StructuredToParameterName@@" in pickle.load(open(path, "rb"))  # the name table paddle.save adds
    legacy = _load(path, "legacy")
    for model in (loaded, legacy):
        assert sorted(model.programs.param_names) == sorted(arrays)
        for name, value in arrays.items():
            np.testing.assert_array_equal(np.array(model.scope.find_var(name).get_tensor()), value, err_msg=name)
    for pir, old in zip(_outputs(loaded, "pir"), _outputs(legacy, "legacy")):  # same weights, same outputs
        assert np.isfinite(pir).all() and pir.size
        np.testing.assert_allclose(pir, old, rtol=1e-4, atol=1e-5)


def _damaged(arrays):
    first = next(iter(arrays))
    missing = {k: v for k, v in arrays.items() if k not in ("yolo_head.proj_conv.weight", first)}
    unexpected = {**arrays, "yolo_head.anchor_points": np.zeros((8, 2), "float32"), "neck.extra.weight": np.zeros(1)}
    shaped = {**arrays, "neck.fpn_routes.0.conv.weight": np.zeros((10, 384, 1, 1), "float32")}
    return {"missing": (missing, rf"holds 421 of the model's 423 parameters \(missing: {first}, "
                                 r"yolo_head.proj_conv.weight;"),
            "unexpected": (unexpected, r"holds 2 tensor\(s\) the model lacks \(neck.extra.weight, "
                                       r"yolo_head.anchor_points\)"),
            "shape": (shaped, r"1 parameter\(s\) of other shapes \('neck.fpn_routes.0.conv.weight': the file has shape "
                              r"\[10, 384, 1, 1\], the model has \[192, 384, 1, 1\]\)")}


@pytest.mark.parametrize("kind", ["missing", "unexpected", "shape"])
def test_a_checkpoint_that_does_not_fit_is_refused_and_nothing_is_set(checkpoint, loaded, kind, tmp_path):
    """One line (the tools print a WeightsError as `error: <message>` and exit 2) naming the first few keys."""
    programs, scope = loaded.programs, loaded.scope
    arrays, message = _damaged(checkpoint[0])[kind]
    before = {n: np.array(scope.find_var(n).get_tensor()) for n in programs.param_names}
    with pytest.raises(WeightsError, match=message) as error:
        load_weights(_write(tmp_path / "bad.pdparams", arrays), scope, paddle.CPUPlace(), programs.param_names)
    assert "\n" not in str(error.value)
    assert all((np.array(scope.find_var(n).get_tensor()) == v).all() for n, v in before.items())


def test_a_head_for_other_classes_loads_with_ignore_head_shapes(checkpoint, loaded, tmp_path, capsys):
    """PaddleDetection's VOC recipe: a checkpoint of another class count (here 20) loaded to fine-tune on this
    model's classes: only the class convs differ, and only with the option do they keep their initial values."""
    arrays = dict(checkpoint[0])
    for name in [n for n in arrays if ".pred_cls." in n]:
        arrays[name] = np.ones([20, *arrays[name].shape[1:]], "float32")
    path = _write(tmp_path / "voc.pdparams", {k: v + 1 for k, v in arrays.items()})
    programs, scope = loaded.programs, oracle.copy_scope(loaded.scope, loaded.programs.param_names)
    initial = {n: np.array(scope.find_var(n).get_tensor()) for n in programs.param_names}
    cfg = {"weights": path}
    refused = r"6 parameter\(s\) of other shapes \('yolo_head.pred_cls.0.weight'.*ignore_head_shapes"
    with pytest.raises(WeightsError, match=refused):
        load_start_weights(cfg, scope, paddle.CPUPlace(), programs.param_names, "training", programs.head_names)

    load_start_weights({**cfg, "ignore_head_shapes": True}, scope, paddle.CPUPlace(), programs.param_names, "training",
                       programs.head_names)
    kept = sorted(n for n in programs.param_names if ".pred_cls." in n)
    assert len(kept) == 6 and "6 head tensors of other shapes kept their initial values" in capsys.readouterr().out
    for name in programs.param_names:
        expected = initial[name] if name in kept else arrays[name] + 1
        np.testing.assert_array_equal(np.array(scope.find_var(name).get_tensor()), expected, err_msg=name)


def test_ignore_head_shapes_leaves_the_backbone_strict(checkpoint, loaded, tmp_path):
    programs, scope = loaded.programs, loaded.scope
    shaped = {**checkpoint[0], "backbone.stem.conv1.conv.weight": np.zeros((8, 3, 3, 3), "float32")}
    with pytest.raises(WeightsError, match="backbone.stem.conv1.conv.weight"):
        load_weights(_write(tmp_path / "w.pdparams", shaped), scope, paddle.CPUPlace(), programs.param_names,
                     flexible=programs.head_names)


def test_a_backbone_checkpoint_loads_as_pretrain_weights(checkpoint, loaded, tmp_path):
    """PaddleDetection's ImageNet backbones name tensors without the `backbone.` prefix, and hold a classifier."""
    programs, scope = loaded.programs, oracle.copy_scope(loaded.scope, loaded.programs.param_names)
    arrays = {k[len("backbone."):]: v + 1 for k, v in checkpoint[0].items() if k.startswith("backbone.")}
    arrays["fc.weight"] = np.zeros((10, 10), "float32")
    missing, unused = load_weights(_write(tmp_path / "bb.pdparams", arrays), scope, paddle.CPUPlace(),
                                   programs.param_names, partial=True)
    assert unused == ["fc.weight"] and missing and all(not n.startswith("backbone.") for n in missing)
    for name in programs.param_names:
        if name.startswith("backbone."):
            np.testing.assert_array_equal(np.array(scope.find_var(name).get_tensor()), checkpoint[0][name] + 1)
