"""Sensitivity of conv weights on the eval set: how much the metric drops when each weight loses a share
of its channels. Resumable (results are saved after every evaluation), shardable across processes or
machines, with a plot and suggested ratios.

    python tools/sensitive.py -c CFG -o weights=output/<config>/model_final [--pruned_params a,b] \\
        [--pruned_ratios 0.1,0.2,0.3] [-s sens.pkl] [--shard 0/2] [--loss 0.05] [--target_flops 0.3] [--target_latency 0.3]
    python tools/sensitive.py -c CFG --merge shard0.pkl shard1.pkl -s sens.pkl --target_flops 0.3

Here `--pruned_ratios` is the grid of ratios tried on every weight (default 0.1 ... 0.9); without
`--pruned_params` every prunable conv weight is analysed.

Under `python -m paddle.distributed.launch --nproc_per_node N tools/sensitive.py ...` rank i analyses shard i/N
into its own resumable file and rank 0 merges them when all are done (rerun the same command to resume).

Sensitivities are measured on held-out training images (`TrainReader.holdout` in the config), never on the
split whose score is reported; `--split eval` measures on the EvalReader instead, with a warning. The file
records what it was measured on (weights, model, split, ratios) in `<file>.baseline.json`: a rerun or a
merge with other inputs is refused, nothing written; `--restart` measures the file anew.
"""
import os

from . import flags, latency, paths, plans, runner


def parse_args(argv=None):
    p = flags.parser(__doc__)
    p.add_argument("-p", "--pruned_params", default=None, help="conv weights to analyse (default: all prunable)")
    p.add_argument("--pruned_ratios", default=None, help="ratios to try on each weight (default 0.1 ... 0.9)")
    p.add_argument("-s", "--sensitivities_file", default=None, help="results file (resumed if it exists)")
    p.add_argument("--shard", default=None, metavar="I/N", help="analyse only the I-th of N slices of the weights")
    p.add_argument("--eval_batches", type=int, default=None, help="evaluate on the first N batches only (faster)")
    p.add_argument("--merge", nargs="+", default=None, metavar="FILE", help="merge shard files into -s and report")
    p.add_argument("--loss", type=float, default=None, help="suggest ratios keeping each weight's loss under this")
    flags.add_flops_target_flags(p, "suggest ratios for it")
    latency.add_flags(p, "suggest ratios for it, losing the least accuracy")
    p.add_argument("--split", choices=("holdout", "eval"), default="holdout",
                   help="images to measure on: the TrainReader's held-out ones (default) or the EvalReader's (warned)")
    p.add_argument("--restart", action="store_true",
                   help="measure the results file anew when it was measured on other inputs (replaces it)")
    return p.parse_args(argv)


DEFAULT_FILE = "sensitivities.pkl"


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


def run(argv=None):
    """Measure (or merge) the sensitivities and write them with their report."""
    args = parse_args(argv)
    from ..config import load_config
    from ..engine import distributed

    from .driver import load_model

    cfg = load_config(args.config, args.opt)
    ranks = distributed.ranks()
    if ranks.parallel and (args.shard or args.merge):
        raise runner.UsageError("under paddle.distributed.launch each rank takes its shard and rank 0 merges: "
                                "drop --shard/--merge (or run them in one process)")
    latency.check_target(args)
    if args.eval_batches is not None and args.eval_batches < 1:
        raise runner.UsageError(f"--eval_batches {args.eval_batches}: give a positive number of batches")
    out = paths.output_dir(args, paths.save_dir(cfg, args.config, "_sensitivity"), inputs=[cfg.get("weights")])
    for f in args.merge or ():  # before the model loads: a missing shard is a typo or an unfinished run
        if not os.path.isfile(f):
            raise runner.UsageError(f"--merge: '{f}' does not exist; give every shard's results file (run the "
                                    "missing shard first)")
    _, spec, exe, scope, place, _ = load_model(cfg, "eval", None, parallel=True)
    model = _model_provenance(cfg, spec.program)
    if ranks.parallel:
        args.shard = f"{ranks.rank}/{ranks.world}"
        sens = _analyse(cfg, args, out, spec, exe, scope, place, model)
        distributed.barrier()  # every shard file is complete
        if not ranks.is_main:
            return
        world = ranks.world
        sens = _merge(args, out, cfg, [_target(args, out.path, f".shard{i}of{world}") for i in range(world)], model,
                      _all_params(args, spec))
    elif args.merge:
        sens = _merge(args, out, cfg, args.merge, model)
    else:
        sens = _analyse(cfg, args, out, spec, exe, scope, place, model)
    _report(sens, args, out.path, spec.program, scope)
    if sens and args.target_latency is not None:
        _suggest_for_latency(cfg, args, spec, exe, scope, sens)


