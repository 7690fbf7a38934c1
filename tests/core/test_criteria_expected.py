"""Every criterion and selector against channels worked out by hand, through `Pruner.prune` (both IRs) and
the dygraph pruners. The "pruned equals zeroed" oracle holds for any channel choice; these pin the choice.

The pruned conv has 5 filters over 2 input channels (1x1), so each filter is a point in the plane:
    filter:  0        1        2      3      4
    point:   (18,24)  (45,60)  (3,4)  (0,0)  (12,16)
They lie on one line, at distances 30, 75, 5, 0, 20 from the origin, so the distance between two is the
difference of those numbers. FPGM scores a filter by its summed distance to the others:
    0: 25+45+30+10 = 110    1: 45+70+75+55 = 245    2: 25+70+5+15 = 115    3: 30+75+5+20 = 130
    4: 10+55+15+20 = 100
At ratio 0.4 (round(5 * 0.4) = 2 filters) FPGM prunes the two nearest the median, {4, 0}; L1
(42, 105, 7, 0, 28) and L2 (30, 75, 5, 0, 20) prune the two smallest, {3, 2}.

Its batch norm scales are (-5, 1, 7, -3, 4): |gamma| = (5, 1, 7, 3, 4); bn_scale at 0.4 prunes {1, 3}.
optimal_threshold reads the ratio as a share of the summed squares: sorted 1, 3, 4, 5, 7 square to 1, 9, 16, 25,
49 (sum 100), cumulative shares .01 .10 .26 .51 1. Ratio 0.3 is first reached at 5 (.51), so the threshold is
the midpoint (4 + 5) / 2 = 4.5 and every channel below it goes: {1, 3, 4}. Ratio 0.05 is reached at 3 (.10):
threshold 2, {1}. Ratio 0.6 at 7: threshold 6, {0, 1, 3, 4}. Ratio 0.005 is below the first share: nothing.
"""
import numpy as np
import paddle
import pytest

from tests.helpers import nets, oracle
from ppprune.core.criteria import get_criterion
from ppprune.core.graph import view_of
from ppprune.core.groups import discover
from ppprune.core.selectors import get_selector
from ppprune.core.tensors import scope_reader
from ppprune.prune import Pruner

FILTERS = np.array([[18, 24], [45, 60], [3, 4], [0, 0], [12, 16]], dtype=np.float32)
GAMMA = np.array([-5, 1, 7, -3, 4], dtype=np.float32)
SCORES = {"l1_norm": [42, 105, 7, 0, 28], "l2_norm": [30, 75, 5, 0, 20],
          "geometry_median": [110, 245, 115, 130, 100], "bn_scale": [5, 1, 7, 3, 4]}
# (criterion, selector, ratio) -> pruned filters, as worked out in the module docstring
EXPECTED = [
    ("l1_norm", "default_idx_selector", 0.4, [2, 3]),
    ("l2_norm", "default_idx_selector", 0.4, [2, 3]),
    ("geometry_median", "default_idx_selector", 0.4, [0, 4]),
    ("geometry_median", "default_idx_selector", 0.6, [0, 2, 4]),  # next nearest the median: filter 2 (115)
    ("bn_scale", "default_idx_selector", 0.4, [1, 3]),
    ("bn_scale", "optimal_threshold", 0.3, [1, 3, 4]),
    ("bn_scale", "optimal_threshold", 0.05, [1]),
    ("bn_scale", "optimal_threshold", 0.6, [0, 1, 3, 4]),
    ("bn_scale", "optimal_threshold", 0.005, []),
]


def net(x):
    y = nets.conv(x, 2, 5, "pick", k=1)
    return nets.head(nets.conv(y, 5, 4, "next", k=1), 4, 4)


def static_setup(ir):
    main, startup, *_ = oracle.build(net, [2, 4, 4])
    scope, _ = oracle.init_scope(startup, main)
    scope.find_var("pick_weights").get_tensor().set(FILTERS.reshape(5, 2, 1, 1), paddle.CPUPlace())
    scope.find_var("pick_bn_scale").get_tensor().set(GAMMA, paddle.CPUPlace())
    return main, scope


