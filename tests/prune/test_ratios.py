"""FLOPs searches say what they reached and what rounding leaves unpruned (one search for both recipes)."""
import paddle.nn.functional as F
import pytest

from ppprune.core.errors import PruneError
from ppprune.prune.ratios import round_ratios, uniform_ratios
from tests.helpers import nets, oracle

PARAMS = ["big_weights", "small_weights", "last_weights"]


def _net(x):
    y = nets.conv(x, 3, 64, "big")
    y = nets.conv(y, 64, 8, "small")  # 8 channels: no smaller multiple of 16 exists
    y = nets.conv(y, 8, 32, "last")
    return nets.head(F.avg_pool2d(y, 2), 32, 4)


@pytest.fixture(scope="module")
def model():
    main, startup, *_ = oracle.build(_net, [3, 8, 8])
    scope, _ = oracle.init_scope(startup, main)
    return main, scope


def test_round_to_above_a_convs_channels_is_named(model):
    main, _ = model
    rounded = round_ratios(main, PARAMS, [0.5, 0.5, 0.5], 16)
    assert list(rounded) == [0.5, 0.0, 0.5]
    assert len(rounded.notes) == 1 and "small_weights (8 channels, ratio 0.5)" in rounded.notes[0]
    assert "big_weights" not in rounded.notes[0] and "round_to 16" in rounded.notes[0]


def test_uniform_search_names_convs_rounding_leaves_unpruned(model):
    main, scope = model
    ratios = uniform_ratios(main, PARAMS, 0.5, scope=scope, round_to=16, tolerance=0.02)
    assert "small_weights" not in ratios and abs(ratios.reached - 0.5) <= 0.02
    assert len(ratios.notes) == 1 and "small_weights (8 channels)" in ratios.notes[0]


def test_uniform_top_short_of_the_target_is_reported(model):
    main, scope = model
    ratios = uniform_ratios(main, PARAMS, 0.99, scope=scope, tolerance=0.05)
    assert ratios.reached < 0.99 and set(ratios.values()) == {0.95}
    assert any(f"reached {ratios.reached:.1%}" in n and "target of 99.0%" in n for n in ratios.notes)
    with pytest.raises(PruneError, match="removes 98"):  # beyond the tolerance: an error saying what was reached
        uniform_ratios(main, PARAMS, 0.99, scope=scope, tolerance=0.001)


def test_round_to_zero_is_refused_by_both_searches(model):
    main, scope = model
    with pytest.raises(PruneError, match="positive integer"):
        uniform_ratios(main, PARAMS, 0.3, scope=scope, round_to=0)
