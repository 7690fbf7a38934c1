"""Criteria: each row criterion defined once (registered, with its row score for group-wide scoring), and
the dygraph FilterPruner taking any criterion by `criterion=`."""
import numpy as np
import paddle
import pytest

from ppprune.core.criteria import CRITERIA, get_criterion


class _Group:
    """What a master-only criterion reads of a group: the master's name and axis."""

    param, axis = "w", 0


def test_row_criteria_score_the_master_rows_by_their_definition():
    w = np.random.default_rng(0).standard_normal((5, 3, 2, 2)).astype(np.float32)
    rows = w.reshape(5, -1).astype(np.float64)
    dist = np.sqrt(((rows[:, None, :] - rows[None, :, :]) ** 2).sum(-1))
    want = {"l1_norm": np.abs(rows).sum(1), "l2_norm": np.sqrt((rows**2).sum(1)), "geometry_median": dist.sum(1)}
    for name, expected in want.items():
        fn = get_criterion(name)
        assert fn is CRITERIA.get(name) and fn.__name__ == name  # plans record the name
        np.testing.assert_allclose(fn(_Group(), {"w": w}.__getitem__), expected, rtol=1e-6)
        np.testing.assert_allclose(fn.row_score(rows), expected, rtol=1e-6)  # the one definition group scores use


def test_only_row_criteria_take_a_group_reduction():
    assert {n for n in CRITERIA.names() if hasattr(CRITERIA.get(n), "row_score")} == {"l1_norm", "l2_norm",
                                                                                      "geometry_median"}


@pytest.fixture
def mobilenet(dygraph):
    paddle.seed(0)
    return paddle.vision.models.mobilenet_v1(scale=0.25, num_classes=10)


def test_dygraph_filter_pruner_takes_criterion_by_name(mobilenet):
    from ppprune.dygraph import FilterPruner, FPGMFilterPruner, L2NormFilterPruner

    ratios = {"conv2d_0.w_0": 0.5}
    by_class = L2NormFilterPruner(mobilenet, [1, 3, 32, 32]).prune_vars(ratios, apply=None)
    by_name = FilterPruner(mobilenet, [1, 3, 32, 32], criterion="l2_norm").prune_vars(ratios, apply=None)
    assert by_name.criterion == by_class.criterion == "l2_norm"
    assert by_name.entries[0].pruned == by_class.entries[0].pruned
    fpgm = FPGMFilterPruner(mobilenet, [1, 3, 32, 32]).prune_vars(ratios, apply=None)
    assert fpgm.criterion == "geometry_median"
    assert FilterPruner(mobilenet, [1, 3, 32, 32]).prune_vars(ratios, apply=None).criterion == "l1_norm"


def test_dygraph_filter_pruner_takes_a_criterion_function(mobilenet):
    from ppprune.dygraph import FilterPruner, L1NormFilterPruner

    def last_first(group, read_tensor):  # scores rise with the channel index: the first channels go
        return np.arange(group.size, dtype=np.float64)

    plan = L1NormFilterPruner(mobilenet, [1, 3, 32, 32], criterion=last_first).prune_vars({"conv2d_0.w_0": 0.5},
                                                                                         apply=None)
    size = plan.entries[0].size
    assert plan.criterion == "last_first" and plan.entries[0].pruned == list(range(size // 2))
    with pytest.raises(ValueError, match="unknown criterion 'l3_norm'"):
        FilterPruner(mobilenet, [1, 3, 32, 32], criterion="l3_norm")
