"""PaddleSlim-style dygraph filter pruners: L1NormFilterPruner, L2NormFilterPruner, FPGMFilterPruner.

A pruner traces its Layer once per shape (`trace.py`), plans with the static core on a copy of the
traced program (which the core's static applier then shrinks, so the plan's FLOPs are counted without
touching the Layer), and carries the plan out on the Layer (`apply.py`).
"""
import logging

from ..analysis.dygraph_flops import program_flops
from ..core import plan as planning
from ..core.apply_static import apply_program, new_shapes, scope_changes
from ..core.criteria import get_criterion
from ..core.errors import PruneError
from ..core.graph import clone, view_of
from ..core.groups import CONV_TYPES, discover, master_axis
from ..core.plan import Plan
from ..core.selectors import get_selector
from ..prune.pruner import check_request
from . import sensitive as sens
from .apply import apply as apply_to_layer, refuse_code_edits
from .trace import signature, trace

logger = logging.getLogger(__name__)
_APPLY = (None, "lazy", "impretive", "imperative")  # PaddleSlim spells it "impretive"


class DygraphPlan(Plan):
    """A core `Plan` plus `pruned_flops` (share of the model's FLOPs removed) and `restore(model)`."""

    def __init__(self, plan, pruned_flops):
        super().__init__(plan.entries, plan.skipped, plan.criterion, plan.idx_selector, plan.tensors, plan.shapes)
        self.pruned_flops = pruned_flops
        self.backup = None

    def restore(self, model):
        """Bring back the exact tensors, shapes, layer attributes and optimizer state of before."""
        if self.backup is None:
            raise PruneError("this plan was not applied to a model, or was already restored")
        self.backup.restore(model)
        self.backup = None


