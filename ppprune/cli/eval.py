"""Evaluate a (pruned) checkpoint. The plan saved beside the weights reshapes the model first, so
`--pruned_params/--pruned_ratios` are not needed; if given, they must agree with the plan.

    python tools/eval.py -c configs/yolov3/yolov3_mobilenet_v1_demo.yml -o weights=output/..._pruned/model_final
"""
from . import driver, flags, runner


def parse_args(argv=None):
    p = flags.parser(__doc__)
    flags.add_prune_flags(p)
    return p.parse_args(argv)


def run(argv=None):
    """Evaluate; returns the evaluator's result (e.g. `mAP`)."""
    args = parse_args(argv)
    from ..config import load_config
    from ..engine import eval_loop
    from ..engine.evaluators import build_evaluator
    from ..engine.readers import build_reader

    cfg = load_config(args.config, args.opt)
    programs, spec, exe, scope, place, plan = driver.load_model(cfg, "eval", args)
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
