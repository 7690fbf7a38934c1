"""Pruning ratios chosen from sensitivities or a FLOPs target: by a loss threshold (`get_ratios_by_loss`), by
a FLOPs target over sensitivities (`ratios_for_flops`) or one ratio for every conv (`uniform_ratios`,
PaddleSlim's "uniform" recipe). FLOPs are predicted by planning each candidate exactly as `Pruner.prune`
plans it; coupled convs (clusters) get one ratio, rounded once in whole groups of a grouped conv."""
import math

import paddle

from ..analysis.flops import count
from ..core.criteria import get_criterion
from ..core.disjoint import DisjointSets
from ..core.errors import CannotFollow, PruneError
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


class Ratios(dict):
    """{param: ratio} chosen by a FLOPs search, with the share of FLOPs it removes (`reached`, as the pruned
    program counts them) and `notes`: one line each for what a user should know (a target reached only at
    the top of the search, convs that rounding leaves unpruned)."""

    def __init__(self, ratios, reached, notes=()):
        super().__init__(ratios)
        self.reached, self.notes = reached, list(notes)


def ratios_for_flops(program, sensitivities, pruned_flops, skip_params=(), round_to=1, tolerance=0.01, max_iters=50,
                     scope=None, criterion="l1_norm", idx_selector="default_idx_selector"):
    """{param: ratio} (a `Ratios`) removing `pruned_flops` (a share, e.g. 0.4) of `program`'s FLOPs within
    `tolerance`, found by a binary search over the loss threshold of `get_ratios_by_loss`. Each candidate is
    planned on the graph exactly as `Pruner.prune` with the same criterion would plan it, so the prediction
    is the FLOPs of the pruned program. Convs coupled to each other (a residual add, a depthwise conv and the
    conv feeding it) get the smallest of their ratios; skipping a param skips those coupled to it.
    `round_to=N` keeps every pruned conv's remaining channel count a multiple of N. Raises PruneError if
    the target is out of reach of the measured ratios or no threshold lands within the tolerance."""
    search = _Search(program, list(sensitivities), pruned_flops, round_to, tolerance, scope, criterion, idx_selector,
                     skip_params)
    candidates = {p: sensitivities[p] for p in sensitivities if search.cluster[p] not in search.blocked}

    def attempt(threshold):
        by_loss = get_ratios_by_loss(candidates, threshold)
        shared = {}
        for p in candidates:  # the most sensitive member of a cluster decides for all of it
            shared[search.cluster[p]] = min(shared.get(search.cluster[p], 1.0), by_loss.get(p, 0.0))
        return search.planned({p: shared[search.cluster[p]] for p in candidates})

    losses = [float(l) for s in candidates.values() for l in s.values()]
    if not losses:
        raise PruneError("no prunable param has sensitivities: nothing can reduce the FLOPs")
    # below every loss nothing is pruned; at the top, every param at its largest measured ratio
    return search.run(attempt, min(losses) - 1.0, max(losses), max_iters, "loss threshold",
                      "pruning every param at its largest measured ratio",
                      "Measure larger ratios, include more params or skip fewer, or lower the target.")


class _Search:
    """What both FLOPs searches share: the checked request, the params' groups and clusters, the FLOPs a
    candidate removes (rounded once per cluster, so the convs of a merged group keep one ratio), and the
    bisection itself."""

    def __init__(self, program, params, pruned_flops, round_to, tolerance, scope, criterion, idx_selector,
                 skip_params=()):
        if not 0 < pruned_flops < 1:
            raise PruneError(f"pruned_flops={pruned_flops!r}: give the share of FLOPs to remove, in (0, 1)")
        if isinstance(round_to, bool) or not isinstance(round_to, int) or round_to < 1:
            raise PruneError(f"round_to={round_to!r}: give a positive integer channel multiple (1 = no rounding)")
        self.selector = get_selector(idx_selector)
        if round_to > 1 and self.selector is not default_idx_selector:
            raise PruneError("round_to counts channels as default_idx_selector does; use it with that selector only")
        scope = paddle.static.global_scope() if scope is None else scope
        self.view = view = view_of(program)
        check_names(view, params)
        check_names(view, list(skip_params))
        self.groups = {p: discover(view, p) for p in params + [p for p in skip_params if p not in params]}
        self.cluster = clusters(self.groups)
        self.blocked = {self.cluster[p] for p in self.groups if p in skip_params or self.groups[p].outputs}
        self.read_tensor, self.criterion = scope_reader(scope, view), get_criterion(criterion)
        self.target, self.round_to, self.tolerance, self.base = pruned_flops, round_to, tolerance, count(view)[0]
        self.notes = [n for n in [unpruned_by_rounding({p: self.groups[self.cluster[p]] for p in params
                                                        if self.cluster[p] not in self.blocked}, round_to)] if n]

    def planned(self, ratios):
        """(the rounded ratios above 0, the share of FLOPs they remove) for {param: ratio before rounding}."""
        rounded = {p: round_ratio(self.groups[self.cluster[p]], r, self.round_to) for p, r in ratios.items()}
        return planned_flops(self.view, self.read_tensor, rounded, self.criterion, self.selector, self.base)

    def run(self, attempt, lo, hi, max_iters, knob, top, advice):
        """Bisect `knob` in [lo, hi] (more FLOPs removed as it grows) until `attempt(knob)` -> (ratios, share)
        lands within the tolerance; a `Ratios`, or PruneError saying what was reached."""
        target, tolerance = self.target, self.tolerance
        ratios, reached = attempt(hi)
        if reached < target - tolerance:
            raise PruneError(f"cannot remove {target:.1%} of the FLOPs: {top} removes {reached:.1%}. {advice}")
        if abs(reached - target) <= tolerance:  # the top of the search: say so when it falls short
            short = [f"reached {reached:.1%} of the FLOPs removed for a target of {target:.1%} (within the tolerance "
                     f"{tolerance:.1%}): {top} removes no more"] if reached < target else []
            return Ratios(ratios, reached, self.notes + short)
        tried = [reached]
        for _ in range(max_iters):
            mid = (lo + hi) / 2
            ratios, reached = attempt(mid)
            tried.append(reached)
            if abs(reached - target) <= tolerance:
                return Ratios(ratios, reached, self.notes)
            lo, hi = (mid, hi) if reached < target else (lo, mid)
        closest = min(tried, key=lambda r: abs(r - target))
        raise PruneError(f"no {knob} removes {target:.1%} ± {tolerance:.1%} of the FLOPs in {max_iters} steps "
                         f"(closest: {closest:.1%}); the channel counts are too coarse here: raise the tolerance "
                         "(tools/prune.py --flops_tolerance) or lower round_to")


