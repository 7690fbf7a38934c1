"""Evaluate a (pruned) checkpoint. The plan saved beside the weights reshapes the model first, so
`--pruned_params/--pruned_ratios` are not needed; if given, they must agree with the plan.

    python tools/eval.py -c configs/yolov3/yolov3_mobilenet_v1_demo.yml -o weights=output/..._pruned/model_final
"""
from typing import Any, NamedTuple

from . import common, driver, flags, paths, plans, runner


def parse_args(argv=None):
    p = flags.parser(__doc__)
    flags.add_prune_flags(p)
    return p.parse_args(argv)


class LoadedModel(NamedTuple):
    """A checkpoint ready to run: `spec` is the (reshaped) `mode` program, `plan` the plan it was pruned by."""
    programs: Any
    spec: Any
    exe: Any
    scope: Any
    place: Any
    plan: Any


def load_model(cfg, mode, args, parallel=False):
    """Set up `mode` programs (see `driver.setup`), reshape them by the checkpoint's plan (or by flags), and
    load the weights."""
    from ..engine import load_weights

    prefix = paths.weights_prefix(cfg)
    params, ratios = common.pruned_request(args) if args is not None else (None, None)
    programs, place, exe, scope = driver.setup(cfg, mode, parallel)
    spec = getattr(programs, mode)
    plan = plans.checked_plan(prefix)
    if plan is not None:
        plans.check_against_plan(plan, params, ratios)
    elif params is not None:  # PaddleSlim-style: reshape by flags (indices do not matter, weights overwrite)
        from ..prune import Pruner

        pruner = Pruner(args.prune_criterion, args.idx_selector)
        pruner.prune(spec.program, scope, params, ratios, place=place, only_graph=True)
        plan = pruner.plan
    if plan is not None:
        spec = plans.apply_saved_plan(spec, scope, plan, place)
        plans.resize_scope(scope, plan, place)
    load_weights(prefix, scope, place, programs.param_names)
    return LoadedModel(programs, spec, exe, scope, place, plan)


def run(argv=None):
    """Evaluate; returns the evaluator's result (e.g. `mAP`)."""
    args = parse_args(argv)
    from ..config import load_config
    from ..engine import eval_loop
    from ..engine.evaluators import build_evaluator
    from ..engine.readers import build_reader

    cfg = load_config(args.config, args.opt)
    programs, spec, exe, scope, place, plan = load_model(cfg, "eval", args)
    if plan is not None:
        print("pruned model: " + ", ".join(f"{e.param} -{len(e.pruned)}/{e.size}" for e in plan.entries))
    dataset, loader = build_reader(cfg, "EvalReader")
    evaluator = build_evaluator(cfg, dataset)
    result = eval_loop(spec, exe, scope, loader, evaluator)
    print(f"{evaluator.key}: {result[evaluator.key]:.4f}")
    if result.get("per_class"):
        print(result["per_class"])
    return result


main = runner.exit_zero(run)
