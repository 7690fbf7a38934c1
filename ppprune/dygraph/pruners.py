"""PaddleSlim-style dygraph filter pruners: L1NormFilterPruner, L2NormFilterPruner, FPGMFilterPruner.

A pruner traces its Layer once per set of shapes (`trace.py`), plans with the static core on the traced
program (the plan's FLOPs are counted from the shapes it would give, without touching the Layer), and
carries the plan out on the Layer (`apply.py`). Sensitivities and ratios for a FLOPs target are the
static ones (`ppprune.prune.sensitive`, `ppprune.prune.ratios`) run on the traced program with the Layer's tensors as its scope:
a trial zeroes channels in the Layer itself, which computes what the pruned Layer would (PaddleSlim's
dygraph pruners measure sensitivities the same way, lazily).
"""
import logging

from ..analysis.flops import count
from ..core.criteria import get_criterion
from ..core.errors import PruneError
from ..core.convs import conv_weights
from ..core.groups import discover, followed_convs
from ..core.plan import warn_if_zeroing_differs
from ..core.planner import build as build_plan
from ..core.request import check_request
from ..core.selectors import get_selector
from ..prune.ratios import ratios_for_flops
from ..prune.sensitive import load_sensitivities, merge_sensitive, sensitivity
from .apply import TensorScope, refuse_code_edits
from .apply import apply as apply_to_layer
from .trace import signature, trace

logger = logging.getLogger(__name__)
_APPLY = (None, "lazy", "impretive", "imperative")  # PaddleSlim spells it "impretive"


class DygraphPlan:
    """A core `Plan` (`plan`; its fields and methods read through: `entries`, `skipped`, `tensors`,
    `shapes`, `meta`, `save`, ...) plus `pruned_flops` (share of the model's FLOPs removed) and
    `restore(model)`."""

    def __init__(self, plan, pruned_flops):
        self.plan = plan
        self.pruned_flops = pruned_flops
        self.backup = None

    def __getattr__(self, name):  # only called for what DygraphPlan itself does not have
        if name == "plan":  # not set yet (copying, unpickling)
            raise AttributeError(name)
        return getattr(self.plan, name)

    def __repr__(self):
        return repr(self.plan)

    def restore(self, model):
        """Bring back the exact tensors, shapes, layer attributes and optimizer state of before."""
        if self.backup is None:
            raise PruneError("this plan was not applied to a model, or was already restored")
        self.backup.restore(model)
        self.backup = None


