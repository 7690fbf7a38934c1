"""Sensitivity of conv weights on the eval set: how much the metric drops when each weight loses a share
of its channels. Resumable (results are saved after every evaluation), shardable across processes or
machines, with a plot and suggested ratios.

    python tools/sensitive.py -c CFG -o weights=output/<config>/model_final [--pruned_params a,b] \\
        [--pruned_ratios 0.1,0.2,0.3] [-s sens.pkl] [--shard 0/2] [--loss 0.05] [--target_flops 0.3]
    python tools/sensitive.py -c CFG --merge shard0.pkl shard1.pkl -s sens.pkl --target_flops 0.3

Here `--pruned_ratios` is the grid of ratios tried on every weight (default 0.1 ... 0.9); without
`--pruned_params` every prunable conv weight is analysed.

Under `python -m paddle.distributed.launch --nproc_per_node N tools/sensitive.py ...` rank i analyses shard i/N
into its own resumable file and rank 0 merges them when all are done (rerun the same command to resume).
"""
import os

from . import flags, paths, plans, runner


def parse_args(argv=None):
    p = flags.parser(__doc__)
    p.add_argument("-p", "--pruned_params", default=None, help="conv weights to analyse (default: all prunable)")
    p.add_argument("--pruned_ratios", default=None, help="ratios to try on each weight (default 0.1 ... 0.9)")
    p.add_argument("-s", "--sensitivities_file", default=None, help="results file (resumed if it exists)")
    p.add_argument("--shard", default=None, metavar="I/N", help="analyse only the I-th of N slices of the weights")
    p.add_argument("--eval_batches", type=int, default=None, help="evaluate on the first N batches only (faster)")
    p.add_argument("--merge", nargs="+", default=None, metavar="FILE", help="merge shard files into -s and report")
    p.add_argument("--loss", type=float, default=None, help="suggest ratios keeping each weight's loss under this")
    p.add_argument("--target_flops", type=float, default=None, help="suggest ratios removing this share of FLOPs")
    return p.parse_args(argv)


def _first_batches(loader, n):
    """The first `n` batches, read once and kept: every evaluation reuses them, so no loader (and none of
    its worker processes) is started per trial."""
    import itertools

    batches = iter(loader)
    try:
        return list(itertools.islice(batches, n))
    finally:
        batches.close()  # ends the loader's workers now, not whenever the generator is collected


def _shard(params, text):
    try:
        i, n = (int(v) for v in text.split("/"))
        assert 0 <= i < n
    except (ValueError, AssertionError):
        raise runner.UsageError(f"--shard '{text}' must be I/N with 0 <= I < N, e.g. 0/2") from None
    return params[i::n], f".shard{i}of{n}"


def main(argv=None):
    args = parse_args(argv)
    from ..config import dump_config, load_config
    from ..engine import distributed
    from ..prune import load_sensitivities, merge_sensitive

    from .driver import load_model

    cfg = load_config(args.config, args.opt)
    ranks = distributed.ranks()
    if ranks.parallel and (args.shard or args.merge):
        raise runner.UsageError("under paddle.distributed.launch each rank takes its shard and rank 0 merges: "
                                "drop --shard/--merge (or run them in one process)")
    if args.eval_batches is not None and args.eval_batches < 1:
        raise runner.UsageError(f"--eval_batches {args.eval_batches}: give a positive number of batches")
    out = paths.output_dir(args, paths.save_dir(cfg, args.config, "_sensitivity"), inputs=[cfg.get("weights")])
    _, spec, exe, scope, place, _ = load_model(cfg, "eval", None, parallel=True)
    if ranks.parallel:
        args.shard = f"{ranks.rank}/{ranks.world}"
        sens = _analyse(cfg, args, out, spec, exe, scope, place)
        distributed.barrier()  # every shard file is complete
        if not ranks.is_main:
            return 0
        sens = _merge_shards(args, out, _all_params(args, spec))
    elif args.merge:
        target = args.sensitivities_file or os.path.join(out.path, "sensitivities.pkl")
        merged = merge_sensitive(args.merge)
        out.open()
        dump_config(cfg, os.path.join(out.path, "config.yml"))
        _save_merged(merged, target)
        print(f"merged {len(args.merge)} files into {target}")
        sens = load_sensitivities(target)
    else:
        sens = _analyse(cfg, args, out, spec, exe, scope, place)
    _report(sens, args, out.path, spec.program, scope)
    return 0


