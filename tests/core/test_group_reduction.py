"""Group-wide scoring (`group_reduction`): a channel scored from every conv/fc weight that loses it, checked
against scores computed by hand from the scope's tensors."""
import numpy as np
import paddle
import pytest

from tests.helpers import nets, oracle
from ppprune.core.criteria import get_criterion
from ppprune.core.errors import PruneError
from ppprune.core.graph import view_of
from ppprune.core.groups import discover
from ppprune.core.tensors import scope_reader
from ppprune.prune import Pruner


def net(x):
    """gr_a (8 filters) -> depthwise gr_dw (follows it) -> gr_c (reads its 8 channels) -> head."""
    y = nets.conv(x, 3, 8, "gr_a")
    y = nets.conv(y, 8, 8, "gr_dw", groups=8)
    return nets.head(nets.conv(y, 8, 6, "gr_c", k=1), 6, 8)


def by_hand(scope, reduction, norm=lambda rows: np.abs(rows).sum(axis=1)):
    a, dw, c = (np.array(scope.find_var(f"gr_{n}_weights").get_tensor()).astype(np.float64) for n in ("a", "dw", "c"))
    stack = np.vstack([norm(a.reshape(8, -1)), norm(dw.reshape(8, -1)), norm(np.moveaxis(c, 1, 0).reshape(8, -1))])
    return {"sum": stack.sum(0), "mean": stack.mean(0), "max": stack.max(0)}[reduction]


@pytest.mark.parametrize("ir", ["pir", "legacy"])
@pytest.mark.parametrize("reduction", ["sum", "mean", "max"])
def test_scores_every_weight_of_the_group(ir, reduction):
    with oracle.ir_guard(ir):
        main, startup, *_ = oracle.build(net, [3, 8, 8])
        scope, _ = oracle.init_scope(startup, main)
        view = view_of(main)
        group = discover(view, "gr_a_weights")
        got = get_criterion("l1_norm", reduction)(group, scope_reader(scope, view))
        np.testing.assert_allclose(got, by_hand(scope, reduction), rtol=1e-6)

        pruner = Pruner("l1_norm", group_reduction=reduction)
        pruner.prune(main, oracle.copy_scope(scope, oracle.persistable_names(main)), ["gr_a_weights"], [0.5],
                     only_graph=True)
        assert pruner.plan.entries[0].pruned == sorted(np.argsort(by_hand(scope, reduction), kind="stable")[:4].tolist())
        assert pruner.plan.criterion == f"l1_norm, group {reduction}"


def test_a_group_of_one_weight_scores_as_the_master_alone():
    """Without group_reduction the master alone is scored (PaddleSlim's scores); a group whose only weight
    is the master scores the same with any reduction."""
    with oracle.ir_guard("pir"):
        main, startup, *_ = oracle.build(lambda x: nets.conv(x, 3, 8, "lone", bn=False, act=None), [3, 8, 8])
        scope, _ = oracle.init_scope(startup, main)
        view = view_of(main)
        group, read = discover(view, "lone_weights"), scope_reader(scope, view)
        w = np.array(scope.find_var("lone_weights").get_tensor()).astype(np.float64).reshape(8, -1)
        for name, norm in (("l1_norm", np.abs(w).sum(1)), ("l2_norm", np.sqrt((w * w).sum(1)))):
            np.testing.assert_allclose(get_criterion(name)(group, read), norm)
            for reduction in ("sum", "mean", "max"):
                np.testing.assert_allclose(get_criterion(name, reduction)(group, read), norm)


def test_dygraph_pruner_takes_group_reduction(dygraph):
    from ppprune import L1NormFilterPruner

    model = paddle.vision.models.mobilenet_v1(scale=0.25, num_classes=10)
    plain = L1NormFilterPruner(model, [1, 3, 32, 32]).prune_vars({"conv2d_0.w_0": 0.5}, apply=None)
    grouped = L1NormFilterPruner(model, [1, 3, 32, 32], group_reduction="sum").prune_vars({"conv2d_0.w_0": 0.5},
                                                                                     apply=None)
    assert grouped.criterion == "l1_norm, group sum" and plain.criterion == "l1_norm"
    assert len(grouped.entries[0].pruned) == len(plain.entries[0].pruned) == 4


@pytest.mark.parametrize("criterion,reduction,message", [
    ("bn_scale", "sum", "criterion 'bn_scale' scores one tensor"),
    ("l1_norm", "median", "give one of sum, mean, max"),
])
def test_bad_group_reduction_is_refused(criterion, reduction, message):
    with pytest.raises(PruneError, match=message):
        Pruner(criterion, group_reduction=reduction)
