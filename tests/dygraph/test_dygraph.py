"""Dygraph filter pruners: a structurally pruned Layer computes what the original computes with the same
channels zeroed, its attributes and optimizer follow, it deploys, and every change can be undone."""
import os
import pickle
import subprocess
import sys

import numpy as np
import paddle
import pytest
from paddle.vision.models import mobilenet_v1, resnet18

from ppprune.core.errors import PruneError
from ppprune.dygraph import L1NormFilterPruner, dygraph_flops
from ppprune.prune.sensitive import load_sensitivities
from tests.helpers import ROOT
from tests.helpers.dygraph import MODELS, SHAPE, assert_attrs_true, assert_same, make, run_inference, snapshot


pytestmark = [pytest.mark.usefixtures("dygraph"), pytest.mark.heavy(45)]  # heavy: seconds, about


@pytest.mark.parametrize("name", sorted(MODELS))
def test_pruned_layer_equals_zeroed_original(name, tmp_path):
    ctor, cls = MODELS[name]
    model = make(ctor)
    x = np.random.RandomState(1).rand(2, *SHAPE[1:]).astype("float32")
    before = snapshot(model)
    ref = model(paddle.to_tensor(x)).numpy()
    pruner = cls(model, SHAPE)
    ratios = {w: 0.3 for w in pruner.conv_weights(followers=False)}

    lazy = pruner.prune_vars(ratios, apply="lazy")
    zeroed = model(paddle.to_tensor(x)).numpy()
    lazy.restore(model)
    assert_same(snapshot(model), before)
    assert not np.allclose(zeroed, ref)

    flops = dygraph_flops(model, SHAPE)
    plan = pruner.prune_vars(ratios)
    assert [e.pruned for e in plan.entries] == [e.pruned for e in lazy.entries]
    got = model(paddle.to_tensor(x)).numpy()
    np.testing.assert_allclose(got, zeroed, rtol=1e-4, atol=1e-4)
    assert_attrs_true(model)
    for pname, shape in plan.shapes.items():
        assert list(pruner._current()[0].tensors[pname].shape) == shape
    assert dygraph_flops(model, SHAPE) == pytest.approx(flops * (1 - plan.pruned_flops))
    assert plan.pruned_flops > 0.2
    np.testing.assert_allclose(run_inference(model, x, str(tmp_path)), got, rtol=1e-4, atol=1e-4)

    plan.restore(model)
    assert_same(snapshot(model), before)
    np.testing.assert_array_equal(model(paddle.to_tensor(x)).numpy(), ref)


def test_depthwise_follows_its_producer(caplog):
    model = make(lambda: mobilenet_v1(scale=0.25))
    pruner = L1NormFilterPruner(model, SHAPE)
    dw = model.conv2_1._depthwise_conv[0]
    assert dw._groups == 8
    plan = pruner.prune_vars({"conv1.0.weight": 0.5})  # structured name of conv2d_0.w_0
    assert plan.entries[0].param == "conv2d_0.w_0"
    assert dw.weight.shape[0] == dw._groups == dw._in_channels == dw._out_channels == 4
    assert "groups=4" in repr(dw)
    summary = paddle.summary(model, tuple(SHAPE))
    assert summary["total_params"] == sum(int(np.prod(p.shape)) for p in model.parameters())
    plan.restore(model)
    assert dw._groups == 8

    dw_name = dw.weight.name
    plan = pruner.prune_vars({dw_name: 0.5})
    assert plan.entries[0].follows == ["conv2d_0.w_0"]
    assert model.conv1[0].weight.shape[0] == 4
    assert "conv2d_0.w_0" in caplog.text and dw_name in caplog.text


