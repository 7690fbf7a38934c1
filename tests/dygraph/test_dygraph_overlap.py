"""Dygraph pruners on today's detector shapes (CSP-PAN, LCNet + PicoHead) and the dygraph model zoo: every
conv at one ratio in one call, and a 50% FLOPs target from sensitivities."""
import pickle

import numpy as np
import paddle
import pytest

from tests.helpers import nets
from ppprune.core.planner import Listing
from ppprune.dygraph import L1NormFilterPruner, dygraph_flops
from tests.helpers.dygraph import MODELS, SHAPE, assert_attrs_true, assert_same, make, run_inference, snapshot

ZOO = {name: ctor for name, (ctor, _) in MODELS.items()}
ZOO.update(nets.LAYERS)


pytestmark = [pytest.mark.usefixtures("dygraph"), pytest.mark.heavy(45)]  # heavy: seconds, about


@pytest.mark.parametrize("name", sorted(ZOO))
def test_every_conv_at_one_ratio(name, tmp_path):
    model = make(ZOO[name])
    x = np.random.RandomState(1).rand(2, *SHAPE[1:]).astype("float32")
    before = snapshot(model)
    pruner = L1NormFilterPruner(model, SHAPE)
    ratios = {w: 0.3 for w in pruner.conv_weights()}  # depthwise followers and output convs included
    lazy = pruner.prune_vars(ratios, apply="lazy")
    zeroed = model(paddle.to_tensor(x)).numpy()
    lazy.restore(model)
    plan = pruner.prune_vars(ratios)
    assert [e.pruned for e in plan.entries] == [e.pruned for e in lazy.entries]
    assert plan.pruned_flops > 0.2
    got = model(paddle.to_tensor(x)).numpy()
    np.testing.assert_allclose(got, zeroed, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(zeroed).max())))
    assert_attrs_true(model)
    np.testing.assert_allclose(run_inference(model, x, str(tmp_path)), got, rtol=1e-4,
                               atol=1e-4 * max(1.0, float(np.abs(got).max())))
    plan.restore(model)
    assert_same(snapshot(model), before)


@pytest.mark.parametrize("name", sorted(ZOO))
def test_sensitive_prune_reaches_half_the_flops(name, tmp_path):
    model = make(ZOO[name])
    pruner = L1NormFilterPruner(model, SHAPE)
    sen_file = str(tmp_path / "sen.pickle")
    with open(sen_file, "wb") as f:  # distinct slopes, as measured curves would have
        pickle.dump({w: {r: r * (0.5 + (0.618 * i) % 1) for r in (0.1, 0.3, 0.5, 0.7, 0.9)}
                     for i, w in enumerate(pruner._sensitive_targets())}, f)
    flops = dygraph_flops(model, SHAPE)
    plan = L1NormFilterPruner(model, SHAPE, sen_file=sen_file).sensitive_prune(0.5, tolerance=0.02)
    assert plan.pruned_flops == pytest.approx(0.5, abs=0.02)
    assert dygraph_flops(model, SHAPE) == pytest.approx(flops * (1 - plan.pruned_flops))
    assert model(paddle.rand([1] + SHAPE[1:])).shape[0] == 1
    assert_attrs_true(model)


def test_sensitive_measures_merged_convs_once(tmp_path):
    model = make(nets.CSPResPAN)
    x = paddle.to_tensor(np.random.RandomState(0).rand(2, *SHAPE[1:]).astype("float32"))
    calls = []

    def eval_func():
        calls.append(1)
        return float(model(x).abs().sum())

    pruner = L1NormFilterPruner(model, SHAPE)
    targets = pruner._sensitive_targets()
    sens = pruner.sensitive(eval_func, str(tmp_path / "sen.pickle"), ratios=[0.5])
    listing = Listing(pruner._current()[0].view, fold=False)
    for p in targets:
        listing.add(p, 0.5)
    down = model.stage1.down.conv.weight.name
    stage1 = [m.param for m in next(u for u in listing.units() if u[0].param == down)]
    assert model.stage1.conv1.conv.weight.name in stage1 and model.stage1.attn.fc.weight.name in stage1
    assert len({sens[p][0.5] for p in stage1}) == 1  # one measurement for the merged group
    assert len(calls) - 1 < len(targets)  # fewer evaluations than convs (baseline aside)
    before = eval_func()
    lazy = pruner.prune_vars({p: 0.5 for p in stage1}, apply="lazy")  # what that measurement zeroed
    loss = (before - eval_func()) / before
    lazy.restore(model)
    assert sens[stage1[0]][0.5] == pytest.approx(loss, rel=1e-5)