def _analyse(cfg, args, out, spec, exe, scope, place):
    from ..engine import distributed, eval_loop
    from ..engine.evaluators import build_evaluator
    from ..engine.readers import build_reader
    from ..config import dump_config
    from ..core.graph import view_of
    from ..core.request import check_names
    from ..prune import load_sensitivities, sensitivity
    from ..prune.sensitive import DEFAULT_RATIOS

    units = _units(args, spec)
    ratios = _grid(args.pruned_ratios)
    suffix, total = "", sum(len(unit) for unit in units)
    if args.shard:
        units, suffix = _shard(units, args.shard)
    params = [n for unit in units for n in unit]
    if args.shard:
        per = len(ratios or DEFAULT_RATIOS)
        print(f"shard {args.shard}: {len(params) * per} of {total * per} evaluations ({len(params)} of {total} weights)")
    target = _shard_file(args, out.path, suffix) if distributed.ranks().parallel else \
        args.sensitivities_file or os.path.join(out.path, f"sensitivities{suffix}.pkl")
    load_sensitivities(target)  # a damaged results file is an error now, before anything is written
    check_names(view_of(spec.program), params)
    dataset, loader = build_reader(cfg, "EvalReader", every_rank=True)
    if args.eval_batches:
        loader = _first_batches(loader, args.eval_batches)
    evaluator = build_evaluator(cfg, dataset)

    def eval_func(program):
        return eval_loop(plans.remap_program(spec, program), exe, scope, loader, evaluator)[evaluator.key]

    if distributed.is_main():  # everything is validated: from here on the run writes
        out.open()
        dump_config(cfg, os.path.join(out.path, "config.yml"))
    distributed.barrier()  # the folder exists before any rank writes its shard
    print(f"analysing {len(params)} weights; results in {target} (rerun the same command to resume)")
    return sensitivity(spec.program, place, params, eval_func, sensitivities_file=target, pruned_ratios=ratios, scope=scope)


def _units(args, spec):
    """The weights to analyse, as units a shard keeps whole: a merged group (convs sharing channels through
    a concat + add) is measured once."""
    from ..prune.report import prunable_params

    return [[n] for n in flags.split_list(args.pruned_params)] or [
        [r["name"]] + r.get("merged", []) for r in prunable_params(spec.program)[0]]


def _all_params(args, spec):
    return [n for unit in _units(args, spec) for n in unit]


def _target(args, out):
    return args.sensitivities_file or os.path.join(out, "sensitivities.pkl")


def _shard_file(args, out, suffix):
    """Under a launch, rank i's file: `<target stem>.shard<i>of<n><ext>` beside the merged one."""
    stem, ext = os.path.splitext(_target(args, out))
    return stem + suffix + (ext or ".pkl")


def _merge_shards(args, out, params):
    """Rank 0, all shards done: one file as a single process writes it (weights in analysis order)."""
    from ..engine import distributed
    from ..prune import load_sensitivities, merge_sensitive, save_sensitivities, sensitivity_baseline

    world = distributed.ranks().world
    files = [_shard_file(args, out.path, f".shard{i}of{world}") for i in range(world)]
    out.add(*(os.path.basename(f) for f in files if os.path.dirname(os.path.abspath(f)) == out.path))  # ours too
    merged = merge_sensitive(files)
    target = _target(args, out.path)
    save_sensitivities(target, {p: merged[p] for p in params if p in merged}, sensitivity_baseline(files[0]))
    print(f"merged {world} shards into {target}")
    return load_sensitivities(target)


def _grid(text):
    """--pruned_ratios as the ratios to try (None: the default grid)."""
    from ..core.request import parse_ratios

    return parse_ratios(flags.split_list(text), "--pruned_ratios", above_zero=True) or None


def _save_merged(sens, path):
    import pickle

    from ..fsutil import atomic_write

    with atomic_write(path, "wb") as f:
        pickle.dump(sens, f)


def _report(sens, args, out, program, scope):
    from ..analysis import plot_sensitivities
    from ..prune import get_ratios_by_loss

    png = os.path.join(out, "sensitivities.png")
    try:
        plot_sensitivities(sens, png)
        print(f"plot: {png}")
    except ImportError as e:
        print(f"no plot ({e})")
    if args.loss is not None:
        ratios = get_ratios_by_loss(sens, args.loss)
        print(f"ratios with loss <= {args.loss:g}: " + ", ".join(f"{p}={r:.3f}" for p, r in ratios.items()))
        _suggest(ratios)
    if args.target_flops is not None:
        from ..prune import ratios_for_flops

        ratios = {p: r for p, r in ratios_for_flops(program, sens, args.target_flops, scope=scope).items() if r > 0}
        print(f"ratios for {args.target_flops:.0%} fewer FLOPs: " + ", ".join(f"{p}={r:.3f}" for p, r in ratios.items()))
        _suggest(ratios)


def _suggest(ratios):
    ratios = {p: r for p, r in ratios.items() if r > 0}
    if ratios:
        print("  tools/prune.py ... --pruned_params " + ",".join(ratios) + " --pruned_ratios "
              + ",".join(f"{r:.3f}" for r in ratios.values()))
