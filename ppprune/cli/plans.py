"""Plans saved beside checkpoints: finding and checking them, and reshaping programs and scopes by them."""
import os

from .runner import UsageError

PLAN_FILE = "plan.json"


def plan_beside(prefix):
    """The plan saved next to a checkpoint prefix, if any."""
    from ..core.plan import Plan

    folder = prefix if os.path.isdir(prefix) else os.path.dirname(prefix)
    path = os.path.join(folder, PLAN_FILE)
    return Plan.load(path) if os.path.isfile(path) else None


def checked_plan(prefix):
    """The plan beside a checkpoint, refused if the checkpoint was saved with another plan."""
    from ..engine.checkpoint import check_plan

    plan = plan_beside(prefix)
    check_plan(prefix, plan)
    return plan


def check_against_plan(plan, params, ratios):
    """Flags given with a saved plan must agree with it (the plan is what the weights were pruned by)."""
    if params is None:
        return
    saved = {e.param: e.ratio for e in plan.entries}
    given = dict(zip(params, ratios))
    if set(given) - set(saved) or any(abs(given[p] - saved[p]) > 1e-9 for p in given if p in saved) \
            or set(saved) - set(given) - {s["param"] for s in plan.skipped}:
        raise UsageError(
            "--pruned_params/--pruned_ratios disagree with the plan saved beside the weights "
            f"({', '.join(f'{p}={r:g}' for p, r in saved.items())}); drop the flags (the plan is enough) or "
            "point -o weights= at the checkpoint they were pruned for")


def resize_scope(scope, plan, place):
    """Give the scope tensors the pruned shapes, so the loader can check the checkpoint against them."""
    import numpy as np

    for name, shape in plan.shapes.items():
        var = scope.find_var(name)
        if var is not None:
            var.get_tensor().set(np.zeros(shape, dtype=np.array(var.get_tensor()).dtype), place)


def remap(spec, pruner, program):
    """A ProgramSpec for a pruned copy: same feeds, fetch targets looked up in the copy."""
    from ..engine.programs import ProgramSpec

    return ProgramSpec(program, spec.feeds, {k: pruner.lookup(v) for k, v in spec.fetches.items()}, spec.lr_scheduler,
                       [pruner.lookup(v) for v in spec.network], spec.network_feeds)


def remap_program(spec, program):
    """`spec` driving `program` when `program` is spec's own program (sensitivity zeroes, it does not copy)."""
    from ..engine.programs import ProgramSpec

    if program is not spec.program:
        raise ValueError("eval_func was handed a different program than the one analysed")
    return ProgramSpec(program, spec.feeds, spec.fetches, spec.lr_scheduler, spec.network, spec.network_feeds)


def apply_saved_plan(spec, scope, plan, place=None):
    """Prune `spec`'s program graph-only by a saved plan (the weights loaded afterwards are pruned)."""
    from ..prune import Pruner

    pruner = Pruner()
    program, _, _ = pruner.apply_plan(spec.program, scope, plan, place=place, only_graph=True)
    return remap(spec, pruner, program)
