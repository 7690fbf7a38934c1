"""Prune a model from a config, fine-tune it, and save checkpoints with the pruning plan beside them.

    python tools/prune.py -c configs/yolov3/yolov3_mobilenet_v1_demo.yml -o weights=output/.../model_final \\
        --pruned_params yolo_block.0.0.0.conv.weights,yolo_block.0.0.1.conv.weights --pruned_ratios 0.2,0.3 --eval
    python tools/prune.py -c CFG --print_params          # which conv weights can be pruned, and with what
    python tools/prune.py -c CFG -o weights=W --target_flops 0.5 --sensitivities_file sens.pkl
    python tools/prune.py -c CFG -o weights=W --target_latency 0.3 [-s sens.pkl] [--threads 2]

Outputs go to `<save_dir>/<config name>_pruned/`: checkpoints, `plan.json` (params, ratios, criterion,
pruned indices, resulting shapes), `prune_report.json` (what was asked and got: FLOPs, parameters and, with
--target_latency, the predicted and measured latency) and the resolved `config.yml`.
"""
import os

from . import common, driver, flags, latency, paths, plans, prune_report, runner


def parse_args(argv=None):
    p = flags.parser(__doc__)
    flags.add_prune_flags(p)
    p.add_argument("-P", "--print_params", action="store_true", help="list prunable conv weights and exit")
    flags.add_flops_target_flags(p, "ratios chosen from --sensitivities_file, or without one a single ratio for "
                                    "every conv of --pruned_params (default: every prunable conv)")
    latency.add_flags(p, "ratios chosen on a latency model measured on this machine, from --sensitivities_file "
                         "(least accuracy lost) or without one the fewest channels")
    p.add_argument("-s", "--sensitivities_file", default=None, help="sensitivities from tools/sensitive.py")
    flags.add_train_flags(p)
    return p.parse_args(argv)


def run(argv=None):
    """Prune and fine-tune; returns the cost before and after and the output folder (None with --print_params)."""
    args = parse_args(argv)
    from ..config import load_config
    from ..engine import distributed
    from ..engine.checkpoint import load_start_weights
    from ..engine.trainer import check_train_keys

    cfg = load_config(args.config, args.opt)
    if args.print_params:
        _print_params(cfg)
        return
    params, ratios, resumed_plan = _request(args)
    check_train_keys(cfg, min_iters=0)  # max_iters=0: prune without fine-tuning
    base = cfg.get("weights") or cfg.get("pretrain_weights")
    out = paths.output_dir(args, paths.save_dir(cfg, args.config, "_pruned"),
                           inputs=[None if resumed_plan else base, args.sensitivities_file],
                           own_inputs=[args.resume_checkpoint])
    session = driver.setup(cfg, "train", parallel=True)
    programs, place, _, scope = session
    if not resumed_plan:
        load_start_weights(cfg, scope, place, programs.param_names, "pruning (channels ranked on random weights)",
                           programs.head_names)
    distributed.broadcast_scope(scope, programs.param_names, place)  # the same weights select the same channels
    before = driver.cost(programs.eval.program, scope)
    if args.target_flops is not None and resumed_plan is None:
        params, ratios = _ratios_for_target(programs.eval.program, scope, args, params)
    if args.target_latency is not None and resumed_plan is None:
        plan, measured = _prune_to_latency(cfg, args, session, params)
    else:
        plan, measured = _prune_programs(args, session, params, ratios, resumed_plan), None
    plan.meta.update(config=os.path.abspath(args.config), base_weights=base, overrides=args.opt)
    start_iter = _resume(args, session, plan)
    if distributed.ranks().parallel:
        _check_ranks_agree(plan, scope, programs.param_names)
    data = driver.loaders(cfg, args.eval) if cfg["max_iters"] > start_iter else None
    after = driver.cost(programs.eval.program, scope)
    for s in plan.skipped:
        print(f"skipped {s['param']}: {s['reason']}")
    report = prune_report.build(args, before, after, plan, measured)
    prune_report.print_report(report)
    _save_and_fine_tune(cfg, session, out, plan, start_iter, data, None if resumed_plan else report)
    return {"before": before, "after": after, "out": out.path, "report": report}


def _print_params(cfg):
    import paddle

    from ..engine import build_programs
    from ..prune.report import format_report, prunable_params

    paddle.enable_static()
    print(format_report(*prunable_params(build_programs(cfg, "eval").eval.program)))


