"""Random conv DAGs from the ops the core follows, random params at random ratios, both IRs: the oracle."""
import numpy as np
import pytest

import oracle
from ppprune.core.errors import PruneError
from randnets import RandomNet


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
    net = RandomNet(seed)
    while True:
        try:
            pruner = oracle.check(net, [3, 8, 8], params, [ratio] * len(params), ir, infer_dir=str(tmp_path))
            break
        except PruneError as e:  # two named convs meeting through a concat + add: drop the later one
            assert "shares some channels" in str(e)
            params = [p for p in params if f"'{p}' shares" not in str(e)]
            net = RandomNet(seed)
    assert pruner.plan.entries or pruner.plan.skipped
