"""Exported inference models: a legacy .pdmodel opens in both IRs, prunes exactly and deploys; the tool
writes a new folder and never the input's."""
import os

import numpy as np
import paddle
import pytest

from tests.helpers import nets, oracle
from ppprune import deploy
from ppprune.deploy import exported as inference_model
from ppprune.cli import prune_inference
from ppprune.core.errors import PruneError
from ppprune.core.plan import Plan
from ppprune.prune import Pruner

SHAPE = [3, 16, 16]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The shape-query net (x.shape sizes, a 1-channel head, an output reshape) saved as a legacy
    .pdmodel, as PaddleOCR / PaddleDetection 2.x export it, and as a PIR .json."""
    folder = tmp_path_factory.mktemp("exported")
    feed = {"image": np.random.RandomState(1).rand(2, *SHAPE).astype("float32")}
    for ir in ("legacy", "pir"):
        with oracle.ir_guard(ir):
            main, startup, x, out = oracle.build(nets.shape_queries, SHAPE)
            scope, exe = oracle.init_scope(startup, main)
            with paddle.static.scope_guard(scope):
                paddle.static.save_inference_model(str(folder / ir / "model"), [x], [out], exe, program=main)
    return folder, feed


def _run(model, program, scope, fetch):
    exe = paddle.static.Executor(paddle.CPUPlace())
    with oracle.ir_guard("pir" if isinstance(program, paddle.pir.Program) else "legacy"):
        return oracle.run(exe, program, scope, _run.feed, fetch)[0]


@pytest.mark.parametrize("ir", ["pir", "legacy"])
def test_legacy_model_prunes_exactly_in_either_ir(exported, ir, tmp_path):
    folder, feed = exported
    _run.feed = feed
    model = inference_model.load(str(folder / "legacy"), ir=ir)
    assert model.ir == ir and isinstance(model.program, paddle.pir.Program) == (ir == "pir")
    params = oracle.conv_weights(model.program)
    names = oracle.persistable_names(model.program)
    ref = _run(model, model.program, oracle.copy_scope(model.scope, names), model.fetch_targets)

    lazy_scope = oracle.copy_scope(model.scope, names)
    lazy = Pruner()
    with oracle.ir_guard(ir):
        lazy_prog, _, _ = lazy.prune(model.program, lazy_scope, params, [0.4] * len(params), lazy=True)
        pruner = Pruner()
        pruned, _, _ = pruner.prune(model.program, model.scope, params, [0.4] * len(params))
    zeroed = _run(model, lazy_prog, lazy_scope, [lazy.lookup(t) for t in model.fetch_targets])
    got = _run(model, pruned, model.scope, [pruner.lookup(t) for t in model.fetch_targets])
    assert {s["param"] for s in pruner.plan.skipped} == {"sq_cls_weights", "sq_obj_weights", "sq_reg_weights", "sq_proj_weights"}
    assert not np.allclose(ref, zeroed)
    np.testing.assert_allclose(got, zeroed, rtol=1e-4, atol=1e-4)

    inference_model.save(model, pruned, str(tmp_path / "model"), lookup=pruner.lookup)
    assert sorted(os.listdir(tmp_path)) == (["model.json", "model.pdiparams"] if ir == "pir" else ["model.pdiparams", "model.pdmodel"])
    predictor = deploy.create_predictor(str(tmp_path / "model"))
    np.testing.assert_allclose(deploy.run(predictor, {"image": feed["image"]})[0], got, rtol=1e-4, atol=1e-4)


def test_pir_model_opens_in_pir_and_says_why_not_legacy(exported):
    folder, _ = exported
    model = inference_model.load(str(folder / "pir" / "model"))
    assert isinstance(model.program, paddle.pir.Program) and model.feed_names == ["image"]
    with pytest.raises(PruneError, match="PIR model.*open it with ir='pir'"):
        inference_model.load(str(folder / "pir"), ir="legacy")
    with pytest.raises(FileNotFoundError, match="no inference model"):
        inference_model.load(str(folder / "nothing"))


def test_tool_prunes_all_convs_into_a_new_folder(exported, tmp_path, capsys):
    folder, feed = exported
    source = folder / "legacy"
    before = {n: (source / n).read_bytes() for n in os.listdir(source)}
    with pytest.raises(Exception, match="holds the input"):
        prune_inference.main(["--model", str(source), "--pruned_params", "all", "--pruned_ratios", "0.3",
                              "--output_dir", str(source)])
    out = tmp_path / "pruned"
    prune_inference.main(["--model", str(source / "model"), "--pruned_params", "all", "--pruned_ratios", "0.3",
                          "--output_dir", str(out)])
    text = capsys.readouterr().out
    assert "skipped sq_obj_weights: it has one output channel" in text and "FLOPs" in text
    assert sorted(os.listdir(out)) == [".ppprune-manifest.json", "model.json", "model.pdiparams", "plan.json"]
    assert {n: (source / n).read_bytes() for n in os.listdir(source)} == before
    # the oracle: the input model with the plan's channels zeroed computes what the tool's model computes
    model = inference_model.load(str(source), ir="pir")
    plan = Plan.load(str(out / "plan.json"))
    assert plan.entries
    lazy = Pruner()
    with oracle.ir_guard("pir"):
        zeroed_prog, _, _ = lazy.apply_plan(model.program, model.scope, plan, lazy=True)
    _run.feed = feed
    zeroed = _run(model, zeroed_prog, model.scope, [lazy.lookup(t) for t in model.fetch_targets])
    predictor = deploy.create_predictor(str(out / "model"))
    got = deploy.run(predictor, {"image": feed["image"]})[0]
    assert got.shape == zeroed.shape
    np.testing.assert_allclose(got, zeroed, rtol=1e-4, atol=1e-4)
