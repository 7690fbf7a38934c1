"""--round_to and ratios_for_flops' round_to share one rounding: counted in whole groups of a grouped conv."""
import pytest

from tests.helpers import nets, oracle
from ppprune.prune.ratios import round_ratios
from ppprune.prune import Pruner


@pytest.mark.parametrize("ir", ["pir", "legacy"])
def test_round_to_keeps_a_multiple_a_grouped_conv_can_keep(ir):
    """'reduce' (16 channels) feeds a conv of 4 groups: it loses whole groups of 4 channels. At ratio 0.5
    with round_to=3, counting channels asked for 9 kept, which the selector rounds to 8 (two groups); counting
    groups keeps 12, a multiple of 3 that the grouped conv can keep."""
    with oracle.ir_guard(ir):
        main, startup, *_ = oracle.build(nets.grouped, [3, 8, 8])
        scope, _ = oracle.init_scope(startup, main)
        ratios = round_ratios(main, ["reduce_weights"], [0.5], 3)
        pruner = Pruner()
        pruner.prune(main, scope, ["reduce_weights"], ratios, only_graph=True)
    kept = 16 - len(pruner.plan.entries[0].pruned)
    assert kept == 12