def _analyse(cfg, args, out, spec, exe, scope, place, model):
    """Measure this run's (shard of the) weights; returns the sensitivities of those weights."""
    from ..engine import distributed, eval_loop
    from ..engine.evaluators import build_evaluator
    from ..config import dump_config
    from ..core.graph import view_of
    from ..core.request import check_names
    from ..prune import load_sensitivities, sensitivity
    from ..prune.sensitive import DEFAULT_RATIOS, measured_on, provenance_mismatch

    units = _units(args, spec)
    ratios = _grid(args.pruned_ratios)
    suffix, total = "", sum(len(unit) for unit in units)
    if args.shard:
        units, suffix = _shard(units, args.shard)
    params = [n for unit in units for n in unit]
    if args.shard:
        per = len(ratios or DEFAULT_RATIOS)
        print(f"shard {args.shard}: {len(params) * per} of {total * per} evaluations ({len(params)} of {total} weights)")
    target = _target(args, out.path, suffix)
    load_sensitivities(target)  # a damaged results file is an error now, before anything is written
    check_names(view_of(spec.program), params)
    dataset, loader, split = _measure_split(cfg, args)
    provenance = {**model, "split": split}
    why = None if args.restart else provenance_mismatch(target, measured_on(provenance, ratios or DEFAULT_RATIOS))
    if why:
        raise runner.UsageError(f"{why}: give another -s file, or --restart to measure it anew (replaces it)")
    evaluator = build_evaluator(cfg, dataset)

    def eval_func(program):
        return eval_loop(plans.remap_program(spec, program), exe, scope, loader, evaluator)[evaluator.key]

    if distributed.is_main():  # everything is validated: from here on the run writes
        out.open()
        dump_config(cfg, os.path.join(out.path, "config.yml"))
    distributed.barrier()  # the folder exists before any rank writes its shard
    images = f"{split['images']} {split['reader']} images"
    if args.eval_batches:  # the loader is those batches, read once
        images = f"{sum(len(b['image']) for b in loader)} of the {images} (--eval_batches {args.eval_batches})"
    print(f"analysing {len(params)} weights on {images}; results in {target} "
          "(rerun the same command to resume)")
    sens = sensitivity(spec.program, place, params, eval_func, sensitivities_file=target, pruned_ratios=ratios,
                       scope=scope, provenance=provenance, restart=args.restart)
    return {p: sens[p] for p in params if p in sens}  # the file may hold more (an earlier run's params)


def _measure_split(cfg, args):
    """(dataset, loader or its first batches, split identity) of the images sensitivities are measured on."""
    from ..engine.readers import HOLDOUT, build_reader, has_holdout, reader_section, split_identity

    if args.split == "holdout" and not has_holdout(cfg):
        raise runner.UsageError("the config holds no training images out for sensitivity: set TrainReader.holdout "
                                "(e.g. -o TrainReader.holdout=0.25; training then skips them), or pass --split eval "
                                "to measure on the images whose score is reported")
    name = HOLDOUT if args.split == "holdout" else "EvalReader"
    if args.split == "eval":
        print("warning: --split eval measures sensitivities on the EvalReader's images, the ones whose score is "
              "reported: ratios chosen from them flatter that score")
    dataset, loader = build_reader(cfg, name, every_rank=True)
    if args.eval_batches:
        loader = _first_batches(loader, args.eval_batches)
    return dataset, loader, split_identity(name, reader_section(cfg, name), dataset, args.eval_batches)


