"""Random conv DAGs from the ops the core follows, random params at random ratios, both IRs: the oracle."""
import numpy as np
import pytest

from tests.helpers import oracle
from tests.helpers.randnets import RandomNet


def _choose(seed, ir):
    net = RandomNet(seed)
    with oracle.ir_guard(ir):
        main, *_ = oracle.build(net, [3, 8, 8])
        convs = oracle.conv_weights(main)
    rng = np.random.RandomState(seed)
    params = [p for p in convs if rng.rand() < 0.6] or convs[:1]
    return params, float(rng.choice([0.2, 0.3, 0.5, 0.7]))


@pytest.mark.parametrize("ir", ["pir", "legacy"])
@pytest.mark.parametrize("seed", range(8))
def test_random_architecture(seed, ir, tmp_path):
    params, ratio = _choose(seed, ir)
    pruner = oracle.check(RandomNet(seed), [3, 8, 8], params, [ratio] * len(params), ir, infer_dir=str(tmp_path))
    assert pruner.plan.entries or pruner.plan.skipped


@pytest.mark.parametrize("ir", ["pir", "legacy"])
@pytest.mark.parametrize("seed", range(8, 12))
def test_random_architecture_all_convs(seed, ir, tmp_path):
    """Every conv at one ratio in one call: overlapping groups (concat into add) are merged, not refused."""
    net = RandomNet(seed)
    with oracle.ir_guard(ir):
        convs = oracle.conv_weights(oracle.build(net, [3, 8, 8])[0])
    pruner = oracle.check(RandomNet(seed), [3, 8, 8], convs, [0.4] * len(convs), ir, infer_dir=str(tmp_path))
    assert len(pruner.plan.entries) + len(pruner.plan.skipped) <= len(convs)