def test_optimizer_state_follows_and_training_continues():
    model = make(lambda: mobilenet_v1(scale=0.25, num_classes=10))
    model.train()
    opt = paddle.optimizer.Momentum(0.01, momentum=0.9, parameters=model.parameters())
    x, y = paddle.rand([4] + SHAPE[1:]), paddle.randint(0, 10, [4, 1])

    def step():
        loss = paddle.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.clear_grad()

    step()
    w = model.conv2_1._pointwise_conv[0].weight
    velocity = opt._accumulators["velocity"][w.name]
    old = velocity.numpy().copy()
    pruner = L1NormFilterPruner(model, SHAPE, opt=opt)
    plan = pruner.prune_vars({w.name: 0.25})
    assert model.training  # tracing in eval mode puts the mode back
    removed = plan.tensors[w.name][0]
    np.testing.assert_array_equal(velocity.numpy(), np.delete(old, removed, axis=0))
    for per_param in opt._accumulators.values():
        for pname, acc in per_param.items():
            param = next(p for p in model.parameters() if p.name == pname)
            assert acc.shape == param.shape, pname
    step()
    step()
    plan.restore(model)  # optimizer state comes back too (at the shapes it had)
    assert velocity.shape == old.shape


def test_adam_state_before_first_step_is_created_at_new_shapes():
    model = make(lambda: resnet18(num_classes=10))
    opt = paddle.optimizer.Adam(parameters=model.parameters())
    pruner = L1NormFilterPruner(model, SHAPE, opt=opt)
    plan = pruner.prune_vars({"layer1.0.conv1.weight": 0.5})
    model.train()

    def step():
        model(paddle.rand([2] + SHAPE[1:])).mean().backward()
        opt.step()
        opt.clear_grad()

    step()
    assert opt._accumulators["moment1"][model.layer1[0].conv1.weight.name].shape == [32, 64, 3, 3]
    plan.restore(model)  # state created at the pruned shapes is dropped, then made again
    step()
    assert opt._accumulators["moment1"][model.layer1[0].conv1.weight.name].shape == [64, 64, 3, 3]


def test_names_errors_and_plans_without_applying():
    model = make(lambda: mobilenet_v1(scale=0.25))
    before = snapshot(model)
    pruner = L1NormFilterPruner(model, SHAPE)
    with pytest.raises(PruneError, match="Did you mean 'conv2d_0.w_0'"):
        pruner.prune_vars({"conv2d_0.w0": 0.3})
    with pytest.raises(PruneError, match="not a convolution weight"):
        pruner.prune_vars({"fc.weight": 0.3})
    with pytest.raises(PruneError, match="axis 0"):
        pruner.prune_var("conv2d_0.w_0", [1], 0.3)
    plan = pruner.prune_vars({"conv2d_2.w_0": 0.5}, apply=None)
    assert plan.pruned_flops > 0
    assert_same(snapshot(model), before)
    with pytest.raises(PruneError, match="not applied"):
        plan.restore(model)


class HardCodedReshape(paddle.nn.Layer):
    def __init__(self):
        super().__init__()
        self.conv = paddle.nn.Conv2D(3, 8, 3, padding=1)
        self.fc = paddle.nn.Linear(8 * 32 * 32, 10)

    def forward(self, x):
        return self.fc(paddle.reshape(self.conv(x), [-1, 8 * 32 * 32]))


def test_hard_coded_reshape_is_refused_before_any_change():
    model = HardCodedReshape()
    before = snapshot(model)
    pruner = L1NormFilterPruner(model, SHAPE)
    with pytest.raises(PruneError, match="hard-coded reshape"):
        pruner.prune_vars({"conv.weight": 0.5})
    assert_same(snapshot(model), before)


class SmallNet(paddle.nn.Layer):
    def __init__(self):
        super().__init__()
        self.c1 = paddle.nn.Conv2D(3, 8, 3, padding=1)
        self.c2 = paddle.nn.Conv2D(8, 8, 3, padding=1)
        self.fc = paddle.nn.Linear(8, 4)

    def forward(self, x):
        x = paddle.nn.functional.relu(self.c2(paddle.nn.functional.relu(self.c1(x))))
        return self.fc(paddle.flatten(paddle.nn.functional.adaptive_avg_pool2d(x, 1), 1))


