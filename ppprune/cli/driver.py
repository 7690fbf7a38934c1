"""Driving the static-mode engine for a tool: its setup, a checkpoint loaded by its plan, data loaders, the
training run, the model's cost."""
from typing import Any, NamedTuple

from . import common, paths, plans


class Setup(NamedTuple):
    """What every static tool starts from: `mode` programs, and an executor and scope on `place` holding
    the startup values."""
    programs: Any
    place: Any
    exe: Any
    scope: Any


def setup(cfg, mode, parallel=False):
    """Static mode, the place (with `parallel`, also joining a launch's process group: see
    `engine.distributed.setup`), the `mode` programs of `cfg`, an executor and a scope after startup."""
    import paddle

    from ..engine import build_programs, distributed, get_place

    paddle.enable_static()
    use_gpu = cfg.get("use_gpu", False)
    place = distributed.setup(use_gpu) if parallel else get_place(use_gpu)
    programs = build_programs(cfg, mode)
    exe, scope = paddle.static.Executor(place), paddle.static.Scope()
    exe.run(programs.startup, scope=scope)
    return Setup(programs, place, exe, scope)


class LoadedModel(NamedTuple):
    """A checkpoint ready to run: `spec` is the (reshaped) `mode` program, `plan` the plan it was pruned by."""
    programs: Any
    spec: Any
    exe: Any
    scope: Any
    place: Any
    plan: Any


def load_model(cfg, mode, args, parallel=False):
    """Set up `mode` programs (see `setup`), reshape them by the checkpoint's plan (or by flags), and
    load the weights."""
    from ..engine import load_weights

    prefix = paths.weights_prefix(cfg)
    params, ratios = common.pruned_request(args) if args is not None else (None, None)
    programs, place, exe, scope = setup(cfg, mode, parallel)
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
