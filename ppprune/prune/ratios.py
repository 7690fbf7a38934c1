"""Pruning ratios chosen from sensitivities or a FLOPs target: by a loss threshold (`get_ratios_by_loss`), by
a FLOPs target over sensitivities (`ratios_for_flops`) or one ratio for every conv (`uniform_ratios`,
PaddleSlim's "uniform" recipe). FLOPs are predicted by planning each candidate exactly as `Pruner.prune`
plans it; coupled convs (clusters) get one ratio, rounded once in whole groups of a grouped conv."""
import math

import paddle

from ..analysis.flops import count
from ..core.criteria import get_criterion
from ..core.disjoint import DisjointSets
from ..core.errors import PruneError
from ..core.graph import view_of
from ..core.groups import discover
from ..core.planner import build as build_plan
from ..core.request import check_names
from ..core.selectors import default_idx_selector, get_selector
from ..core.tensors import scope_reader


def get_ratios_by_loss(sensitivities, loss):
    """{param: the largest ratio whose loss stays within `loss`}, interpolated linearly between the last
    measured ratio within it and the next one, never extrapolated past the largest measured ratio. A param
    already losing more than `loss` at its smallest measured ratio gets 0.0 (as in PaddleSlim 2.6)."""
    ratios = {}
    for param, losses in sensitivities.items():
        points = sorted((float(r), float(l)) for r, l in losses.items())
        within = [i for i, (_, l) in enumerate(points) if l <= loss]
        if not within:
            ratios[param] = 0.0
            continue
        i = within[-1]
        r0, l0 = points[i]
        if i + 1 < len(points):
            r1, l1 = points[i + 1]  # l1 > loss >= l0, since i is the last index within the loss
            r0 += (loss - l0) * (r1 - r0) / (l1 - l0)
        ratios[param] = float(r0)
    return ratios


def ratios_for_flops(program, sensitivities, pruned_flops, skip_params=(), round_to=1, tolerance=0.01, max_iters=50,
                     scope=None, criterion="l1_norm", idx_selector="default_idx_selector"):
    """{param: ratio} removing `pruned_flops` (a share, e.g. 0.4) of `program`'s FLOPs within `tolerance`,
    found by a binary search over the loss threshold of `get_ratios_by_loss`. Each candidate is planned on
    the graph exactly as `Pruner.prune` with the same criterion would plan it, so the prediction is the
    FLOPs of the pruned program. Convs coupled to each other (a residual add, a depthwise conv and the
    conv feeding it) get the smallest of their ratios; skipping a param skips those coupled to it.
    `round_to=N` keeps every pruned conv's remaining channel count a multiple of N. Raises PruneError if
    the target is out of reach of the measured ratios or no threshold lands within the tolerance."""
    if not 0 < pruned_flops < 1:
        raise PruneError(f"pruned_flops={pruned_flops!r}: give the share of FLOPs to remove, in (0, 1)")
    if not isinstance(round_to, int) or round_to < 1:
        raise PruneError(f"round_to={round_to!r}: give a positive integer channel multiple")
    selector = get_selector(idx_selector)
    if round_to > 1 and selector is not default_idx_selector:
        raise PruneError("round_to counts channels as default_idx_selector does; use it with that selector only")
    scope = paddle.static.global_scope() if scope is None else scope
    view = view_of(program)
    check_names(view, list(sensitivities))
    check_names(view, list(skip_params))
    groups = {p: discover(view, p) for p in list(sensitivities) + [p for p in skip_params if p not in sensitivities]}
    cluster = _clusters(groups)
    blocked = {cluster[p] for p in groups if p in skip_params or groups[p].outputs}
    candidates = {p: sensitivities[p] for p in sensitivities if cluster[p] not in blocked}
    base = count(view)[0]
    read_tensor, crit = scope_reader(scope, view), get_criterion(criterion)

    def attempt(threshold):
        by_loss = get_ratios_by_loss(candidates, threshold)
        shared = {}
        for p in candidates:  # the most sensitive member of a cluster decides for all of it
            shared[cluster[p]] = min(shared.get(cluster[p], 1.0), by_loss.get(p, 0.0))
        # rounded once per cluster: merged groups (concat into add) then keep one ratio for all members
        ratios = {p: round_ratio(groups[cluster[p]], shared[cluster[p]], round_to) for p in candidates}
        return planned_flops(view, read_tensor, ratios, crit, selector, base)

    losses = [float(l) for s in candidates.values() for l in s.values()]
    if not losses:
        raise PruneError("no prunable param has sensitivities: nothing can reduce the FLOPs")
    lo, hi = min(losses) - 1.0, max(losses)  # below every loss nothing is pruned; at the top, every largest ratio
    ratios, reached = attempt(hi)
    if reached < pruned_flops - tolerance:
        raise PruneError(
            f"cannot remove {pruned_flops:.1%} of the FLOPs: pruning every param at its largest measured ratio "
            f"removes {reached:.1%}. Measure larger ratios, include more params or skip fewer, or lower the target.")
    tried = [reached]
    for _ in range(max_iters):
        if abs(reached - pruned_flops) <= tolerance:
            return ratios
        mid = (lo + hi) / 2
        ratios, reached = attempt(mid)
        tried.append(reached)
        if reached > pruned_flops:
            hi = mid
        else:
            lo = mid
    if abs(reached - pruned_flops) <= tolerance:
        return ratios
    closest = min(tried, key=lambda r: abs(r - pruned_flops))
    raise PruneError(
        f"no loss threshold removes {pruned_flops:.1%} ± {tolerance:.1%} of the FLOPs in {max_iters} steps "
        f"(closest: {closest:.1%}); the channel counts are too coarse here. Raise the tolerance or lower round_to.")


def planned_flops(view, read_tensor, ratios, criterion, selector, base):
    """(the ratios above 0, the share of `base` FLOPs they remove), planned as `Pruner.prune` plans them."""
    ratios = {p: r for p, r in ratios.items() if r > 0}
    plan = build_plan(view, read_tensor, list(ratios), list(ratios.values()), criterion, selector)
    return ratios, 1 - count(view, plan.cuts.shapes)[0] / base


def _clusters(groups):
    """{param: representative}: params whose groups reach each other's weights lose the same channels."""
    sets = DisjointSets(groups)
    for p, g in groups.items():
        for q, h in groups.items():
            if (h.key, h.axis) in g.nodes:
                sets.join(p, q)
    return {p: sets.find(p) for p in groups}


def round_ratio(group, ratio, multiple):
    """`ratio` moved so that the channels default_idx_selector keeps are a multiple of `multiple` (nearest
    such count, at least one multiple; 0 when even that is impossible)."""
    if multiple == 1 or ratio <= 0:
        return ratio
    n_atoms = len(group.atoms())
    width = group.size // n_atoms  # channels per atom (a whole group of a grouped conv)
    step = multiple // math.gcd(multiple, width)  # atoms per multiple of channels
    keep = n_atoms - min(int(round(n_atoms * ratio)), n_atoms - 1)
    keep = max(step, int(round(keep / step)) * step)
    return 0.0 if keep >= n_atoms else (n_atoms - keep) / n_atoms


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
    read_tensor, crit, selector = scope_reader(scope), get_criterion(criterion), get_selector(idx_selector)
    base = count(view)[0]

    def attempt(ratio):  # rounded once per cluster, so the convs of a merged group keep one ratio
        return planned_flops(view, read_tensor, {p: round_ratio(groups[cluster[p]], ratio, round_to) for p in params},
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