class FilterPruner:
    """Prune conv filters of a dygraph `model` traced with `inputs` (an input shape such as
    [1, 3, 224, 224], a list of shapes, or example tensors). `opt`, an optimizer built on the model, has
    its state pruned along with the parameters. `sen_file` holds sensitivities (loaded if it exists).
    `criterion` ('l1_norm', 'l2_norm', 'geometry_median', 'bn_scale', or a function `fn(group, read_tensor)`)
    scores the channels; the default is the class's `criterion_name` (the L1/L2/FPGM pruners set it).
    `group_reduction` ('sum', 'mean', 'max') scores channels from every weight of their group."""

    criterion_name = "l1_norm"

    def __init__(self, model, inputs, sen_file=None, opt=None, idx_selector="default_idx_selector", group_reduction=None,
                 criterion=None):
        self.model, self.inputs, self.opt, self.sen_file = model, inputs, opt, sen_file
        self._scorer = get_criterion(self.criterion_name if criterion is None else criterion, group_reduction)
        self._idx_selector = idx_selector  # a name or a function, as given
        self._selector = get_selector(idx_selector)
        self._base = self._traced()
        self._last = self._base
        self._sensitivities = load_sensitivities(sen_file)

    # -- tracing --------------------------------------------------------------------------------
    def _traced(self):
        try:
            t = trace(self.model, self.inputs)
        except PruneError:
            raise
        except Exception as e:  # noqa: BLE001 - Paddle's tracing errors run to pages; say what to check
            first = next((line.strip() for line in str(e).splitlines() if line.strip()), "")
            raise PruneError(f"tracing the model with inputs {self.inputs!r} failed ({e.__class__.__name__}: "
                             f"{first[:120]}); give the full input shape with the batch dimension, e.g. "
                             "[1, 3, 224, 224], or example tensors") from None
        _check_conv_inputs(t.view, self.inputs)
        return signature(self.model), t, count(t.view)[0]

    def _current(self):
        """(trace, FLOPs) of the model as it is now: traced again only when its shapes changed."""
        sig = signature(self.model)
        if sig != self._last[0]:
            self._last = self._base if sig == self._base[0] else self._traced()
        return self._last[1], self._last[2]

    def conv_weights(self, followers=True):
        """Program names of the model's conv weights, in forward order; without the grouped and depthwise
        convs whose channels are their producers' unless `followers`."""
        view = self._current()[0].view
        return [n for n in conv_weights(view) if followers or not followed_convs(view, n)]

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
        view = t.view
        params, values = check_request([t.resolve(n) for n in ratios], list(ratios.values()))
        names = (self._scorer.__name__, self._idx_selector if isinstance(self._idx_selector, str) else "custom")
        core_plan = build_plan(view, t.read_tensor, params, values, self._scorer, self._selector, names=names,
                               layer_paths=t.paths)
        for entry in core_plan.entries:
            if entry.follows:
                logger.info("'%s' is a grouped/depthwise conv weight: its channels are those of %s, which "
                            "lose the same channels", entry.param, ", ".join(entry.follows))
        for skip in core_plan.skipped:
            logger.info("skipped '%s': %s", skip["param"], skip["reason"])
        plan = DygraphPlan(core_plan, 1.0 - count(view, core_plan.cuts.shapes)[0] / base_flops if base_flops else 0.0)
        if apply == "lazy":
            warn_if_zeroing_differs(core_plan)
        if apply is not None:
            plan.backup = apply_to_layer(self.model, t, view, core_plan, opt=self.opt, lazy=apply == "lazy")
            const_edits = [e for e in core_plan.cuts.edits if e.kind == "const"]
            if const_edits and apply != "lazy":
                self._check_code_follows(const_edits, plan)
        return plan

    def _check_code_follows(self, const_edits, plan):
        """Shape constants of the trace (a reshape's shape, split sections) come from the Layer's code. If
        the code computes them from `x.shape` (a channel shuffle), the pruned Layer's trace shows them
        shrunk by the plan; a hard-coded one stays as it was: then undo and refuse."""
        try:
            new = self._traced()
        except Exception:  # the pruned Layer no longer runs: a constant did not follow
            new = None
        expected = {}
        for e in const_edits:
            values = expected.setdefault((e.op.index, e.name), (e, list(e.op.attr(e.name))))[1]
            values[e.pos] -= e.n
        for (index, name), (edit, values) in expected.items():
            got = new[1].view.ops[index] if new is not None and index < len(new[1].view.ops) else None
            if got is None or got.type != edit.op.type or list(got.attr(name) or []) != values:
                plan.restore(self.model)
                refuse_code_edits([edit])
        self._last = new

    # -- sensitivity ----------------------------------------------------------------------------
    def sensitive(self, eval_func=None, sen_file=None, target_vars=None, skip_vars=None, ratios=None):
        """Sensitivities {param: {ratio: loss}}, loss = (baseline - metric) / baseline of `eval_func()`
        with that share of the param's filters zeroed (0.1 ... 0.9 unless `ratios`). Without `eval_func`,
        return what is known. Results go to `sen_file` (default: the pruner's) after every evaluation; a
        rerun evaluates only what is missing; the model is restored after every trial, also on errors."""
        if eval_func is None:
            return self._sensitivities
        t, _ = self._current()
        targets = [t.resolve(n) for n in target_vars] if target_vars else self._sensitive_targets()
        skip = {t.resolve(n) for n in skip_vars or []}
        result = sensitivity(
            t.program, None, [n for n in targets if n not in skip], lambda _: eval_func(), sen_file or self.sen_file,
            ratios, scope=TensorScope(t.tensors), criterion=self._scorer, idx_selector=self._idx_selector)
        self._sensitivities = merge_sensitive([self._sensitivities, result])
        return self._sensitivities

    def _sensitive_targets(self):
        """Conv weights worth measuring: not depthwise followers (their producer's measurement covers
        them) and not those whose channels reach a network output (they cannot be pruned)."""
        view = self._current()[0].view
        return [n for n in self.conv_weights(followers=False) if not discover(view, n).outputs]

    def sensitive_prune(self, pruned_flops, skip_vars=None, align=None, tolerance=0.01):
        """Prune the model to remove `pruned_flops` (a share) of its FLOPs within `tolerance`, each conv by
        the ratio its sensitivity allows at one common loss; `align` keeps remaining channel counts
        multiples of it. Depthwise convs follow their producers; `skip_vars` (and the convs coupled to
        them) are kept. Raises PruneError, the model untouched, if the target cannot be met."""
        if not self._sensitivities:
            raise PruneError("no sensitivities: call sensitive(eval_func, sen_file) first")
        t, _ = self._current()
        skip = [t.resolve(n) for n in skip_vars or []]
        followers = sorted(n for n in self._sensitivities if n in t.tensors and followed_convs(t.view, n))
        logger.info("skip vars: %s", skip + followers)
        curves = {n: c for n, c in self._sensitivities.items() if n not in followers}
        ratios = ratios_for_flops(t.program, curves, pruned_flops, skip_params=skip, round_to=align or 1,
                                  tolerance=tolerance, scope=TensorScope(t.tensors), criterion=self._scorer,
                                  idx_selector=self._idx_selector)
        logger.info("ratios: %s", ratios)
        return self.prune_vars(ratios)


class L1NormFilterPruner(FilterPruner):
    criterion_name = "l1_norm"


class L2NormFilterPruner(FilterPruner):
    criterion_name = "l2_norm"


class FPGMFilterPruner(FilterPruner):
    criterion_name = "geometry_median"


def _check_conv_inputs(view, inputs):
    """Every conv must see the channels its filter takes: a wrong input shape traces without complaint."""
    for op in view.ops:
        if op.type not in ("conv2d", "depthwise_conv2d"):
            continue
        x_shape, f_shape = view.shape(op.ins("input")[0]), view.shape(op.ins("filter")[0])
        if not x_shape or not f_shape:
            continue
        channels = x_shape[-1] if str(op.attr("data_format") or "NCHW").upper() in ("NHWC", "NDHWC") else x_shape[1]
        want = f_shape[1] * (op.attr("groups") or 1)
        if channels > 0 and channels != want:
            name = view.persistable_name(op.ins("filter")[0])
            raise PruneError(f"inputs {inputs!r} give conv '{name}' {channels} input channels, but it takes {want}; "
                             "give the input shape the model expects, e.g. [1, 3, 224, 224]")

