"""How fast `Pruner.prune` is on real training programs, and how its cost grows with program size.

Builds paddle.vision MobileNetV1, ResNet50 and ResNet101 *training* programs (Momentum, 224x224),
initialises them, and prunes every conv weight at ratio 0.3, timing the whole call (clone, walk, select,
program edits and scope tensors, optimizer state included). PaddleSlim is not timed here: its column divides
times recorded once (PADDLESLIM_RECORDED), and the header and a footnote say so. ResNet50 and ResNet101 are
one family at two depths: their graph time per op shows whether the cost grows linearly with the number of ops.

    python bench/prune_speed.py [--ir pir|legacy] [--repeat 3]
"""
import argparse
import contextlib
import importlib.util
import os
import time

import numpy as np
import paddle

# PaddleSlim 2.6 is not a dependency, so its times are a record, printed with where they came from. The date
# is that of the first bench commit using them (issue 2, which gives them, was filed before it).
PADDLESLIM_RECORDED = {
    "date": "2026-11-23",
    "seconds": {"resnet50": 9.0, "mobilenet_v1": 1.9},
    "how": ("PaddleSlim 2.6 pruning the same paddle.vision legacy-IR training programs (536 / 260 ops), every conv "
            "at 0.3, on this machine type; ResNet50 8.8-9.1 s. Source: issue #2; the command was not recorded"),
}


def build(name):
    from paddle.vision import models

    main, startup = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(main, startup), paddle.utils.unique_name.guard():
        x = paddle.static.data("image", [None, 3, 224, 224], "float32")
        label = paddle.static.data("label", [None, 1], "int64")
        model = getattr(models, name)()
        loss = paddle.nn.functional.cross_entropy(model(x), label).mean()
        paddle.optimizer.Momentum(0.01, momentum=0.9).minimize(loss)
    return main, startup


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ir", choices=["pir", "legacy"], default="pir")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    paddle.enable_static()
    from ppprune.core.graph import view_of
    from ppprune.core.groups import CONV_TYPES
    from ppprune.prune import Pruner

    load = os.getloadavg()
    guard = paddle.pir_utils.OldIrGuard() if args.ir == "legacy" else contextlib.nullcontext()
    rows = []
    with guard:
        for name in ("mobilenet_v1", "resnet50", "resnet101"):
            main_prog, startup = build(name)
            view = view_of(main_prog)
            convs = sorted({view.persistable_name(op.ins("filter")[0]) for op in view.ops if op.type in CONV_TYPES})
            n_ops = len(view.ops)
            exe = paddle.static.Executor(paddle.CPUPlace())
            times, graph_times = [], []
            for _ in range(args.repeat):
                scope = paddle.static.Scope()
                with paddle.static.scope_guard(scope):
                    exe.run(startup)
                start = time.perf_counter()
                Pruner().prune(main_prog, scope, convs, [0.3] * len(convs), only_graph=True)
                graph_times.append(time.perf_counter() - start)
                start = time.perf_counter()
                pruner = Pruner()
                pruner.prune(main_prog, scope, convs, [0.3] * len(convs))
                times.append(time.perf_counter() - start)
            removed = sum(len(e.pruned) for e in pruner.plan.entries)
            mbytes = sum(np.array(scope.find_var(n).get_tensor()).nbytes for n in pruner.plan.tensors) / 2**20
            rows.append((name, n_ops, len(convs), removed, min(times), np.median(times), min(graph_times), mbytes))
    print(f"ir={args.ir}  load average before: {load[0]:.2f}  after: {os.getloadavg()[0]:.2f} (another job on the 2 cores slows every row)")
    peer_header = f"vs PaddleSlim (recorded {PADDLESLIM_RECORDED['date']})*"
    print(f"{'model':<14}{'ops':>6}{'convs':>7}{'removed ch':>12}{'best s':>9}{'median s':>10}{peer_header:>38}"
          f"{'graph ms/op':>13}{'tensor MB':>11}{'tensor ms/MB':>14}")
    for name, n_ops, n_convs, removed, best, median, graph, mbytes in rows:
        peer = PADDLESLIM_RECORDED["seconds"].get(name)
        speedup = f"{peer / best:.1f}x" if peer else "-"
        print(f"{name:<14}{n_ops:>6}{n_convs:>7}{removed:>12}{best:>9.3f}{median:>10.3f}{speedup:>38}"
              f"{1000 * graph / n_ops:>13.3f}{mbytes:>11.1f}{1000 * max(best - graph, 0) / mbytes:>14.3f}")
    # Graph work (walks, planning, program edits) should cost the same per op at both sizes; tensor work
    # (scope arrays, optimizer state) scales with the bytes pruned, not with the op count.
    _, a, b = rows
    print(f"graph work per op: {1000 * a[6] / a[1]:.3f} ms at {a[1]} ops, {1000 * b[6] / b[1]:.3f} ms at {b[1]} ops "
          f"(ratio {(b[6] / b[1]) / (a[6] / a[1]):.2f}; 1.00 = linear in ops)")
    seconds = ", ".join(f"{name} {s} s" for name, s in PADDLESLIM_RECORDED["seconds"].items())
    print(f"* recorded PaddleSlim seconds over this run's best seconds (PaddleSlim not timed in this run): {seconds}; "
          f"{PADDLESLIM_RECORDED['how']}.")
    if importlib.util.find_spec("paddleslim"):
        print("  paddleslim is importable here, so it could be timed in this run; this bench does not do that.")


if __name__ == "__main__":
    main()