def _request(args):
    """(params, ratios, resumed plan) the flags ask for; ratios are None while a target is to choose them."""
    from ..engine import distributed

    target = "--target_flops" if args.target_flops is not None else None
    if args.target_latency is not None:
        if target:
            raise runner.UsageError("give one target: --target_flops or --target_latency, not both")
        target = "--target_latency"
        latency.check_target(args)
        if distributed.ranks().parallel:  # each rank would time its own and might choose other ratios
            raise runner.UsageError("--target_latency times the model in one process: choose the ratios in a single "
                                    "run (tools/sensitive.py --target_latency suggests them), then launch with "
                                    "--pruned_params/--pruned_ratios")
    if target and args.pruned_ratios:
        raise runner.UsageError(f"{target} chooses the ratios: drop --pruned_ratios (or drop {target})")
    common.check_round_to(args)
    params, ratios = (flags.split_list(args.pruned_params) or None, None) if target else common.pruned_request(args)
    resumed_plan = plans.checked_plan(args.resume_checkpoint) if args.resume_checkpoint else None
    if params is None and resumed_plan is None and not target:
        raise runner.UsageError("nothing to prune: give --pruned_params and --pruned_ratios, or --target_flops or "
                                "--target_latency (list candidates with --print_params)")
    return params, ratios, resumed_plan


def _prune_programs(args, session, params, ratios, resumed_plan):
    """Prune the train program (weights too, unless resuming: the checkpoint holds them) and reshape the eval
    program alike; returns the plan."""
    from ..prune import Pruner
    from ..prune.ratios import round_ratios

    programs, place, _, scope = session
    pruner = Pruner(args.prune_criterion, args.idx_selector, args.group_reduction)
    if resumed_plan is not None:
        plans.check_against_plan(resumed_plan, params, ratios)
        train, _, _ = pruner.apply_plan(programs.train.program, scope, resumed_plan, place=place, only_graph=True)
    else:
        ratios = round_ratios(programs.train.program, params, ratios, args.round_to)
        _print_notes(ratios)
        train, _, _ = pruner.prune(programs.train.program, scope, params, ratios, place=place)
    programs.train = plans.remap(programs.train, pruner, train)
    programs.eval = plans.apply_saved_plan(programs.eval, scope, pruner.plan, place)
    return pruner.plan


def _prune_to_latency(cfg, args, session, params):
    """(plan, the report's latency section): ratios for --target_latency, the pruning, and the pruned network
    timed against the original."""
    programs, _, exe, scope = session
    timer = latency.LatencyTarget(cfg, args, programs.eval, exe, scope)
    try:
        params, ratios = timer.ratios(programs.eval.program, scope, args, params, _sensitivities(args))
        plan = _prune_programs(args, session, params, ratios, None)
        return plan, timer.check(programs.eval, exe, scope)  # programs.eval is the pruned one now
    finally:
        timer.close()


def _resume(args, session, plan):
    """The iteration to start from: the resumed checkpoint's (loaded into the pruned shapes), else 0."""
    from ..engine import load_checkpoint

    if not args.resume_checkpoint:
        return 0
    programs, place, _, scope = session
    plans.resize_scope(scope, plan, place)  # the checkpoint holds the pruned shapes
    return load_checkpoint(args.resume_checkpoint, scope, place, programs.param_names, programs.opt_names)["iter"]


def _save_and_fine_tune(cfg, session, out, plan, start_iter, data, report):
    """Write the plan, the report (a resumed run keeps the first run's) and config (rank 0), then fine-tune
    with `data`, or without data save the pruned weights."""
    from ..config import dump_config
    from ..engine import distributed
    from ..engine.checkpoint import save_checkpoint

    programs, _, exe, scope = session
    meta = {"plan_sha1": plan.digest()}
    if distributed.is_main():  # everything is validated: from here on rank 0 writes
        out.open()
        plan.save(os.path.join(out.path, plans.PLAN_FILE))
        if report is not None:
            prune_report.save(os.path.join(out.path, prune_report.FILE), report)
        dump_config(cfg, os.path.join(out.path, "config.yml"))
        _remove_stale_checkpoints(out, meta["plan_sha1"])
    if data is not None:
        driver.train(cfg, programs, exe, scope, out.path, start_iter, data, "fine-tuning (plan.json beside)", meta)
        return
    if distributed.is_main():
        save_checkpoint(os.path.join(out.path, "model_final"), scope, programs.param_names, programs.opt_names,
                        {**meta, "iter": start_iter})
    print(f"no fine-tuning (max_iters={cfg['max_iters']}); pruned weights in {out.path}/model_final")


