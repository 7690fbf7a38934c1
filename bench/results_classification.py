"""Seed 003's results table on real data: paddle.vision MobileNetV1 on Fashion-MNIST (Debian's
dataset-fashion-mnist), pruned by each recipe to a FLOPs target, fine-tuned with one budget, and measured
with Paddle Inference at 1x3x224x224.

    python bench/results_classification.py                       # the full table (about an hour on 2 cores)
    python bench/results_classification.py --train-size 300 --test-size 200 --epochs 1 --finetune-epochs 1 \
        --work /tmp/tiny --report /tmp/tiny/table.md              # a smoke run

Images are 28x28 gray, zero-padded to 32x32 and repeated to 3 channels; the network is fully
convolutional up to a global pool, so the same weights run at 224x224 for FLOPs and latency. Every
finished step (baseline, sensitivities, each row) is saved under --work and skipped when the command is
run again, so an interrupted run resumes. Rows at -50% FLOPs are fine-tuned with several seeds (data
order and augmentation) and report the mean and the range (min-max) over seeds. Latency: all exported models timed in interleaved
rounds (min / median / max of per-round medians), with 1 and 2 threads, the load average recorded.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

import paddle  # noqa: E402

from ppprune import FPGMFilterPruner, L1NormFilterPruner, L2NormFilterPruner, deploy  # noqa: E402
from ppprune.analysis import plot_recipes  # noqa: E402
from ppprune.data.fashion_mnist import MEAN, STD, fashion_mnist_available, load_fashion_mnist  # noqa: E402
from ppprune.dygraph import dygraph_flops  # noqa: E402
from ppprune.dygraph.pruners import FilterPruner  # noqa: E402
from ppprune.fsutil import atomic_write  # noqa: E402

SIZE = 32  # training and evaluation input
DEPLOY = [1, 3, 224, 224]  # FLOPs and latency, as in seed 003
THREADS = (1, 2)  # CPU threads every model is timed with


class BNScalePruner(FilterPruner):
    """Network slimming: filters ranked by their batch norm's scale (the static `bn_scale` criterion)."""

    criterion_name = "bn_scale"


PRUNERS = {"l1": L1NormFilterPruner, "l2": L2NormFilterPruner, "fpgm": FPGMFilterPruner, "bn_scale": BNScalePruner}


def recipes(seeds):
    """(row name, pruner key, idx_selector, how, FLOPs target, align, seed, fine-tune?)."""
    # the control: the fine-tuning every row gets, nothing pruned (the baseline is not trained to the end)
    rows = [dict(name="Baseline + the same fine-tuning", pruner="l1", selector="default_idx_selector", how="none",
                 target=0.0, align=1, seed=seeds[0], finetune=True)]
    for name, key, how, target, selector in (
            ("uniform + L1", "l1", "uniform", 0.5, "default_idx_selector"),
            ("sensitive + L1", "l1", "sensitive", 0.3, "default_idx_selector"),
            ("sensitive + L1", "l1", "sensitive", 0.5, "default_idx_selector"),
            ("uniform + FPGM", "fpgm", "uniform", 0.5, "default_idx_selector"),
            ("sensitive + FPGM", "fpgm", "sensitive", 0.5, "default_idx_selector"),
            ("uniform + L2", "l2", "uniform", 0.5, "default_idx_selector"),
            ("uniform + bn_scale, optimal_threshold", "bn_scale", "uniform", 0.5, "optimal_threshold")):
        for seed in (seeds if target == 0.5 else seeds[:1]):
            rows.append(dict(name=name, pruner=key, selector=selector, how=how, target=target, align=1, seed=seed,
                             finetune=True))
    for seed in seeds:  # group-wide scores (`group_reduction`); the sensitivities above score the master alone
        rows.append(dict(name="uniform + L1, group sum", pruner="l1", selector="default_idx_selector", how="uniform",
                         target=0.5, align=1, seed=seed, finetune=True, reduction="sum"))
    for how in ("uniform", "sensitive"):  # latency against channel alignment (item: round_to 1, 8, 16)
        for align in (8, 16):
            rows.append(dict(name=f"{how} + L1, channels multiple of {align}", pruner="l1", selector="default_idx_selector",
                             how=how, target=0.5, align=align, seed=seeds[0], finetune=False))
    return rows


