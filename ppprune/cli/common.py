"""What every tool shares: flags, config and weights, the pruning request, plans beside checkpoints."""
import argparse
import os
import re
import sys
import traceback

PLAN_FILE = "plan.json"


class UsageError(ValueError):
    """Bad command-line input; the message says what is wrong and how to fix it."""


def parser(doc):
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", required=True, help="YAML config file")
    p.add_argument("-o", "--opt", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="override config entries, e.g. -o weights=output/x/model_final max_iters=100")
    return p


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
    ratios = []
    for t in texts:
        try:
            r = float(t)
        except ValueError:
            raise UsageError(f"--pruned_ratios: '{t}' is not a number") from None
        if not 0 <= r < 1:
            raise UsageError(f"--pruned_ratios: {t} is outside [0, 1); a ratio is the share of channels to remove")
        ratios.append(r)
    if len(ratios) == 1:
        ratios *= len(params)
    if len(ratios) != len(params):
        raise UsageError(f"{len(params)} --pruned_params but {len(ratios)} --pruned_ratios: give one ratio per weight "
                         "(or a single ratio for all)")
    return params, ratios


def save_dir(cfg, config_path, suffix=""):
    name = os.path.splitext(os.path.basename(config_path))[0] + suffix
    path = os.path.join(cfg.get("save_dir", "output"), name)
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, ".write-test")
        open(probe, "w").close()
        os.remove(probe)
    except OSError as e:
        raise UsageError(f"cannot write to output directory '{path}' ({e.strerror}); set -o save_dir=<writable dir>") from None
    return path


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


def train(cfg, programs, exe, scope, out, start_iter, with_eval, what="training"):
    """Run `fit` with the config's readers (and evaluator with --eval); returns the best result or None."""
    import time

    from ..engine import fit
    from ..engine.evaluators import build_evaluator
    from ..engine.readers import build_reader

    _, train_loader = build_reader(cfg, "TrainReader")
    eval_loader = evaluator = None
    if with_eval:
        eval_set, eval_loader = build_reader(cfg, "EvalReader")
        evaluator = build_evaluator(cfg, eval_set)
    tic = time.time()
    best = fit(programs, exe, scope, train_loader, out, cfg["max_iters"], cfg["snapshot_iter"], start_iter=start_iter,
               eval_loader=eval_loader, evaluator=evaluator)
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
    from ..config.loader import ConfigError
    from ..core.errors import PruneError
    from ..engine.checkpoint import WeightsError

    try:
        result = main_fn()
        return result if isinstance(result, int) else 0  # mains return their results for in-process callers
    except (UsageError, PruneError, WeightsError, ConfigError, FileNotFoundError) as e:
        if os.environ.get("PPPRUNE_DEBUG"):
            traceback.print_exc()
        message = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)
