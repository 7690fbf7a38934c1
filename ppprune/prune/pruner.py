"""`Pruner`: prune conv output channels of a static Program and its Scope (PIR or legacy IR)."""
from ..core.criteria import get_criterion
from ..core.errors import PruneError
from ..core.graph import clone, view_of
from ..core.planner import build as build_plan
from ..core.plan import warn_if_zeroing_differs
from ..core.program_edit import apply_program, prune_startup
from ..core.request import check_names, check_request
from ..core.scope_write import apply_scope
from ..core.selectors import get_selector
from ..core.tensors import check_scope_tensor, scope_reader


class Pruner:
    """Prune conv filters by `criterion` ('l1_norm', 'l2_norm', 'geometry_median', 'bn_scale', or a function:
    `scorer`, named `criterion_name`) and `idx_selector` ('default_idx_selector', 'optimal_threshold', or a
    function: `selector`, named `selector_name`). After `prune`, `self.plan` holds what
    was pruned (and what was skipped, with the reason), and `self.lookup(v)` finds a value or variable of
    the input program in the pruned copy (PIR values have no names to fetch by). `group_reduction`
    ('sum', 'mean', 'max') scores each channel from every weight of its group, not the master alone
    (see `core.criteria.group_criterion`)."""

    def __init__(self, criterion="l1_norm", idx_selector="default_idx_selector", group_reduction=None):
        self.scorer = get_criterion(criterion, group_reduction)
        self.criterion_name = self.scorer.__name__ if group_reduction or not isinstance(criterion, str) else criterion
        self.selector_name = idx_selector if isinstance(idx_selector, str) else getattr(idx_selector, "__name__", "custom")
        self.selector = get_selector(idx_selector)
        self.plan = None
        self.lookup = None

    def prune(self, program, scope, params, ratios, place=None, lazy=False, only_graph=False,
              param_backup=False, param_shape_backup=False, skip_blocked=False):
        """Return `(pruned_program, param_backup, param_shape_backup)`. The input program is not modified;
        the scope is changed in place unless `only_graph`. Backups are dicts when asked for, else None.
        `skip_blocked=True` (every conv weight listed, as `--pruned_params all` does): a conv whose channels
        reach an op they cannot pass is skipped, the reason in `plan.skipped`, instead of failing."""
        params, ratios = check_request(params, ratios)
        _check_modes(lazy, only_graph)
        pruned, self.lookup = clone(program)
        view = view_of(pruned)
        check_names(view, params)
        plan = build_plan(view, scope_reader(scope, view), params, ratios, self.scorer, self.selector,
                          names=(self.criterion_name, self.selector_name), skip_blocked=skip_blocked)
        return self._apply(pruned, view, scope, plan, place, lazy, only_graph, param_backup, param_shape_backup)

    def apply_plan(self, program, scope, plan, place=None, lazy=False, only_graph=False,
                   param_backup=False, param_shape_backup=False):
        """Replay a saved `Plan` (same channels) on a program holding the same weights."""
        params = [e.param for e in plan.entries]
        _check_modes(lazy, only_graph)
        pruned, self.lookup = clone(program)
        view = view_of(pruned)
        check_names(view, params)
        names = (plan.criterion or self.criterion_name, plan.idx_selector or self.selector_name)
        new_plan = build_plan(view, scope_reader(scope, view), params, [e.ratio for e in plan.entries],
                              self.scorer, self.selector, replay={e.param: e.pruned for e in plan.entries},
                              names=names)
        return self._apply(pruned, view, scope, new_plan, place, lazy, only_graph, param_backup, param_shape_backup)

    def prune_startup(self, startup_program, plan=None):
        """Return a copy of `startup_program` whose initializers create the pruned shapes of `plan` (default:
        the last plan), so a fresh scope can be initialised for the pruned program."""
        plan = plan or self.plan
        if plan is None:
            raise PruneError("prune_startup needs a plan: call prune() first or pass plan=")
        startup, _ = clone(startup_program)
        resized = prune_startup(view_of(startup), plan.shapes)
        missing = sorted(set(plan.shapes) - set(resized))
        if missing:
            raise PruneError(f"the startup program does not initialise {', '.join(missing)}; is it the right startup program?")
        return startup

    def _apply(self, pruned, view, scope, plan, place, lazy, only_graph, want_backup, want_shapes):
        shape_backup = {view.persistable_name(k): list(view.shape(k)) for k in plan.cuts.shapes if view.persistable_name(k)}
        if not only_graph:
            _check_scope(scope, shape_backup)
        backup = {}
        if lazy:
            warn_if_zeroing_differs(plan)
        if not lazy:
            apply_program(view, plan.cuts)
        if not only_graph:
            backup = apply_scope(scope, plan.tensors, place=place, lazy=lazy, backup=want_backup)
        self.plan = plan
        return pruned, (backup if want_backup else None), (shape_backup if want_shapes else None)


def _check_modes(lazy, only_graph):
    if lazy and only_graph:
        raise PruneError("lazy=True with only_graph=True would change nothing (lazy pruning zeroes channels in the "
                         "scope, only_graph leaves the scope alone); drop one of them")


def _check_scope(scope, shapes):
    """Before anything changes: every tensor about to be pruned exists, initialised, with the program's shape."""
    for name, shape in shapes.items():
        var = scope.find_var(name)
        if var is not None:  # gradients, say, live only while a training step runs
            check_scope_tensor(name, var.get_tensor(), shape)
