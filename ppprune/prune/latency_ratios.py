"""Ratios for a measured latency target: a greedy over groups and channel steps on a `LatencyModel`.

Every listed conv (coupled convs as one unit, as for FLOPs) can take a ladder of ratios (multiples of
1/steps, rounded to `round_to` channels). Each unit's rungs are planned once, alone, exactly as
`Pruner.prune` would plan them; since units own disjoint channels, the shapes of any combination follow
by adding what each unit removes. Starting from nothing pruned, each step moves one unit one rung down:
the one costing least per millisecond saved, cost being the sensitivity loss it adds (with
sensitivities) or the growth of the square of its ratio (without: the fewest channels removed in the
least-squares sense, so each conv loses channels in proportion to the time they buy, none all of them). It stops once the predicted latency is within the
target.
"""
import numpy as np
import paddle

from ..core.criteria import get_criterion
from ..core.errors import PruneError
from ..core.graph import view_of
from ..core.groups import discover
from ..core.planner import build as build_plan
from ..core.request import check_names
from ..core.selectors import get_selector
from ..core.tensors import scope_reader
from ..deploy.latency_model import build_model, conv_blocks
from .ratios import clusters, round_ratio


class LatencySearch:
    """The ladder of every unit of `params` on `program`, ready for `ratios(model, pruned_latency)`."""

    def __init__(self, program, params, scope=None, sensitivities=None, criterion="l1_norm",
                 idx_selector="default_idx_selector", round_to=1, max_ratio=0.9, steps=16):
        if not 0 < max_ratio < 1:
            raise PruneError(f"max_ratio={max_ratio!r}: give the largest ratio a conv may take, in (0, 1)")
        self.view = view_of(program)
        check_names(self.view, list(params))
        if sensitivities is not None:
            check_names(self.view, list(sensitivities))
            params = [p for p in params if p in sensitivities]
        self.sensitivities = sensitivities
        groups = {p: discover(self.view, p) for p in params}
        cluster = clusters(groups)
        units = {}
        for p in params:
            units.setdefault(cluster[p], []).append(p)
        # a unit reaching a network output would change what the network returns
        self.units = {rep: ms for rep, ms in units.items() if not any(groups[m].outputs for m in ms)}
        scope = paddle.static.global_scope() if scope is None else scope
        read, crit, sel = scope_reader(scope, self.view), get_criterion(criterion), get_selector(idx_selector)
        self.rungs = {rep: self._ladder(rep, ms, groups[rep], read, crit, sel, round_to, max_ratio, steps)
                      for rep, ms in self.units.items()}

    def _ladder(self, rep, members, group, read, crit, sel, round_to, max_ratio, steps):
        """[(ratio, {filter key: channels removed per dim})] from ratio 0 upwards."""
        cap = max_ratio
        if self.sensitivities is not None:
            cap = min([cap] + [max(float(r) for r in self.sensitivities[m]) for m in members])
        ratios = sorted({round_ratio(group, k / steps, round_to) for k in range(steps) if k / steps <= cap + 1e-9})
        ladder = [(0.0, {})]
        for r in ratios:
            if r <= 0:
                continue
            plan = build_plan(self.view, read, members, [r] * len(members), crit, sel)
            removed = {}
            for key, shape in plan.cuts.shapes.items():
                orig = self.view.shape(key)
                if orig is not None and len(orig) == 4 and list(shape) != list(orig):
                    removed[key] = np.array(orig) - np.array(shape)
            ladder.append((r, removed))
        return ladder

    def varying(self):
        """{filter name: 'out' | 'in' | 'both' | 'tied'}: the channel counts the ladders can change."""
        axes = {}
        for ladder in self.rungs.values():
            for key, dims in ladder[-1][1].items():
                name = self.view.persistable_name(key)
                if name is not None:
                    axes.setdefault(name, set()).update(i for i in (0, 1) if dims[i])
        blocks, varying = conv_blocks(self.view), {}
        for name, dims in axes.items():
            if name not in blocks:
                continue  # a transposed conv: left to the unmodelled rest
            if blocks[name].depthwise:
                varying[name] = "tied"  # its inputs go with its outputs
            else:
                varying[name] = {frozenset({0}): "out", frozenset({1}): "in"}.get(frozenset(dims), "both")
        return varying

    def ratios(self, model, pruned_latency):
        """{param: ratio} predicted to remove `pruned_latency` (a share) of `model.base_ms`; the
        prediction for them is left in `self.predicted_ms`. Raises PruneError, nothing chosen, when even
        every unit at its last rung does not reach it."""
        if not 0 < pruned_latency < 1:
            raise PruneError(f"pruned_latency={pruned_latency!r}: give the share of latency to remove, in (0, 1)")
        target = model.base_ms * (1 - pruned_latency)
        state = _State(self.view, model)
        level = dict.fromkeys(self.rungs, 0)
        while state.predicted() > target:
            best = self._best_step(state, level)
            if best is None:
                raise PruneError(
                    f"cannot remove {pruned_latency:.1%} of the measured latency ({model.base_ms:.2f} ms): pruning every "
                    f"listed conv to its largest ratio is predicted to remove {1 - state.predicted() / model.base_ms:.1%}. "
                    f"List more convs, allow larger ratios (max_ratio, or measure larger sensitivity ratios), or lower the target.")
            rep = best
            state.move(self.rungs[rep][level[rep]][1], self.rungs[rep][level[rep] + 1][1])
            level[rep] += 1
        self.predicted_ms = state.predicted()
        return {m: self.rungs[rep][level[rep]][0] for rep, ms in self.units.items() if level[rep] for m in ms}

    def _best_step(self, state, level):
        best, best_score = None, None
        for rep, ladder in self.rungs.items():
            if level[rep] + 1 >= len(ladder):
                continue
            here, there = ladder[level[rep]], ladder[level[rep] + 1]
            saved = -state.change(here[1], there[1])
            if saved <= 0:
                continue
            if self.sensitivities is not None:
                cost = self._loss(rep, there[0]) - self._loss(rep, here[0])
            else:  # growing squares: convs that buy more time per channel share lose more, none all
                cost = there[0] ** 2 - here[0] ** 2
            score = max(cost, 0.0) / saved
            if best_score is None or score < best_score:
                best, best_score = rep, score
        return best

    def _loss(self, rep, ratio):
        """The unit's sensitivity loss at `ratio`: its members' losses, interpolated, added up."""
        total = 0.0
        for m in self.units[rep]:
            points = sorted((float(r), float(v)) for r, v in self.sensitivities[m].items())
            total += float(np.interp(ratio, [0.0] + [r for r, _ in points], [0.0] + [v for _, v in points]))
        return total


