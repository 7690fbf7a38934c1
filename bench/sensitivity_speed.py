"""Speed of a full sensitivity scan: `ppprune.prune.sensitivity` against PaddleSlim's straightforward loop
(clone and lazily prune the program per trial, evaluate the clone, restore the scope), in the same run.

Model: paddle.vision's MobileNetV1 (scale 0.25, 27 convs) trained briefly on scikit-learn's digits
upsampled to 16x16; metric: top-1 accuracy on the 360 held-out digits. Both scans must return the same
dict. Run: `python bench/sensitivity_speed.py [--steps 300] [--eval-batch 360] [--val-size 360]`.

Each trial of the loop pays a clone, a prune and a first run of a new program on top of the evaluation;
`sensitivity` pays only the evaluation (about 1.2x here, less as the evaluation grows). With `workers=2`
(the default here: one per core of this machine) the trials also run in two forked processes.
"""
import argparse
import os
import sys
import time

import numpy as np
import paddle
import paddle.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repo root: tests.helpers
paddle.enable_static()

from ppprune.core.graph import clone  # noqa: E402
from ppprune.prune import sensitivity  # noqa: E402
from tests.prune.test_sensitive import _digits, straightforward  # noqa: E402  (the tests' reference loop)
from tests.helpers import oracle  # noqa: E402


def build_and_train(steps, seed=0):
    from paddle.vision import models

    (xt, yt), val = _digits()
    xt = np.repeat(xt, 3, axis=1)
    paddle.seed(seed)
    main, startup = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(main, startup):
        image = paddle.static.data("image", [None, 3, 16, 16], "float32")
        logits = models.mobilenet_v1(scale=0.25, num_classes=10)(image)
        program, lookup = clone(main)  # the eval program: forward only, taken before the loss is added
        label = paddle.static.data("label", [None], "int64")
        loss = F.cross_entropy(logits, label)
        paddle.optimizer.Adam(0.005).minimize(loss)
    scope, exe = paddle.static.Scope(), paddle.static.Executor(paddle.CPUPlace())
    rng = np.random.RandomState(seed)
    with paddle.static.scope_guard(scope):
        exe.run(startup)
        for _ in range(steps):
            i = rng.randint(0, len(xt), 64)
            exe.run(main, feed={"image": xt[i], "label": yt[i]}, fetch_list=[loss])
    return program, lookup(logits), scope, exe, val


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="training steps before the scan")
    parser.add_argument("--eval-batch", type=int, default=360, help="validation batch size (360 = one run)")
    parser.add_argument("--val-size", type=int, default=360, help="held-out digits evaluated per trial (at most 360)")
    parser.add_argument("--workers", type=int, default=2, help="forked worker processes for ppprune's scan")
    args = parser.parse_args()

    program, logits, scope, exe, (xv, yv) = build_and_train(args.steps)
    xv, yv = np.repeat(xv[:args.val_size], 3, axis=1), yv[:args.val_size]
    evaluations = {"n": 0}

    def accuracy(prog, fetch=logits):
        evaluations["n"] += 1
        hits = 0
        with paddle.static.scope_guard(scope):
            for i in range(0, len(xv), args.eval_batch):
                (out,) = exe.run(prog, feed={"image": xv[i:i + args.eval_batch]}, fetch_list=[fetch])
                hits += int((out.argmax(1) == yv[i:i + args.eval_batch]).sum())
        return hits / len(xv)

    params = oracle.conv_weights(program)
    base = accuracy(program)
    t0 = time.perf_counter()
    for _ in range(5):
        accuracy(program)
    one_eval = (time.perf_counter() - t0) / 5
    print(f"MobileNetV1 x0.25 on digits 16x16: {len(params)} convs, accuracy {base:.3f} on {len(xv)} held-out digits, "
          f"one evaluation {one_eval * 1000:.0f} ms")

    evaluations["n"] = 0
    t0 = time.perf_counter()
    serial = sensitivity(program, paddle.CPUPlace(), params, accuracy, scope=scope)
    t_serial, n_serial = time.perf_counter() - t0, evaluations["n"]

    t0 = time.perf_counter()
    fast = sensitivity(program, paddle.CPUPlace(), params, accuracy, scope=scope, workers=args.workers)
    t_fast = time.perf_counter() - t0

    evaluations["n"] = 0
    t0 = time.perf_counter()
    slow = straightforward(program, scope, params, sorted(fast[params[0]]), accuracy, logits)
    t_slow, n_slow = time.perf_counter() - t0, evaluations["n"]

    assert fast == serial == slow, "the scans disagree"
    print(f"straightforward loop:             {t_slow:7.1f} s  ({n_slow} evaluations, {t_slow / n_slow * 1000:.0f} ms each)")
    print(f"ppprune.sensitivity:              {t_serial:7.1f} s  ({n_serial} evaluations)  speed-up {t_slow / t_serial:.2f}x")
    print(f"ppprune.sensitivity, {args.workers} workers:   {t_fast:7.1f} s  speed-up {t_slow / t_fast:.2f}x")
    print(f"identical dicts ({sum(len(v) for v in fast.values())} losses)")


if __name__ == "__main__":
    main()