def _model_provenance(cfg, program):
    """Digests of the weights file and of the model (every parameter's name and shape, the plan's too)."""
    import hashlib
    import json

    from ..engine.checkpoint import resolve_weights

    sha = hashlib.sha1()
    with open(resolve_weights(paths.weights_prefix(cfg)), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    shapes = sorted((p.name, list(p.shape)) for p in program.global_block().all_parameters())
    return {"weights": sha.hexdigest()[:16],
            "model": hashlib.sha1(json.dumps([cfg.get("architecture"), shapes]).encode()).hexdigest()[:16]}


def _units(args, spec):
    """The weights to analyse, as units a shard keeps whole: a merged group (convs sharing channels through
    a concat + add) is measured once."""
    from ..prune.report import prunable_params

    return [[n] for n in flags.split_list(args.pruned_params)] or [
        [r["name"]] + r.get("merged", []) for r in prunable_params(spec.program)[0]]


def _all_params(args, spec):
    return [n for unit in _units(args, spec) for n in unit]


def _target(args, out, suffix=""):
    """The results file: -s (under a launch with the shard's `suffix`), else `sensitivities<suffix>.pkl` in
    the output folder."""
    from ..engine import distributed

    if args.sensitivities_file and not (suffix and distributed.ranks().parallel):
        return args.sensitivities_file
    stem, ext = os.path.splitext(args.sensitivities_file or os.path.join(out, DEFAULT_FILE))
    return stem + suffix + (ext or ".pkl")


def _merge(args, out, cfg, files, model, order=()):
    """Merge shard files into the results file (weights in `order` first, as one process writes them);
    every check (shards of one analysis, of this model, a target measured alike) before anything is written."""
    from ..config import dump_config
    from ..core.errors import PruneError
    from ..prune import merge_sensitive, merged_provenance, save_sensitivities, sensitivity_baseline
    from ..prune.sensitive import provenance_difference, provenance_mismatch

    target = _target(args, out.path)
    provenance = merged_provenance(files)
    why = provenance_difference(provenance, {**provenance, **model})
    if why:
        raise PruneError(f"cannot merge {files[0]}: it was measured on {why} than this config and -o weights=... "
                         "give; merge with the ones the shards were measured with")
    why = None if args.restart else provenance_mismatch(target, provenance)
    if why:
        raise runner.UsageError(f"{why}: give another -s file, or --restart to replace it")
    merged = merge_sensitive(files)
    rank = {p: i for i, p in enumerate(order)}
    merged = dict(sorted(merged.items(), key=lambda kv: rank.get(kv[0], len(rank))))
    out.open()
    out.add(*(os.path.basename(f) for f in files if os.path.dirname(os.path.abspath(f)) == out.path))  # ours too
    dump_config(cfg, os.path.join(out.path, "config.yml"))
    save_sensitivities(target, merged, sensitivity_baseline(files[0]), provenance)
    print(f"merged {len(files)} files into {target}")
    return merged


def _grid(text):
    """--pruned_ratios as the ratios to try (None: the default grid)."""
    from ..core.request import parse_ratios

    return parse_ratios(flags.split_list(text), "--pruned_ratios", above_zero=True) or None


def _report(sens, args, out, program, scope):
    from ..analysis import plot_sensitivities
    from ..prune import get_ratios_by_loss

    # a shard plots beside its own file, never over the folder's plot; no results, no plot
    png = os.path.join(out, os.path.splitext(DEFAULT_FILE)[0] + _suffix(args) + ".png")
    if not sens:
        print("no results to plot or suggest ratios from (an empty shard?)")
        return
    chosen = {}  # the suggested ratios, marked on the plot (drawn even when a suggestion fails)
    try:
        if args.loss is not None:
            chosen = get_ratios_by_loss(sens, args.loss)
            print(f"ratios with loss <= {args.loss:g}: " + ", ".join(f"{p}={r:.3f}" for p, r in chosen.items()))
            _suggest(chosen)
        if args.target_flops is not None:
            from ..prune import ratios_for_flops

            found = ratios_for_flops(program, sens, args.target_flops, scope=scope, tolerance=args.flops_tolerance)
            ratios = {p: r for p, r in found.items() if r > 0}
            print(f"ratios for {args.target_flops:.0%} fewer FLOPs (planned: {found.reached:.1%}): "
                  + ", ".join(f"{p}={r:.3f}" for p, r in ratios.items()))
            for note in found.notes:
                print(f"note: {note}")
            _suggest(ratios)
            chosen = ratios
    finally:
        try:
            plot_sensitivities(sens, png, chosen={p: r for p, r in chosen.items() if r > 0})  # unpruned: unmarked
            print(f"plot: {png}" + (" (the suggested ratios marked)" if chosen else ""))
        except ImportError as e:
            print(f"no plot ({e})")


def _suggest_for_latency(cfg, args, spec, exe, scope, sens):
    timer = latency.LatencyTarget(cfg, args, spec, exe, scope)
    try:
        params, ratios = timer.ratios(spec.program, scope, args, None, sens)
    finally:
        timer.close()
    _suggest(dict(zip(params, ratios)))


def _suffix(args):
    from ..engine import distributed

    return "" if distributed.ranks().parallel or not args.shard else _shard([], args.shard)[1]


def _suggest(ratios):
    ratios = {p: r for p, r in ratios.items() if r > 0}
    if ratios:
        print("  tools/prune.py ... --pruned_params " + ",".join(ratios) + " --pruned_ratios "
              + ",".join(f"{r:.3f}" for r in ratios.values()))


main = runner.exit_zero(run)
