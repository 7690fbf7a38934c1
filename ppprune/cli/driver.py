"""Driving the static-mode engine for a tool: data loaders, the training run, the model's cost."""


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
