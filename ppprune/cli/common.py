"""What every tool shares: flags, config and weights, the pruning request, plans beside checkpoints."""
import argparse
import os
import re
import sys
import traceback

PLAN_FILE = "plan.json"


class UsageError(ValueError):
    """Bad command-line input; the message says what is wrong and how to fix it."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line with the fix, like every other error of the tools."""

    def error(self, message):
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def parser(doc):
    p = OneLineParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", required=True, help="YAML config file")
    p.add_argument("-o", "--opt", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="override config entries, e.g. -o weights=output/x/model_final max_iters=100")
    add_overwrite_flag(p)
    return p


def add_overwrite_flag(p):
    p.add_argument("--overwrite", action="store_true",
                   help="write into an output folder holding files ppprune did not write (they may be replaced)")


def add_train_flags(p):
    p.add_argument("--eval", action="store_true", help="evaluate at every snapshot and keep best_model")
    p.add_argument("-r", "--resume_checkpoint", default=None, help="checkpoint prefix to resume from")


def add_prune_flags(p):
    p.add_argument("-p", "--pruned_params", default=None,
                   help="conv weights to prune, comma or space separated (see --print_params)")
    p.add_argument("--pruned_ratios", default=None,
                   help="share of channels to remove per weight, in [0, 1): one ratio, or one per weight")
    p.add_argument("--prune_criterion", default="l1_norm",
                   choices=["l1_norm", "l2_norm", "geometry_median", "bn_scale"])
    p.add_argument("--idx_selector", default="default_idx_selector", choices=["default_idx_selector", "optimal_threshold"])
    p.add_argument("--round_to", type=int, default=1, help="keep remaining channel counts multiples of N")


def split_list(text):
    """'a,b c' -> ['a', 'b', 'c']: commas and spaces both separate, in every tool."""
    return [t for t in re.split(r"[,\s]+", text.strip()) if t] if text else []


def pruned_request(args):
    """(params, ratios) from --pruned_params/--pruned_ratios, or (None, None) if neither is given."""
    params, texts = split_list(args.pruned_params), split_list(args.pruned_ratios)
    if not params and not texts:
        return None, None
    if not params:
        raise UsageError("--pruned_ratios given without --pruned_params: name the conv weights to prune")
    if not texts:
        raise UsageError("--pruned_params given without --pruned_ratios: give one ratio, or one per weight")
    if getattr(args, "round_to", 1) < 1:
        raise UsageError(f"--round_to {args.round_to}: give a positive channel multiple (1 = no rounding, e.g. 8)")
    from ..core.request import check_request, parse_ratios

    ratios = parse_ratios(texts, "--pruned_ratios")
    return check_request(params, ratios[0] if len(ratios) == 1 else ratios, "--pruned_params", "--pruned_ratios")


def save_dir(cfg, config_path, suffix=""):
    """`<save_dir>/<config name><suffix>`; nothing is created here (see `output_dir`)."""
    name = os.path.splitext(os.path.basename(config_path))[0] + suffix
    return os.path.join(str(cfg.get("save_dir") or "output"), name)


def output_dir(args, path, inputs=(), own_inputs=(), flag="-o save_dir=<another folder>"):
    """The checked (not yet opened) output folder of a run: see `ppprune.outdir.OutputDir`."""
    from ..outdir import OutputDir

    return OutputDir(path, inputs, own_inputs, overwrite=getattr(args, "overwrite", False), flag=flag)


def weights_prefix(cfg, key="weights"):
    path = cfg.get(key)
    if not path:
        raise UsageError(f"no weights to load: pass -o {key}=<checkpoint prefix>, e.g. -o {key}=output/<config>/model_final")
    return path[: -len(".pdparams")] if str(path).endswith(".pdparams") else str(path)


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
    saved = {e["param"]: e["ratio"] for e in plan.entries}
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


def loaders(cfg, with_eval):
    """(train loader, eval loader, evaluator) from the config's readers, built before anything is written
    (a missing dataset is an error then); the eval pair is None without --eval or off rank 0."""
    from ..engine import distributed
    from ..engine.evaluators import build_evaluator
    from ..engine.readers import build_reader

    _, train_loader = build_reader(cfg, "TrainReader", shard=True)
    eval_loader = evaluator = None
    if with_eval and distributed.is_main():  # rank 0 alone evaluates
        eval_set, eval_loader = build_reader(cfg, "EvalReader")
        evaluator = build_evaluator(cfg, eval_set)
    return train_loader, eval_loader, evaluator


def train(cfg, programs, exe, scope, out, start_iter, data, what="training", meta=None):
    """Run `fit` with `data` from `loaders`; returns the best result or None."""
    import time

    from ..engine import fit

    train_loader, eval_loader, evaluator = data
    tic = time.time()
    best = fit(programs, exe, scope, train_loader, out, cfg["max_iters"], cfg["snapshot_iter"], start_iter=start_iter,
               eval_loader=eval_loader, evaluator=evaluator, meta=meta)
    print(f"{what} done in {(time.time() - tic) / 60:.1f} min; checkpoints in {out}")
    if best is not None:
        print(f"best {evaluator.key}: {best[evaluator.key]:.4f}\n{best.get('per_class', '')}")
    return best


def cost(program, scope):
    from ..analysis import flops, model_size

    return {"flops": flops(program), "params": model_size(program, scope) if scope is not None else None}


def print_table(title, columns, rows):
    """rows: (label, values...) with values already formatted."""
    widths = [max(len(str(r[i])) for r in [columns] + rows) for i in range(len(columns))]
    print(title)
    for r in [columns] + rows:
        print("  " + "  ".join(str(v).rjust(w) if i else str(v).ljust(w) for i, (v, w) in enumerate(zip(r, widths))))


def run(main_fn):
    """Run a tool: user-facing errors become one clear line and exit code 2, never a traceback."""
    from ..config.loader import ConfigError, ConfigValueError
    from ..core.errors import MissingDependency, PruneError
    from ..engine.checkpoint import WeightsError
    from ..engine.distributed import DistributedError
    from ..outdir import OutputDirError

    try:
        result = main_fn()
        return result if isinstance(result, int) else 0  # mains return their results for in-process callers
    except (UsageError, PruneError, WeightsError, ConfigError, ConfigValueError, OutputDirError, MissingDependency,
            DistributedError, FileNotFoundError, FileExistsError) as e:
        if os.environ.get("PPPRUNE_DEBUG"):
            traceback.print_exc()
        message = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        message = " ".join(str(message).split())  # one line, whatever the message held
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)
