"""Does latency follow FLOPs? YOLOv3-MobileNetV1 (the demo config) pruned uniformly to -50% FLOPs with
kept channel counts rounded to multiples of 1, 8 and 16 (`--round_to`), and to -75% FLOPs; the network
alone (no NMS) timed with Paddle Inference on the CPU against the unpruned model, all in interleaved
rounds of one run, beside the FLOPs and the elements of every tensor the network writes.

    python bench/latency_alignment.py                    # about 5 minutes on 2 cores
    python bench/latency_alignment.py --threads 1 2 --rows 0.5:1 0.5:8 0.5:16 0.75:8   # target:round_to

Latency depends on the channel counts, not on the weights' values: the models here start from the
config's initialisation (no training), and uniform ratios give the same counts whatever the weights.
"""
import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

import numpy as np  # noqa: E402
import paddle  # noqa: E402

from ppprune import deploy  # noqa: E402
from ppprune.analysis import flops  # noqa: E402
from ppprune.config import load_config  # noqa: E402
from ppprune.core.graph import feed_vars  # noqa: E402
from ppprune.engine import build_programs  # noqa: E402
from ppprune.prune import Pruner  # noqa: E402
from ppprune.prune.report import prunable_params  # noqa: E402
from ppprune.prune.ratios import uniform_ratios  # noqa: E402

CONFIG = os.path.join("configs", "yolov3", "yolov3_mobilenet_v1_demo.yml")


def export_network(program, feeds, outputs, scope, exe, folder):
    """The program cut at the network's outputs, saved for Paddle Inference."""
    prefix = os.path.join(folder, "model")
    with paddle.static.scope_guard(scope):
        paddle.static.save_inference_model(prefix, feed_vars(program, feeds), outputs, exe, program=program)
    return prefix


def activation_elements(program):
    """Elements of every tensor the network writes (batch 1): the memory traffic that depthwise convs,
    norms, activations and concats spend their time on. It falls linearly with the channels kept, while
    a conv's FLOPs fall with the product of its input and output channels."""
    from ppprune.core.graph import FORWARD, view_of

    view, total, seen = view_of(program), 0, set()
    for op in view.ops:
        for k in (k for ks in op.outputs.values() for k in ks):
            shape = view.shape(k)
            if op.kind != FORWARD or k in seen or view.persistable_name(k) or not shape:
                continue
            seen.add(k)
            total += int(np.prod([max(d, 1) for d in shape]))
    return total


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", default=CONFIG)
    p.add_argument("--rows", nargs="+", default=["0.5:1", "0.5:8", "0.5:16", "0.75:8"],
                   help="target:round_to pairs: share of the FLOPs to remove, channel multiple")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--no-onednn", dest="onednn", action="store_false", help="Paddle's native CPU kernels instead")
    p.add_argument("-o", "--opt", nargs="+", default=[], help="config overrides, e.g. EvalReader.image_shape=[3,608,608]")
    p.add_argument("--report", default=None, help="also write the table (markdown) here")
    args = p.parse_args(argv)
    paddle.enable_static()
    cfg = load_config(args.config, args.opt)
    programs = build_programs(cfg, "infer")
    spec = programs.infer
    exe = paddle.static.Executor(paddle.CPUPlace())
    scope = paddle.static.Scope()
    exe.run(programs.startup, scope=scope)
    params = [row["name"] for row in prunable_params(spec.program)[0]]
    base = flops(spec.program)
    c, h, w = cfg["EvalReader"]["image_shape"]
    feed = {"image": np.random.RandomState(0).rand(1, c, h, w).astype("float32")}
    feed = {k: feed[k] for k in spec.network_feeds}
    rows = {"original": (base, activation_elements(spec.program), None)}
    with tempfile.TemporaryDirectory(prefix="ppprune-align-") as tmp:
        prefixes = {"original": export_network(spec.program, spec.network_feeds, list(spec.network), scope, exe,
                                               os.path.join(tmp, "original"))}
        for row in args.rows:
            target, multiple = float(row.split(":")[0]), int(row.split(":")[1])
            pruned_scope = paddle.static.Scope()  # fresh initial values: the channel counts are what matter
            exe.run(programs.startup, scope=pruned_scope)
            ratios = uniform_ratios(spec.program, params, target, scope=pruned_scope, round_to=multiple, tolerance=0.02)
            pruner = Pruner()
            pruned, _, _ = pruner.prune(spec.program, pruned_scope, list(ratios), list(ratios.values()))
            label = f"-{target:.0%} FLOPs, channels multiple of {multiple}"
            kept = [e.size - len(e.pruned) for e in pruner.plan.entries]
            odd = sum(1 for k in kept if k % 8)
            rows[label] = (flops(pruned), activation_elements(pruned), f"{odd} of {len(kept)} convs keep a count that is not a multiple of 8")
            prefixes[label] = export_network(pruned, spec.network_feeds, [pruner.lookup(v) for v in spec.network],
                                             pruned_scope, exe, os.path.join(tmp, row.replace(":", "_")))
        results = {}
        for threads in args.threads:
            predictors = {k: deploy.create_predictor(v, threads=threads, onednn=args.onednn) for k, v in prefixes.items()}
            results[threads] = deploy.compare_latency(predictors, feed, rounds=args.rounds, repeat=args.repeat)
    kernels = "oneDNN" if args.onednn else "native kernels"
    lines = [f"YOLOv3-MobileNetV1 demo config ({h}x{w}), network alone, Paddle Inference CPU ({kernels}); ms min / median / max "
             f"of per-round medians over {args.rounds} interleaved rounds of {args.repeat} runs; load average "
             + ", ".join(f"{results[t][1][0]:.2f} ({t} thread{'s' if t > 1 else ''})" for t in args.threads) + ".", "",
             "| model | MFLOPs (MACs) | activations (M elements) | "
             + " | ".join(f"{t} thread{'s' if t > 1 else ''} ms" for t in args.threads)
             + " | channel counts |", "|---|---|---|" + "---|" * len(args.threads) + "---|"]
    base_act = rows["original"][1]
    for label, (macs, act, note) in rows.items():
        cells = []
        for t in args.threads:
            s, o = results[t][0][label], results[t][0]["original"]
            change = "" if label == "original" else f" ({s['median'] / o['median'] - 1:+.0%})"
            cells.append(f"{s['min']:.2f} / {s['median']:.2f} / {s['max']:.2f}{change}")
        flop_cell = f"{macs / 1e6:.1f}" + ("" if label == "original" else f" ({macs / base - 1:+.1%})")
        act_cell = f"{act / 1e6:.2f}" + ("" if label == "original" else f" ({act / base_act - 1:+.1%})")
        lines.append(f"| {label} | {flop_cell} | {act_cell} | " + " | ".join(cells) + f" | {note or '-'} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.report:
        from ppprune.fsutil import atomic_write

        with atomic_write(args.report) as f:
            f.write(text)
    return results


if __name__ == "__main__":
    main()
