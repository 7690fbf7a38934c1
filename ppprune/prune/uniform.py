"""Uniform pruning to a FLOPs target: one ratio for every listed conv (PaddleSlim's "uniform" recipe),
found by bisection on the FLOPs the real plan would leave."""
import paddle

from ..analysis.flops import count
from ..core.criteria import get_criterion
from ..core.errors import PruneError
from ..core.graph import view_of
from ..core.groups import discover
from ..core.request import check_names
from ..core.selectors import get_selector
from ..core.tensors import scope_reader
from .sensitive import _clusters, planned_flops, round_ratio


def uniform_ratios(program, params, pruned_flops, scope=None, criterion="l1_norm", idx_selector="default_idx_selector",
                   round_to=1, tolerance=0.01, max_iters=40):
    """{param: ratio}, the same ratio for each of `params` (moved per conv to keep a multiple of `round_to`
    channels), removing `pruned_flops` of `program`'s FLOPs within `tolerance`. Raises PruneError, nothing
    changed, when the target is out of reach."""
    if not 0 < pruned_flops < 1:
        raise PruneError(f"pruned_flops={pruned_flops!r}: give the share of FLOPs to remove, in (0, 1)")
    scope = paddle.static.global_scope() if scope is None else scope
    view = view_of(program)
    check_names(view, params)
    groups = {p: discover(view, p) for p in params}
    cluster = _clusters(groups)
    read, crit, selector = scope_reader(scope), get_criterion(criterion), get_selector(idx_selector)
    base = count(view)[0]

    def attempt(ratio):  # rounded once per cluster, so the convs of a merged group keep one ratio
        return planned_flops(view, read, {p: round_ratio(groups[cluster[p]], ratio, round_to) for p in params},
                             crit, selector, base)

    lo, hi = 0.0, 0.95
    ratios, reached = attempt(hi)
    if reached < pruned_flops - tolerance:
        raise PruneError(f"cannot remove {pruned_flops:.1%} of the FLOPs by pruning these {len(params)} convs "
                         f"uniformly: even 95% of their channels removes {reached:.1%}. List more convs or lower the target.")
    for _ in range(max_iters):
        mid = (lo + hi) / 2
        ratios, reached = attempt(mid)
        if abs(reached - pruned_flops) <= tolerance:
            return ratios
        lo, hi = (mid, hi) if reached < pruned_flops else (lo, mid)
    raise PruneError(f"no uniform ratio removes {pruned_flops:.1%} ± {tolerance:.1%} of the FLOPs (last: {reached:.1%}); "
                     "the channel counts are too coarse: raise the tolerance or lower round_to")