def _remove_stale_checkpoints(out, digest):
    """Our checkpoints from an earlier run with another plan: they no longer load beside the new plan.json."""
    from ..engine.checkpoint import read_meta

    stale = []
    for name in sorted(out.files):
        if name.endswith(".pdparams"):
            prefix = os.path.join(out.path, name[: -len(".pdparams")])
            try:
                if read_meta(prefix).get("plan_sha1") != digest:
                    stale.append(name[: -len(".pdparams")])
            except ValueError:  # an unreadable .pdopt: ours, torn by a kill, never loadable
                stale.append(name[: -len(".pdparams")])
    if stale:
        out.remove([n + ext for n in stale for ext in (".pdparams", ".pdopt")])
        print(f"removed {len(stale)} checkpoint(s) of an earlier run with another plan: {', '.join(stale)}")


def _check_ranks_agree(plan, scope, names):
    """Every rank pruned alike: the same plan and the same tensor shapes (compared by digest)."""
    from ..engine import distributed

    shapes = {n: list(scope.find_var(n).get_tensor().shape()) for n in names}
    digest = distributed.check_same({"plan": plan.to_dict(), "shapes": shapes}, "the pruning plan",
                                    "every rank must load the same weights and get the same --pruned_params/"
                                    "--pruned_ratios (same command, same files)")
    print(f"pruning plan and shapes digest {digest}: the same on all {distributed.ranks().world} ranks")


def _ratios_for_target(program, scope, args, params):
    """Per-weight ratios hitting --target_flops, from the sensitivities file (params limit the candidates),
    or without one the same ratio for every listed (default: every prunable) conv."""
    from ..core.criteria import get_criterion
    from ..prune import ratios_for_flops

    if not args.sensitivities_file:
        return _uniform_for_target(program, scope, args, params)
    sens = _sensitivities(args)
    if params:
        sens = {p: v for p, v in sens.items() if p in params}
    ratios = ratios_for_flops(program, sens, args.target_flops, round_to=args.round_to, scope=scope,
                              tolerance=args.flops_tolerance,
                              criterion=get_criterion(args.prune_criterion, args.group_reduction),
                              idx_selector=args.idx_selector)
    chosen = [p for p in ratios if ratios[p] > 0]
    print(f"ratios for {args.target_flops:.0%} fewer FLOPs (planned: {ratios.reached:.1%}): "
          + ", ".join(f"{p}={ratios[p]:.3f}" for p in chosen))
    _print_notes(ratios)
    return chosen, [ratios[p] for p in chosen]


def _sensitivities(args):
    """The --sensitivities_file's sensitivities (None without one)."""
    from ..prune import load_sensitivities

    if not args.sensitivities_file:
        return None
    sens = load_sensitivities(args.sensitivities_file)
    if not sens:
        raise runner.UsageError(f"no sensitivities in '{args.sensitivities_file}': run tools/sensitive.py first")
    return sens


def _uniform_for_target(program, scope, args, params):
    from ..core.criteria import get_criterion
    from ..prune.ratios import uniform_ratios
    from ..prune.report import prunable_params

    params = params or [row["name"] for row in prunable_params(program)[0]]
    ratios = uniform_ratios(program, params, args.target_flops, scope=scope,
                            criterion=get_criterion(args.prune_criterion, args.group_reduction),
                            idx_selector=args.idx_selector, round_to=args.round_to, tolerance=args.flops_tolerance)
    print(f"uniform ratio for {args.target_flops:.0%} fewer FLOPs over {len(params)} convs: "
          f"{max(ratios.values()):.3f}, planned {ratios.reached:.1%} removed"
          + (f" (kept channels multiples of {args.round_to})" if args.round_to > 1 else ""))
    _print_notes(ratios)
    return list(ratios), list(ratios.values())


def _print_notes(result):
    for note in result.notes:
        print(f"note: {note}")


main = runner.exit_zero(run)