def planned_flops(view, read_tensor, ratios, criterion, selector, base):
    """(the ratios above 0, the share of `base` FLOPs they remove), planned as `Pruner.prune` plans them."""
    ratios = {p: r for p, r in ratios.items() if r > 0}
    plan = build_plan(view, read_tensor, list(ratios), list(ratios.values()), criterion, selector)
    return ratios, 1 - count(view, plan.cuts.shapes)[0] / base


def clusters(groups):
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
    n_atoms, step = _atoms(group, multiple)
    keep = n_atoms - min(int(round(n_atoms * ratio)), n_atoms - 1)
    keep = max(step, int(round(keep / step)) * step)
    return 0.0 if keep >= n_atoms else (n_atoms - keep) / n_atoms


def _atoms(group, multiple):
    """(atoms of `group`, atoms per multiple of `multiple` channels); an atom is a whole group of a grouped conv."""
    n_atoms = len(group.atoms())
    width = group.size // n_atoms
    return n_atoms, multiple // math.gcd(multiple, width)


def unpruned_by_rounding(groups, multiple):
    """One line naming the convs of {param: group} that keeping a multiple of `multiple` channels leaves
    unpruned at every ratio (they have no more than one multiple), or None."""
    if multiple <= 1:
        return None
    stuck = [f"{p} ({g.size} channels)" for p, g in groups.items() if _atoms(g, multiple)[1] >= _atoms(g, multiple)[0]]
    if not stuck:
        return None
    return (f"round_to {multiple}: {len(stuck)} conv(s) have too few channels to keep a smaller multiple of "
            f"{multiple} and stay unpruned: {', '.join(stuck[:6])}{' ...' if len(stuck) > 6 else ''}")


class Rounded(list):
    """Rounded ratios, with `notes` naming every conv whose ratio rounding turned into 0 (with its channels)."""

    def __init__(self, ratios, notes=()):
        super().__init__(ratios)
        self.notes = list(notes)


def round_ratios(program, params, ratios, round_to):
    """Ratios adjusted so each weight keeps a multiple of `round_to` channels (at least `round_to`), counted
    in the whole groups of a grouped conv its channels feed, as the selector prunes them (a `Rounded`)."""
    if round_to <= 1:
        return Rounded(ratios)
    view = view_of(program)
    groups = {}
    for p in params:
        try:
            groups[p] = discover(view, p)
        except CannotFollow:
            pass  # the planner refuses it (or skips it, `skip_blocked`) with the reason: nothing to round
    rounded = [round_ratio(groups[p], r, round_to) if p in groups else r for p, r in zip(params, ratios)]
    zeroed = [f"{p} ({groups[p].size} channels, ratio {r:g})" for p, r, q in zip(params, ratios, rounded) if r > 0 and q == 0]
    return Rounded(rounded, [f"round_to {round_to}: {len(zeroed)} ratio(s) became 0, these convs stay unpruned (the "
                             f"nearest multiple of {round_to} channels is all of them): {', '.join(zeroed)}"] if zeroed else [])


def uniform_ratios(program, params, pruned_flops, scope=None, criterion="l1_norm", idx_selector="default_idx_selector",
                   round_to=1, tolerance=0.01, max_iters=40):
    """{param: ratio} (a `Ratios`), the same ratio for each of `params` (moved per conv to keep a multiple of
    `round_to` channels), removing `pruned_flops` of `program`'s FLOPs within `tolerance`. Raises PruneError,
    nothing changed, when the target is out of reach."""
    search = _Search(program, list(params), pruned_flops, round_to, tolerance, scope, criterion, idx_selector)
    return search.run(lambda ratio: search.planned({p: ratio for p in params}), 0.0, 0.95, max_iters, "uniform ratio",
                      f"pruning these {len(params)} convs uniformly at 95% of their channels (the most a uniform "
                      "ratio takes)", "List more convs or lower the target.")
