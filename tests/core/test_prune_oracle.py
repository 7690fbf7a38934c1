"""Exactness oracle over architectures, both IRs: pruned == zeroed, recorded shapes exact, deployable."""
import pytest

from tests.helpers import nets, oracle

pytestmark = pytest.mark.heavy(35)  # seconds, about: heavy modules start first

IRS = ["pir", "legacy"]


def _all_convs(net, shape, ir):
    with oracle.ir_guard(ir):
        main, *_ = oracle.build(net, shape)
        return oracle.conv_weights(main)


@pytest.mark.parametrize("ir", IRS)
@pytest.mark.parametrize("arch", sorted(nets.ARCHITECTURES))
def test_architecture(arch, ir, tmp_path):
    net, shape = nets.ARCHITECTURES[arch]
    params = _all_convs(net, shape, ir)
    pruner = oracle.check(net, shape, params, [0.4] * len(params), ir, infer_dir=str(tmp_path))
    assert sum(len(e.pruned) for e in pruner.plan.entries) > 0


@pytest.mark.parametrize("ir", IRS)
@pytest.mark.parametrize("criterion,selector", [("l2_norm", "default_idx_selector"), ("geometry_median", "default_idx_selector"),
                                                ("bn_scale", "default_idx_selector"), ("bn_scale", "optimal_threshold")])
def test_criteria(criterion, selector, ir):
    net, shape = nets.ARCHITECTURES["residual"]
    pruner = oracle.check(net, shape, ["conv4_weights", "conv3_weights"], [0.5, 0.25], ir, criterion=criterion, selector=selector)
    assert [e.param for e in pruner.plan.entries] == ["conv4_weights", "conv3_weights"]


@pytest.mark.parametrize("ir", IRS)
@pytest.mark.parametrize("model", ["mobilenet_v1", "mobilenet_v2", "resnet18", "vgg11"])
def test_vision_models(model, ir, tmp_path):
    net, shape = nets.vision_model(model)
    params = _all_convs(net, shape, ir)
    pruner = oracle.check(net, shape, params, [0.3] * len(params), ir, batch=1, infer_dir=str(tmp_path))
    assert pruner.plan.entries
    if model == "vgg11":  # no classifier: the last conv feeds the output and must be left alone
        assert [s["param"] for s in pruner.plan.skipped] == [params[-1]]


def test_conv_left_with_one_channel_deploys_exactly(tmp_path):
    """A random net where three convs at 0.7 leave an SE excite conv (and what it gates) one channel: Paddle
    Inference with oneDNN differed from the executor by 0.12 until ppprune.deploy skipped inplace_pass."""
    from tests.helpers.randnets import BASIC, RandomNet

    pruner = oracle.check(lambda x: RandomNet(201, steps=14, ops=BASIC)(x), [3, 8, 8], ["ex4_weights", "c13_weights", "dw8_weights"],
                          [0.7] * 3, "pir", infer_dir=str(tmp_path))
    assert min(e.size - len(e.pruned) for e in pruner.plan.entries) == 1