def row_id(r):
    reduction = f"-g{r['reduction']}" if r.get("reduction") else ""
    return (f"{r['how']}-{r['pruner']}{reduction}-{r['selector']}-{r['target']}-a{r['align']}-s{r['seed']}-"
            f"{'ft' if r['finetune'] else 'raw'}")


# -- data and training --------------------------------------------------------------------------------
def load_data(args):
    if not fashion_mnist_available():
        raise SystemExit("Fashion-MNIST is missing: apt-get install dataset-fashion-mnist (make install does it as root)")
    x, y = load_fashion_mnist("train")
    xt, yt = load_fashion_mnist("test")
    held = min(args.val_size, len(x) // 10)  # sensitivities are measured on held-out training images
    return {"train": (x[held:held + args.train_size], y[held:held + args.train_size]), "val": (x[:held], y[:held]),
            "test": (xt[:args.test_size], yt[:args.test_size])}


def to_input(images, rng=None):
    """uint8 [N, 28, 28] -> float32 [N, 3, 32, 32]; with `rng`, a random shift of up to 2 pixels and a flip."""
    n = len(images)
    out = np.zeros((n, SIZE, SIZE), np.float32)
    if rng is None:
        out[:, 2:30, 2:30] = images
    else:
        dy, dx = rng.randint(0, 5, 2)
        out[:, dy:dy + 28, dx:dx + 28] = images[:, :, ::-1] if rng.rand() < 0.5 else images
    out = (out / 255.0 - MEAN) / STD
    return np.repeat(out[:, None], 3, axis=1)


def train(net, data, epochs, lr, seed, batch_size):
    """SGD with momentum, cosine learning rate over all iterations, per-batch augmentation."""
    x, y = data
    rng = np.random.RandomState(seed)
    paddle.seed(seed)
    steps = epochs * max(1, len(x) // batch_size)
    schedule = paddle.optimizer.lr.CosineAnnealingDecay(lr, steps)
    opt = paddle.optimizer.Momentum(schedule, momentum=0.9, parameters=net.parameters(),
                                    weight_decay=paddle.regularizer.L2Decay(4e-5))
    net.train()
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for i in range(0, len(order) - batch_size + 1 if len(order) >= batch_size else 1, batch_size):
            idx = order[i:i + batch_size]
            logits = net(paddle.to_tensor(to_input(x[idx], rng)))
            loss = paddle.nn.functional.cross_entropy(logits, paddle.to_tensor(y[idx].astype("int64")[:, None]))
            loss.backward()
            opt.step()
            opt.clear_grad()
            schedule.step()


@paddle.no_grad()
def evaluate(net, data, batch_size=500):
    """(top-1, top-5) accuracy."""
    x, y = data
    net.eval()
    top1 = top5 = 0
    for i in range(0, len(x), batch_size):
        logits = net(paddle.to_tensor(to_input(x[i:i + batch_size]))).numpy()
        best = np.argsort(-logits, axis=1)[:, :5]
        truth = y[i:i + batch_size][:, None]
        top1 += int((best[:, :1] == truth).sum())
        top5 += int((best == truth).any(axis=1).sum())
    return top1 / len(x), top5 / len(x)


def model(args):
    """A fresh MobileNetV1 whose parameter names are the same every time (the sensitivity files use them)."""
    with paddle.utils.unique_name.guard():
        return paddle.vision.models.mobilenet_v1(scale=args.scale, num_classes=10)


# -- pruning ------------------------------------------------------------------------------------------
def uniform_ratios(pruner, target, align, tolerance=0.01):
    """One ratio for every conv (depthwise convs follow), found by bisection to remove `target` of the
    FLOPs; with `align`, each conv's kept channel count rounded to a multiple of it."""
    convs = pruner.conv_weights(followers=False)
    shapes = {p.name: p.shape for p in pruner.model.parameters()}
    sizes = {n: shapes[n][0] for n in convs}
    lo, hi = 0.0, 0.95
    for _ in range(30):
        mid = (lo + hi) / 2
        ratios = aligned({n: mid for n in convs}, sizes, align)
        got = pruner.prune_vars(ratios, apply=None).pruned_flops
        if abs(got - target) <= tolerance / 4:
            break
        lo, hi = (mid, hi) if got < target else (lo, mid)
    if abs(got - target) > tolerance:  # a row must land on its target: a miss stops the table, named
        raise SystemExit(f"uniform ratios for -{target:.0%} FLOPs (channels multiple of {align}): its last try "
                         f"removes {got:.1%}, more than {tolerance:.1%} away; raise --tolerance or change the align")
    return ratios


def aligned(ratios, sizes, align):
    """Ratios whose kept channel counts are multiples of `align` (at least `align`)."""
    if align <= 1:
        return ratios
    out = {}
    for n, r in ratios.items():
        keep = max(align, int(round(sizes[n] * (1 - r) / align)) * align)
        out[n] = max(0.0, 1 - min(keep, sizes[n]) / sizes[n])
    return out


def sensitivities(args, net, key, data):
    """The recipe's criterion's sensitivities of the baseline, measured once (resumable file)."""
    path = os.path.join(args.work, f"sensitivities_{key}.pkl")
    pruner = PRUNERS[key](net, [1, 3, SIZE, SIZE])
    pruner.sensitive(eval_func=lambda: evaluate(net, data)[0], sen_file=path,
                     ratios=[float(r) for r in args.ratios.split(",")])
    return path


# -- the table ----------------------------------------------------------------------------------------
class State:
    """Finished work under --work/state.json, rewritten atomically after each step."""

    def __init__(self, work):
        self.path = os.path.join(work, "state.json")
        self.data = json.load(open(self.path)) if os.path.isfile(self.path) else {"rows": {}, "seconds": 0.0}

    def save(self):
        with atomic_write(self.path) as f:
            json.dump(self.data, f, indent=1)


def baseline(args, data, state):
    path = os.path.join(args.work, "baseline.pdparams")
    net = model(args)
    if os.path.isfile(path):
        net.set_state_dict(paddle.load(path))
        return net
    tic = time.time()
    train(net, data["train"], args.epochs, args.lr, 0, args.batch_size)
    top1, top5 = evaluate(net, data["test"])
    paddle.save(net.state_dict(), path + ".tmp")
    os.replace(path + ".tmp", path)
    state.data["rows"]["baseline"] = dict(name="Baseline", how="-", target=0.0, seed=0, finetune=True, top1=top1,
                                          top5=top5, flops=dygraph_flops(net, DEPLOY), seconds=time.time() - tic,
                                          channels={p.name: p.shape[0] for p in net.parameters() if len(p.shape) == 4})
    state.save()
    return net


def run_row(args, r, data, state):
    tic = time.time()
    net = model(args)
    net.set_state_dict(paddle.load(os.path.join(args.work, "baseline.pdparams")))
    sen_file = os.path.join(args.work, f"sensitivities_{r['pruner']}.pkl") if r["how"] == "sensitive" else None
    pruner = PRUNERS[r["pruner"]](net, [1, 3, SIZE, SIZE], sen_file=sen_file, idx_selector=r["selector"],
                                  group_reduction=r.get("reduction"))
    if r["how"] == "none":
        plan = pruner.prune_vars({})
    elif r["how"] == "uniform":
        plan = pruner.prune_vars(uniform_ratios(pruner, r["target"], r["align"], args.tolerance))
    else:
        plan = pruner.sensitive_prune(r["target"], align=r["align"] if r["align"] > 1 else None, tolerance=args.tolerance)
    result = dict(r, planned_flops=plan.pruned_flops, flops=dygraph_flops(net, DEPLOY),
                  channels={p.name: p.shape[0] for p in net.parameters() if len(p.shape) == 4})
    result["top1_pruned"], _ = evaluate(net, data["test"])
    if r["finetune"]:
        x, y = data["train"]
        n = args.finetune_size or len(x)
        train(net, (x[:n], y[:n]), args.finetune_epochs, args.lr * 0.5, r["seed"], args.batch_size)
        result["top1"], result["top5"] = evaluate(net, data["test"])
    export(net, os.path.join(args.work, "models", row_id(r)))
    result["seconds"] = time.time() - tic
    state.data["rows"][row_id(r)] = result
    state.save()


def export(net, prefix):
    net.eval()
    paddle.jit.save(net, prefix, input_spec=[paddle.static.InputSpec(DEPLOY, "float32", "image")])


def measure(args, state):
    """FLOPs, file size and latency of every exported model, timed together in interleaved rounds."""
    rows = state.data["rows"]
    prefixes = {k: os.path.join(args.work, "models", k) for k in rows}
    feed = {"image": np.random.RandomState(0).rand(*DEPLOY).astype("float32")}
    for key, prefix in prefixes.items():
        rows[key]["file_mb"] = os.path.getsize(prefix + ".pdiparams") / 2**20
    for threads in THREADS:
        predictors = {k: deploy.create_predictor(p, threads=threads) for k, p in prefixes.items()}
        stats, load = deploy.compare_latency(predictors, feed, rounds=args.rounds, repeat=args.repeat)
        for key, s in stats.items():
            rows[key][f"latency_{threads}t"] = s
        state.data[f"load_{threads}t"] = load
    state.save()


def report(args, state, seconds):
    """The markdown table (mean and min-max over seeds) and a PNG of top-1 against the FLOPs removed."""
    rows = state.data["rows"]
    base = rows["baseline"]
    groups = {}
    for key, r in rows.items():
        if key != "baseline":
            groups.setdefault((r["name"], r["target"], r["finetune"]), []).append(r)
    sizes = state.data["sizes"]
    lines = [f"MobileNetV1 x{args.scale} on Fashion-MNIST ({sizes['train']} train / {sizes['test']} test images, {SIZE}x{SIZE}); baseline {args.epochs} epochs, every row "
             f"fine-tuned {args.finetune_epochs} epoch(s)"
             f"{f' on the first {args.finetune_size} training images' if args.finetune_size else ''}; FLOPs, size and latency at 1x3x224x224 with Paddle Inference "
             f"(CPU, oneDNN), ms min / median / max over {args.rounds} interleaved rounds of {args.repeat} runs; load "
             f"average {state.data['load_1t'][0]:.2f} (1 thread) and {state.data['load_2t'][0]:.2f} (2 threads). "
             f"Whole run: {seconds / 60:.1f} min.", "",
             "| recipe | seeds | top-1 | top-5 | file MB | MFLOPs (MACs) | latency 1 thread ms | latency 2 threads ms |",
             "|---|---|---|---|---|---|---|---|"]

    def lat(r, t):
        s = r[f"latency_{t}t"]
        return f"{s['min']:.2f} / {s['median']:.2f} / {s['max']:.2f}"

    lines.append(f"| Baseline | 1 | {base['top1']:.2%} | {base['top5']:.2%} | {base['file_mb']:.2f} | "
                 f"{base['flops'] / 1e6:.1f} | {lat(base, 1)} | {lat(base, 2)} |")
    for (name, target, finetune), rs in sorted(groups.items(), key=lambda g: g[0][1] > 0):  # the control first
        r0 = rs[0]
        if finetune:
            t1 = np.array([r["top1"] for r in rs])
            t5 = np.array([r["top5"] for r in rs])
            acc1 = f"{t1.mean():.2%} ({(t1.mean() - base['top1']) * 100:+.2f})" + _spread(t1)
            acc5 = f"{t5.mean():.2%} ({(t5.mean() - base['top5']) * 100:+.2f})"
        else:
            acc1 = f"not fine-tuned ({r0['top1_pruned']:.2%})"
            acc5 = "-"
        change = r0["flops"] / base["flops"] - 1
        lines.append(f"| {name}{f' -{target:.0%}' if target else ''} | {len(rs)} | {acc1} | {acc5} | {r0['file_mb']:.2f} | "
                     f"{r0['flops'] / 1e6:.1f} ({change:+.1%}) | {lat(r0, 1)} | {lat(r0, 2)} |")
    text = "\n".join(lines) + "\n"
    with atomic_write(args.report) as f:
        f.write(text)
    print(text)
    _plot(args, base, groups)


def _spread(values):
    """A few seeds give a range, not a standard deviation: their min-max, in points."""
    return f", seeds {values.min():.2%}-{values.max():.2%}" if len(values) > 1 else ""


def _plot(args, base, groups):
    """Top-1 against the FLOPs removed: one point per recipe at its mean over seeds, a bar from min to max."""
    points = [("Baseline", 0.0, [base["top1"] * 100])]
    for (name, target, finetune), rs in groups.items():
        if finetune:
            label = f"{name}{f' -{target:.0%}' if target else ''}"
            points.append((label, (1 - rs[0]["flops"] / base["flops"]) * 100, [r["top1"] * 100 for r in rs]))
    try:
        plot_recipes(points, os.path.splitext(args.report)[0] + ".png", "FLOPs removed % (MACs at 224x224)",
                     "top-1 % (mean; bar: min-max over seeds)")
    except ImportError as e:
        print(f"no plot: {e}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train-size", type=int, default=55000)
    p.add_argument("--val-size", type=int, default=5000, help="held-out training images for sensitivities")
    p.add_argument("--test-size", type=int, default=10000)
    p.add_argument("--scale", type=float, default=0.25, help="MobileNetV1 width")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--finetune-epochs", type=int, default=1)
    p.add_argument("--finetune-size", type=int, default=0, help="fine-tune on the first N training images (0: all)")
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--tolerance", type=float, default=0.01, help="allowed miss of each row's FLOPs target")
    p.add_argument("--seeds", default="0,1", help="fine-tune seeds of the -50%% rows")
    p.add_argument("--ratios", default="0.1,0.2,0.3,0.4,0.5,0.6,0.7")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--work", default="output/results_classification")
    p.add_argument("--report", default="docs/results_classification.md")
    args = p.parse_args(argv)
    os.makedirs(args.work, exist_ok=True)
    paddle.disable_static()
    paddle.set_device("cpu")
    tic = time.time()
    data = load_data(args)
    state = State(args.work)
    state.data["sizes"] = {k: len(v[0]) for k, v in data.items()}
    net = baseline(args, data, state)
    export(net, os.path.join(args.work, "models", "baseline"))
    rows = recipes([int(s) for s in args.seeds.split(",")])
    for key in sorted({r["pruner"] for r in rows if r["how"] == "sensitive"}):
        sensitivities(args, net, key, data["val"])
    for r in rows:
        if row_id(r) not in state.data["rows"]:
            print(f"== {r['name']} -{r['target']:.0%} (seed {r['seed']})", flush=True)
            run_row(args, r, data, state)
    # every model is timed in the same interleaved rounds: a new row times them all again, a resumed run none
    if any(f"latency_{t}t" not in r for r in state.data["rows"].values() for t in THREADS):
        measure(args, state)
    state.data["seconds"] += time.time() - tic
    state.save()
    report(args, state, state.data["seconds"])
    return state.data


if __name__ == "__main__":
    main()