class _State:
    """The channels removed from every filter so far, and the predicted latency they give."""

    def __init__(self, view, model):
        self.view, self.model = view, model
        self.removed = {}
        self.keys = {model.blocks[n].filter_key: n for n in model.fits}
        self.delta = 0.0

    def _ms(self, key, removed):
        name = self.keys[key]
        return self.model.block_ms(name, np.array(self.model.blocks[name].filter_shape) - removed)

    def change(self, before, after):
        """Predicted ms change of replacing one unit's removal `before` by `after`."""
        delta = 0.0
        for key in set(before) | set(after):
            if key not in self.keys:
                continue
            cur = self.removed.get(key, 0)
            new = cur - before.get(key, 0) + after.get(key, 0)
            delta += self._ms(key, new) - self._ms(key, cur)
        return delta

    def move(self, before, after):
        self.delta += self.change(before, after)
        for key in set(before) | set(after):
            self.removed[key] = self.removed.get(key, 0) - before.get(key, 0) + after.get(key, 0)

    def predicted(self):
        return self.model.base_ms + self.delta


def ratios_for_latency(program, params, pruned_latency, base_ms, settings, sensitivities=None, scope=None,
                       table_folder=None, measure=True, time_pruned=None, rounds=3, tolerance=0.03, **search_args):
    """{param: ratio} removing `pruned_latency` of the measured latency `base_ms` of `program` (the
    network as deployed, timed with `settings`), by the latency model measured on this machine (its
    table reused from `table_folder`). With `sensitivities` the least accuracy is lost per millisecond
    saved; without, the fewest channels are removed (see the module doc).

    With `time_pruned` (ratios -> measured latency share of the pruned network, e.g.
    `latency_check.PrunedTimer`) the choice is checked by measurement, since blocks timed alone also save
    layout conversions the whole network never pays. While the measured saving falls short of the target
    by more than `tolerance` (up to `rounds` measurements), the model is asked for more: the target scaled
    by the share of the predicted saving that was measured, or, once a round overshoots, the point between
    the closest short and overshooting rounds. What the model is asked never drops below the target, and
    the least-pruned measured choice that meets it is returned (else the one saving most). The measured
    rounds are left in `model.rounds`. Returns (ratios, predicted ms, model)."""
    search = LatencySearch(program, params, scope, sensitivities, **search_args)
    model = build_model(search.view, base_ms, search.varying(), settings, table_folder, measure)
    ratios = search.ratios(model, pruned_latency)
    model.rounds = []
    if time_pruned is None:
        return ratios, search.predicted_ms, model
    asked, tried = pruned_latency, []
    while True:
        measured = 1 - time_pruned(ratios)
        predicted = 1 - search.predicted_ms / base_ms
        model.rounds.append({"asked": asked, "predicted_removed": predicted, "measured_removed": measured})
        tried.append((asked, measured, ratios, search.predicted_ms))
        if measured >= pruned_latency - tolerance and (len(tried) == 1 or measured <= pruned_latency + tolerance):
            break  # met at the first ask, or close enough after a correction
        short = [t for t in tried if t[1] < pruned_latency - tolerance]
        if len(tried) >= rounds or not short:
            break
        over = [t for t in tried if t[1] >= pruned_latency - tolerance]
        asked = _next_ask(pruned_latency, max(short, key=lambda t: t[0]),
                          min(over, key=lambda t: t[0]) if over else None, predicted)
        try:
            ratios = search.ratios(model, asked)
        except PruneError:  # the model cannot go further: keep what was measured
            break
    met = [t for t in tried if t[1] >= pruned_latency - tolerance]
    _, _, ratios, predicted_ms = min(met, key=lambda t: t[1]) if met else max(tried, key=lambda t: t[1])
    return ratios, predicted_ms, model


def _next_ask(target, short, over, predicted):
    """The saving to ask the model for after the round `short` (asked, measured, ...) fell short of
    `target`: between it and the closest overshooting round `over` when there is one, else scaled through the last round's measured
    share of its prediction; never below the target, never 1 or more."""
    asked, measured = short[:2]
    if over:
        a, m = over[:2]
        ask = asked + (target - measured) * (a - asked) / max(m - measured, 1e-6)
    else:
        ask = target * predicted / max(measured, 1e-3)
    return min(max(ask, target), 0.99)