class FilterPruner:
    """Prune conv filters of a dygraph `model` traced with `inputs` (an input shape such as
    [1, 3, 224, 224], a list of shapes, or example tensors). `opt`, an optimizer built on the model, has
    its state pruned along with the parameters. Subclasses set `criterion`."""

    criterion = None

    def __init__(self, model, inputs, sen_file=None, opt=None, idx_selector="default_idx_selector"):
        self.model, self.inputs, self.opt, self.sen_file = model, inputs, opt, sen_file
        self._criterion = get_criterion(self.criterion)
        self._selector = get_selector(idx_selector)
        self._selector_name = idx_selector if isinstance(idx_selector, str) else getattr(idx_selector, "__name__", "custom")
        base = trace(model, inputs)
        self._base_sig = signature(model)
        self._base = self._last = (self._base_sig, base, program_flops(base.program))
        self._sensitivities = sens.load(sen_file)

    # -- tracing --------------------------------------------------------------------------------
    def _current(self):
        """(trace, FLOPs) of the model as it is now: traced again only when its shapes changed."""
        sig = signature(self.model)
        if sig != self._last[0]:
            if sig == self._base_sig:
                self._last = self._base
            else:
                t = trace(self.model, self.inputs)
                self._last = (sig, t, program_flops(t.program))
        return self._last[1], self._last[2]

    def conv_weights(self, followers=True):
        """Program names of the model's conv weights, in forward order; without the grouped and depthwise
        convs whose channels are their producers' unless `followers`."""
        t, _ = self._current()
        names = []
        for op in t.view.ops:
            if op.type in CONV_TYPES:
                name = t.view.persistable_name(op.ins("filter")[0])
                if name and name not in names and (followers or not _producers(t.view, name)):
                    names.append(name)
        return names

    # -- pruning --------------------------------------------------------------------------------
    def prune_var(self, var_name, pruned_dims, pruned_ratio, apply="impretive"):
        return self.prune_vars({var_name: pruned_ratio}, axis=pruned_dims, apply=apply)

    def prune_vars(self, ratios, axis=0, apply="impretive"):
        """Prune `ratios` ({param name or structured name: ratio}) of the filters of each conv weight.
        `apply`: "impretive" shrinks the model, "lazy" zeroes the channels, None only plans. Returns a
        `DygraphPlan`; `plan.restore(model)` undoes an applied plan exactly."""
        if apply not in _APPLY:
            raise PruneError(f"apply must be one of {_APPLY}, got {apply!r}")
        if axis not in (0, [0], (0,)):
            raise PruneError(f"only axis 0 (filters, i.e. output channels) can be pruned, got {axis!r}")
        t, base_flops = self._current()
        names = [t.resolve(n) for n in ratios]
        params, values = check_request(names, list(ratios.values()))
        program, _ = clone(t.program)
        view = view_of(program)
        core_plan, work = planning.build(view, t.read, params, values, self._criterion, self._selector)
        core_plan.criterion, core_plan.idx_selector = self.criterion, self._selector_name
        for entry in core_plan.entries:
            entry["path"] = t.paths[entry["param"]]
            followed = _producers(view, entry["param"])
            if followed:
                entry["follows"] = followed
                logger.info("'%s' is a grouped/depthwise conv weight: its channels are those of %s, which "
                            "lose the same channels", entry["param"], ", ".join(followed))
        for skip in core_plan.skipped:
            logger.info("skipped '%s': %s", skip["param"], skip["reason"])
        refuse_code_edits(work.edits)
        _record(core_plan, view, work)
        apply_program(view, work.removal, work.edits)  # the copy now has the pruned shapes: count them
        plan = DygraphPlan(core_plan, 1.0 - program_flops(program) / base_flops if base_flops else 0.0)
        if apply is not None:
            plan.backup = apply_to_layer(self.model, t, view, work, opt=self.opt, lazy=apply == "lazy")
        return plan

    # -- sensitivity ----------------------------------------------------------------------------
    def sensitive(self, eval_func=None, sen_file=None, target_vars=None, skip_vars=None, ratios=None):
        """Sensitivities {param: {ratio: loss}}, loss = (baseline - metric) / baseline of `eval_func()`
        with that share of the param's filters pruned. Without `eval_func`, return what is known.
        Results are saved to `sen_file` after every evaluation; a rerun computes only what is missing."""
        if eval_func is None:
            return self._sensitivities
        sen_file = sen_file or self.sen_file
        if sen_file != self.sen_file:
            self._sensitivities = sens.merge(self._sensitivities, sens.load(sen_file))
        t, _ = self._current()
        targets = [t.resolve(n) for n in target_vars] if target_vars else self.conv_weights(followers=False)
        skip = {t.resolve(n) for n in skip_vars or []}
        targets = [n for n in targets if n not in skip]
        ratios = sens.RATIOS if ratios is None else ratios
        self._sensitivities = sens.compute(self, eval_func, targets, ratios, self._sensitivities, sen_file)
        return self._sensitivities

    def sensitive_prune(self, pruned_flops, skip_vars=None, align=None):
        """Prune the model to remove about `pruned_flops` (a share) of its FLOPs, each conv by a ratio read
        from its sensitivity at one common loss. Grouped/depthwise convs follow their producers."""
        if not self._sensitivities:
            raise PruneError("no sensitivities: call sensitive(eval_func, sen_file) first")
        t, _ = self._current()
        skip = {t.resolve(n) for n in skip_vars or []}
        skip |= {n for n in self._sensitivities if n in t.tensors and _producers(t.view, n)}
        logger.info("skip vars: %s", sorted(skip))
        curves = {n: c for n, c in self._sensitivities.items() if n not in skip}
        ratios = sens.search(lambda r: self.prune_vars(r, apply=None).pruned_flops,
                             curves, pruned_flops, self._couple(curves), align, _sizes(t, curves))
        logger.info("ratios: %s", ratios)
        return self.prune_vars(ratios)

    def _couple(self, params):
        """A function merging the ratios of coupled params (e.g. convs joined by a residual add) into one
        per group, the smallest: the core prunes a group once and refuses two ratios for it."""
        t, _ = self._current()
        reach = {p: {k for k, _ in discover(t.view, p).nodes} for p in params}
        keys = {p: master_axis(t.view, p)[0] for p in params}

        def merge(ratios):
            kept = {}
            for p, r in ratios.items():
                leader = next((q for q in kept if keys[p] in reach[q]), None)
                if leader is None:
                    kept[p] = r
                else:
                    kept[leader] = min(kept[leader], r)
            return kept

        return merge


class L1NormFilterPruner(FilterPruner):
    criterion = "l1_norm"


class L2NormFilterPruner(FilterPruner):
    criterion = "l2_norm"


class FPGMFilterPruner(FilterPruner):
    criterion = "geometry_median"


def _producers(view, param):
    """Conv weights whose filters a grouped/depthwise conv weight `param` follows ([] for other convs)."""
    key, _ = master_axis(view, param)
    conv = next(op for op in view.consumers[key] if op.type in CONV_TYPES)
    if (conv.attr("groups") or 1) == 1:
        return []
    group = discover(view, param)
    return [group.names[k] for k, axis in group.nodes
            if k != key and axis == 0 and group.names.get(k) and _is_plain_filter(view, k)]


def _is_plain_filter(view, key):
    return any(op.type in CONV_TYPES and key in op.ins("filter") and (op.attr("groups") or 1) == 1
               for op in view.consumers.get(key, []))


def _record(plan, view, work):
    """Fill the plan's per-tensor indices and new shapes (by program name), for people and checks."""
    changes = scope_changes(view, work.removal)
    shapes = new_shapes(view, work.removal)
    plan.tensors = {n: {a: idx.tolist() for a, idx in axes.items()} for n, axes in changes.items()}
    plan.shapes = {view.persistable_name(k): s for k, s in shapes.items() if view.persistable_name(k)}


def _sizes(t, params):
    """Output channels of each param (for aligning ratios)."""
    return {p: t.view.shape(master_axis(t.view, p)[0])[master_axis(t.view, p)[1]] for p in params}
