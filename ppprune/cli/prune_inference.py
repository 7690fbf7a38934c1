"""Prune an exported inference model (legacy `.pdmodel` or PIR `.json`, e.g. from PaddleOCR or
PaddleDetection 2.x) and save the pruned inference model in a new folder, with the plan beside it.

    python tools/prune_inference.py --model inference/det/model --print_params
    python tools/prune_inference.py --model inference/det/model --pruned_params all --pruned_ratios 0.3 \\
        --output_dir output/det_pruned

`--pruned_params all` names every prunable conv weight: output convs, 1-channel heads and convs whose channels
reach an op they cannot pass (an op without a channel rule, a slice of their channels) are skipped with the reason.
The model is opened in the PIR IR (a `.pdmodel` is translated) unless `--ir legacy`.
"""
import argparse
import os

from . import common, flags, paths, readback, runner, table


def parse_args(argv=None):
    p = flags.OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="model prefix (model.json / model.pdmodel + .pdiparams) or its folder")
    p.add_argument("--ir", choices=["pir", "legacy"], default="pir", help="IR to open and save the model in")
    p.add_argument("-P", "--print_params", action="store_true", help="list prunable conv weights and exit")
    p.add_argument("--output_dir", default=None, help="new folder for the pruned model and plan.json")
    flags.add_prune_flags(p)
    flags.add_overwrite_flag(p)
    return p.parse_args(argv)


def run(argv=None):
    """Prune the exported model into the output folder (or list its prunable convs)."""
    args = parse_args(argv)
    from ..deploy import exported
    from ..prune import Pruner
    from ..prune.report import conv_weights, format_report, prunable_params
    from ..core.graph import view_of
    from ..outdir import staged

    model = exported.load(args.model, ir=args.ir)
    if args.print_params:
        print(format_report(*prunable_params(model.program)))
        return
    if not args.output_dir:
        raise runner.UsageError("give --output_dir: a new folder for the pruned model (never the input's)")
    # the same guard as every tool's: never the input's folder (symlinks resolved), never foreign files
    out = paths.output_dir(args, args.output_dir, inputs=[model.model_file], flag="--output_dir <another folder>")
    every = flags.split_list(args.pruned_params) == ["all"]
    if every:
        args.pruned_params = ",".join(conv_weights(view_of(model.program)))
    params, ratios = common.pruned_request(args)
    if params is None:
        raise runner.UsageError("nothing to prune: give --pruned_params (or 'all') and --pruned_ratios")
    if args.round_to > 1:
        from ..prune.ratios import round_ratios

        ratios = round_ratios(model.program, params, ratios, args.round_to)
    before = _cost(model.program, model.scope)
    pruner = Pruner(args.prune_criterion, args.idx_selector, args.group_reduction)
    pruned, _, _ = pruner.prune(model.program, model.scope, params, ratios, skip_blocked=every)
    pruner.plan.meta["source_model"] = os.path.abspath(model.model_file)
    with staged(out) as stage:  # model and plan appear together, or the old folder stays
        exported.save(model, pruned, os.path.join(stage, "model"), lookup=pruner.lookup)
        readback.check(os.path.join(stage, "model"), model.scope)
        pruner.plan.save(os.path.join(stage, "plan.json"))
    after = _cost(pruned, model.scope)
    for s in pruner.plan.skipped:
        print(f"skipped {s['param']}: {s['reason']}")
    table.print_table(f"pruned model written to {args.output_dir}", ("", "before", "after"),
                       [("FLOPs (MACs)", before["flops"], after["flops"]),
                        ("params", f"{before['params']:,}", f"{after['params']:,}")])


def _cost(program, scope):
    """FLOPs and parameter count for the table; exported models often leave spatial sizes open, and then
    FLOPs cannot be counted."""
    from ..analysis import flops, model_size
    from ..core.errors import PruneError

    try:
        macs = f"{flops(program):,}"
    except PruneError:
        macs = "unknown (input size not fixed)"
    return {"flops": macs, "params": model_size(program, scope)}


main = runner.exit_zero(run)
