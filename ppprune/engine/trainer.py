"""Static-graph train and eval loops, plus `fit`: snapshots, `--eval` with `best_model`, `model_final`.

The loops take a `ProgramSpec` (program + feed names + fetch targets), an Executor and a Scope, never a
config, so a pruned program runs through them unchanged.
"""
import math
import os
import time

import numpy as np
import paddle
from tqdm import tqdm

from . import distributed
from .checkpoint import save_checkpoint


def _feed(spec, batch):
    missing = [n for n in spec.feeds if n not in batch]
    if missing:
        raise KeyError(f"the batch lacks {missing} needed by the program (batch has {sorted(batch)}); "
                       "check the reader's transforms")
    return {n: batch[n] for n in spec.feeds}


def _run(exe, scope, spec, batch, fetch_list, **kw):
    # scope_guard too: the Executor writes the scheduled learning rate into the *global* scope
    with paddle.static.scope_guard(scope):
        return exe.run(spec.program, feed=_feed(spec, batch), fetch_list=fetch_list, scope=scope, **kw)


def _batches(loader, start_iter):
    """Endless batches, positioned at `start_iter` so a resumed run sees the data a fresh one would."""
    per_epoch = len(loader)
    if hasattr(loader, "epoch"):
        loader.epoch = start_iter // per_epoch
    skip = start_iter % per_epoch
    while True:
        for batch in loader:
            if skip:
                skip -= 1
                continue
            yield batch


def train_loop(spec, exe, scope, loader, max_iters, start_iter=0, on_iter=None):
    """Run `spec.program` from `start_iter` to `max_iters`; `on_iter(next_iter, loss)` after each step.

    Returns the last loss. The learning-rate scheduler (if any) is positioned at `start_iter` first.
    """
    sched = spec.lr_scheduler
    if sched is not None:
        sched.step(start_iter)
    loss, speed = float("nan"), None
    world = distributed.ranks().world
    seen, busy = 0, 0.0  # images and seconds of the steps after the first (which builds the program)
    bar = tqdm(total=max_iters, initial=start_iter, desc="train", dynamic_ncols=True, disable=not distributed.is_main())
    batches = _batches(loader, start_iter)
    distributed.barrier()  # ranks start stepping together (a gloo all-reduce waits only 30 s)
    for it in range(start_iter, max_iters):
        tic = time.perf_counter()
        batch = next(batches)
        lr = sched() if sched is not None else float("nan")
        loss = float(np.asarray(_run(exe, scope, spec, batch, [spec.fetches["loss"]])[0]))
        if not math.isfinite(loss):
            raise FloatingPointError(f"loss is {loss} at iteration {it} (lr {lr:.3g}); lower LearningRate.base_lr "
                                     "or lengthen the warmup")
        if sched is not None:
            sched.step()
        step = time.perf_counter() - tic
        rate = len(batch["image"]) * world / step  # the images of all ranks
        if it > start_iter:
            seen, busy = seen + len(batch["image"]) * world, busy + step
        speed = rate if speed is None else 0.9 * speed + 0.1 * rate  # smoothed: single steps are noisy
        bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", img_s=f"{speed:.1f}", refresh=False)
        bar.update(1)
        if on_iter is not None:
            on_iter(it + 1, loss)
    bar.close()
    if busy and distributed.is_main():
        print(f"throughput: {seen / busy:.1f} images/s over iterations {start_iter + 2}-{max_iters} "
              f"({world} rank{'s' * (world > 1)}, data loading included)")
    return loss


def eval_loop(spec, exe, scope, loader, evaluator):
    """Run `spec.program` over `loader`, feeding each (batch, outputs) to `evaluator`; returns its result."""
    evaluator.reset()
    names = list(spec.fetches)
    bar = tqdm(total=len(loader), desc="eval", dynamic_ncols=True)
    seen, tic = 0, time.perf_counter()
    for batch in loader:
        # NMS output carries LoD, which return_numpy refuses; convert ourselves
        outs = _run(exe, scope, spec, batch, list(spec.fetches.values()), return_numpy=False)
        evaluator.update(batch, {n: np.array(o) for n, o in zip(names, outs)})
        seen += len(batch["image"])
        bar.set_postfix(img_s=f"{seen / (time.perf_counter() - tic):.1f}", refresh=False)
        bar.update(1)
    bar.close()
    return evaluator.accumulate()


def check_train_keys(cfg, min_iters=1):
    """The numbers the trainer reads, checked (with the config's types) before anything runs or is written."""
    from ..config.checks import need
    from .programs import check_config

    check_config(cfg)
    need("max_iters", cfg.get("max_iters"), int, low=min_iters)
    need("snapshot_iter", cfg.get("snapshot_iter"), int, low=1)
    reader = cfg.get("TrainReader") or {}
    need("TrainReader.batch_size", reader.get("batch_size", 1), int, low=1)
    need("TrainReader.num_workers", reader.get("num_workers", 0), int, low=0)
    need("LearningRate.base_lr", (cfg.get("LearningRate") or {}).get("base_lr"), float, low=0, optional=True)


def fit(programs, exe, scope, train_loader, save_dir, max_iters, snapshot_iter, start_iter=0,
        eval_loader=None, evaluator=None, meta=None):
    """Train `programs.train`; every `snapshot_iter` save `<save_dir>/<iter>` and, given an evaluator,
    evaluate `programs.eval` and keep the best as `best_model`. Ends with `model_final`. Returns the
    best result (or None). `meta` goes into every checkpoint (e.g. the digest of the plan pruned by).
    Data-parallel, only rank 0 saves and evaluates (the ranks hold the same parameters) while the others
    wait for it at a barrier."""
    best = {"value": -math.inf, "result": None}

    def save(name, it):
        save_checkpoint(os.path.join(save_dir, name), scope, programs.param_names, programs.opt_names,
                        {**(meta or {}), "iter": it})

    def on_iter(it, loss):
        if it % snapshot_iter and it != max_iters:
            return
        if distributed.is_main():
            snapshot(it)
        distributed.barrier()

    def snapshot(it):
        save(str(it), it)
        if evaluator is None:
            return
        result = eval_loop(programs.eval, exe, scope, eval_loader, evaluator)
        value = result[evaluator.key]
        tqdm.write(f"iter {it}: {evaluator.key} = {value:.4f} (best {max(best['value'], value):.4f})")
        if value > best["value"]:
            best.update(value=value, result=result)
            save("best_model", it)

    train_loop(programs.train, exe, scope, train_loader, max_iters, start_iter, on_iter)
    if distributed.is_main():
        save("model_final", max_iters)
    return best["result"]