def test_sensitive_resumes_and_restores_on_exception(tmp_path):
    paddle.seed(0)
    model = SmallNet()
    x = paddle.rand([4, 3, 8, 8])
    ref = model(x).numpy()
    before = snapshot(model)
    sen_file = str(tmp_path / "sen.pickle")
    calls, fail_at = [], [4]

    def eval_func():
        calls.append(1)
        if len(calls) == fail_at[0]:
            raise KeyboardInterrupt("stopped mid-run")
        return 1.0 / (1.0 + float(np.abs(model(x).numpy() - ref).mean()))

    pruner = L1NormFilterPruner(model, [1, 3, 8, 8])
    ratios = np.arange(0.1, 1, 0.2)  # 0.30000000000000004 and friends
    with pytest.raises(KeyboardInterrupt):
        pruner.sensitive(eval_func, sen_file=sen_file, ratios=ratios)
    assert_same(snapshot(model), before)
    saved = load_sensitivities(sen_file)
    assert saved == {"conv2d_0.w_0": {0.1: saved["conv2d_0.w_0"][0.1], 0.3: saved["conv2d_0.w_0"][0.3]}}

    calls.clear()
    fail_at[0] = None
    fresh = L1NormFilterPruner(model, [1, 3, 8, 8], sen_file=sen_file)
    sen = fresh.sensitive(eval_func, ratios=ratios, skip_vars=[])
    assert len(calls) == 10 - 2  # only what was missing (the baseline is in the file)
    assert sorted(sen) == [model.c1.weight.name, model.c2.weight.name]
    assert sorted(sen[model.c1.weight.name]) == [0.1, 0.3, 0.5, 0.7, 0.9]
    assert sen[model.c1.weight.name][0.9] > 0
    calls.clear()
    assert fresh.sensitive(eval_func, ratios=ratios) == sen
    assert not calls
    assert_same(snapshot(model), before)


def test_sensitive_prune_reaches_flops_and_keeps_skip_vars(tmp_path):
    model = make(lambda: mobilenet_v1(scale=0.25))
    pruner = L1NormFilterPruner(model, SHAPE)
    convs = pruner.conv_weights(followers=False)
    curves = {w: {r: r * (1 + i / 10) for r in (0.1, 0.3, 0.5, 0.7, 0.9)} for i, w in enumerate(convs)}
    sen_file = str(tmp_path / "sen.pickle")
    with open(sen_file, "wb") as f:
        pickle.dump(dict(curves, **{"conv2d_1.w_0": {0.5: 0.0}}), f)  # a depthwise weight: skipped
    pruner = L1NormFilterPruner(model, SHAPE, sen_file=sen_file)
    skip = [convs[-1]]
    flops = dygraph_flops(model, SHAPE)
    plan = pruner.sensitive_prune(0.4, skip_vars=skip, align=2)
    assert skip == [convs[-1]]
    pruned = {e.param for e in plan.entries}
    assert convs[-1] not in pruned and "conv2d_1.w_0" not in pruned
    assert plan.pruned_flops == pytest.approx(0.4, abs=0.01)  # ratios_for_flops tolerance
    assert dygraph_flops(model, SHAPE) == pytest.approx(flops * (1 - plan.pruned_flops))
    for e in plan.entries:
        assert (e.size - len(e.pruned)) % 2 == 0
    assert_attrs_true(model)


def test_sensitive_prune_merges_coupled_convs(tmp_path):
    model = make(lambda: resnet18(num_classes=10))
    convs = L1NormFilterPruner(model, SHAPE).conv_weights()
    sen_file = str(tmp_path / "sen.pickle")
    with open(sen_file, "wb") as f:  # convs joined by residual adds get different curves
        pickle.dump({w: {0.1: 0.0, 0.5: 0.1 * (1 + i % 3), 0.9: 0.9} for i, w in enumerate(convs)}, f)
    plan = L1NormFilterPruner(model, SHAPE, sen_file=sen_file).sensitive_prune(0.3)
    assert plan.pruned_flops == pytest.approx(0.3, abs=0.01)
    assert model(paddle.rand([1] + SHAPE[1:])).shape == [1, 10]


def test_import_ppprune_stays_light():
    code = "import sys, ppprune; assert 'paddle' not in sys.modules; print(ppprune.L1NormFilterPruner.__name__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "L1NormFilterPruner"


def test_example_runs_on_a_small_subset(tmp_path):
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", "dygraph_fashion_mnist.py"), "--train-size", "1024",
         "--test-size", "256", "--epochs", "1", "--finetune-epochs", "1", "--ratios", "0.3,0.6", "--tolerance", "0.35",
         "--sen-file", str(tmp_path / "sen.pickle")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    for line in ("accuracy before pruning", "accuracy after pruning", "accuracy after fine-tuning", "pruned FLOPs"):
        assert line in out.stdout