@pytest.mark.parametrize("ir", ["pir", "legacy"])
@pytest.mark.parametrize("criterion", sorted(SCORES))
def test_static_scores_by_hand(ir, criterion):
    with oracle.ir_guard(ir):
        main, scope = static_setup(ir)
        view = view_of(main)
        got = get_criterion(criterion)(discover(view, "pick_weights"), scope_reader(scope, view))
    np.testing.assert_allclose(got, SCORES[criterion], rtol=1e-6)


@pytest.mark.parametrize("ir", ["pir", "legacy"])
@pytest.mark.parametrize("criterion,selector,ratio,pruned", EXPECTED)
def test_static_pruner_picks_by_hand(ir, criterion, selector, ratio, pruned):
    with oracle.ir_guard(ir):
        main, scope = static_setup(ir)
        pruner = Pruner(criterion, selector)
        program, _, _ = pruner.prune(main, scope, ["pick_weights"], [ratio])
    assert [e.pruned for e in pruner.plan.entries] == [pruned]
    kept = [i for i in range(5) if i not in pruned]
    w = np.array(scope.find_var("pick_weights").get_tensor()).reshape(-1, 2)
    np.testing.assert_array_equal(w, FILTERS[kept])  # the survivors, in order, are the filters kept
    np.testing.assert_array_equal(np.array(scope.find_var("pick_bn_scale").get_tensor()), GAMMA[kept])


@pytest.mark.parametrize("ratio,pruned", [(0.3, [1, 3, 4]), (0.05, [1]), (0.6, [0, 1, 3, 4]), (0.005, [])])
def test_optimal_threshold_by_hand(ratio, pruned):
    atoms = [np.array([i]) for i in range(5)]
    got = get_selector("optimal_threshold")(np.abs(GAMMA).astype(np.float64), ratio, atoms)
    assert got.tolist() == pruned


def test_selector_atoms_score_by_their_mean_and_ties_go_to_the_lower_index():
    """Atoms (groups of a grouped conv) score by their channels' mean: {0,1} = 2.5, {2,3} = 2.5, {4,5} = 1."""
    atoms = [np.array([0, 1]), np.array([2, 3]), np.array([4, 5])]
    scores = np.array([4.0, 1.0, 2.0, 3.0, 0.5, 1.5])
    assert get_selector("default_idx_selector")(scores, 0.5, atoms).tolist() == [0, 1, 4, 5]  # round(1.5) = 2
    assert get_selector("default_idx_selector")(scores, 0.3, atoms).tolist() == [4, 5]


class _Net(paddle.nn.Layer):
    def __init__(self):
        super().__init__()
        self.pick = paddle.nn.Conv2D(2, 5, 1, bias_attr=False)
        self.bn = paddle.nn.BatchNorm2D(5)
        self.next = paddle.nn.Conv2D(5, 4, 1)
        self.fc = paddle.nn.Linear(4 * 4 * 4, 3)

    def forward(self, x):
        y = self.next(paddle.nn.functional.relu(self.bn(self.pick(x))))
        return self.fc(paddle.flatten(y, 1))


def _dygraph_pruner(criterion):
    from ppprune.dygraph import FilterPruner, FPGMFilterPruner, L1NormFilterPruner, L2NormFilterPruner

    by_name = {"l1_norm": L1NormFilterPruner, "l2_norm": L2NormFilterPruner, "geometry_median": FPGMFilterPruner}
    return by_name.get(criterion) or type("BNScalePruner", (FilterPruner,), {"criterion_name": criterion})


@pytest.mark.parametrize("criterion,selector,ratio,pruned", EXPECTED)
def test_dygraph_pruner_picks_by_hand(dygraph, criterion, selector, ratio, pruned):
    paddle.seed(0)
    model = _Net()
    model.pick.weight.set_value(FILTERS.reshape(5, 2, 1, 1))
    model.bn.weight.set_value(GAMMA)
    model.eval()
    plan = _dygraph_pruner(criterion)(model, [1, 2, 4, 4], idx_selector=selector).prune_vars({"pick.weight": ratio})
    assert [e.pruned for e in plan.entries] == [pruned]
    kept = [i for i in range(5) if i not in pruned]
    np.testing.assert_array_equal(model.pick.weight.numpy().reshape(-1, 2), FILTERS[kept])
    np.testing.assert_array_equal(model.bn.weight.numpy(), GAMMA[kept])
