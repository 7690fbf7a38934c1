"""The main job, end to end on data the repo generates: measure the sensitivity of every conv of
YOLOv3-MobileNetV1 (demo), prune to a FLOPs target by it, fine-tune, evaluate, export, and print what
pruning bought (network latency without NMS beside end-to-end latency).

    python tools/demo.py [--target_flops 0.45] [--finetune_iters 300]
    python tools/demo.py --pruned_params a,b --pruned_ratios 0.3,0.4     # your own choice instead

First run: generates the demo VOC data and trains the baseline (tools/train.py, configs/yolov3/
yolov3_mobilenet_v1_demo.yml) unless `output/yolov3_mobilenet_v1_demo/model_final` exists; later runs
reuse it, and the sensitivities too (they are resumed, not measured again). Sensitivities are measured on
the training images the config holds out (`TrainReader.holdout`), never on the evaluation images.
"""
import argparse
import os
import time

from . import flags, paths, runner, table

CONFIG = os.path.join("configs", "yolov3", "yolov3_mobilenet_v1_demo.yml")


def parse_args(argv=None):
    p = flags.OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", default=CONFIG)
    p.add_argument("--target_flops", type=float, default=0.45, help="share of FLOPs to remove, by sensitivity")
    p.add_argument("--sensitivity_ratios", default="0.2,0.4,0.6", help="ratios measured on every conv")
    p.add_argument("--eval_batches", type=int, default=1, help="eval batches per sensitivity trial")
    p.add_argument("--pruned_params", default=None, help="prune these instead (with --pruned_ratios)")
    p.add_argument("--pruned_ratios", default=None)
    p.add_argument("--finetune_iters", type=int, default=300)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--restart_sensitivity", action="store_true",
                   help="measure the sensitivities anew when the stored ones were measured on other inputs")
    flags.add_overwrite_flag(p)
    return p.parse_args(argv)


def run(argv=None):
    """Train (once), measure, prune, fine-tune, evaluate and export; prints the before/after table."""
    args = parse_args(argv)
    from ..config import load_config
    from . import eval as evaluate
    from . import export_model, prune, sensitive, train
    from .compare import describe

    tic = time.time()
    overwrite = ["--overwrite"] if args.overwrite else []  # output folders of an older ppprune have no manifest
    cfg = load_config(args.config)
    name = os.path.splitext(os.path.basename(args.config))[0]
    base = os.path.join(cfg.get("save_dir", "output"), name, "model_final")
    if not os.path.isfile(base + ".pdparams"):
        print(f"== no baseline at {base}: training one (done once, then reused)")
        train.run(["-c", args.config, *overwrite])
    print(f"== baseline mAP ({base})")
    base_map = evaluate.run(["-c", args.config, "-o", f"weights={base}"])["mAP"]

    if args.pruned_params:
        how = ["--pruned_params", args.pruned_params, "--pruned_ratios", args.pruned_ratios or ""]
    else:
        print("== sensitivity of every prunable conv on the held-out training images (resumable)")
        sens = os.path.join(paths.save_dir(cfg, args.config, "_sensitivity"), sensitive.DEFAULT_FILE)
        restart = ["--restart"] if args.restart_sensitivity else []
        sensitive.run(["-c", args.config, "-o", f"weights={base}", "--pruned_ratios", args.sensitivity_ratios,
                       "--eval_batches", str(args.eval_batches), "--split", "holdout", "-s", sens,
                       "--target_flops", str(args.target_flops), *restart, *overwrite])  # the plot marks its ratios
        how = ["--target_flops", str(args.target_flops), "-s", sens]
    print("== prune and fine-tune")
    pruned = prune.run(["-c", args.config, "-o", f"weights={base}", f"max_iters={args.finetune_iters}",
                        f"snapshot_iter={args.finetune_iters}", "LearningRate.base_lr=0.001", *how, *overwrite])
    weights = os.path.join(pruned["out"], "model_final")
    print("== pruned mAP")
    pruned_map = evaluate.run(["-c", args.config, "-o", f"weights={weights}"])["mAP"]
    print("== export and measure with Paddle Inference")
    deployed = export_model.run(["-c", args.config, "-o", f"weights={weights}", "--threads", str(args.threads),
                                 *overwrite])

    b, a = pruned["before"], pruned["after"]
    rows = [
        ("VOC mAP", f"{base_map:.4f}", f"{pruned_map:.4f}", f"{pruned_map - base_map:+.4f}"),
        ("FLOPs (MACs)", f"{b['flops'] / 1e6:.1f}M", f"{a['flops'] / 1e6:.1f}M", f"{a['flops'] / b['flops'] - 1:+.1%}"),
        ("parameters", f"{b['params'] / 1e6:.3f}M", f"{a['params'] / 1e6:.3f}M", f"{a['params'] / b['params'] - 1:+.1%}"),
        ("file MB", deployed["original"]["file_mb"], deployed["pruned"]["file_mb"],
         f"{float(deployed['pruned']['file_mb']) / float(deployed['original']['file_mb']) - 1:+.1%}"),
        *[(f"{what} ms ({args.threads} thread)", deployed["original"][key], deployed["pruned"][key],
           f"{float(deployed['pruned'][key]) / float(deployed['original'][key]) - 1:+.1%}")
          for what, key in (("network latency", "net_latency_ms"), ("end-to-end latency", "latency_ms"))],
    ]
    print()
    table.print_table(f"{describe(cfg)} ({name}), pruned and fine-tuned {args.finetune_iters} iterations "
                       f"({(time.time() - tic) / 60:.1f} min):", ("", "original", "pruned", "change"), rows)


main = runner.exit_zero(run)
