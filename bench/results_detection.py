"""The detection table: YOLOv3-MobileNetV1 on the generated demo VOC data, pruned by each recipe to a FLOPs
target with the tools a user runs, every row fine-tuned the same number of iterations.

    python bench/results_detection.py                    # baseline (trained once), sensitivities, 6 rows
    python bench/results_detection.py --finetune_iters 2 --eval_batches 1 -o max_iters=4 ...   # a smoke run

Rows: baseline; uniform L1 -30% and -50% (`tools/prune.py --target_flops`); sensitive L1 -30% and -50%
(`tools/sensitive.py`, then `tools/prune.py --target_flops -s`); uniform FPGM -50%. Columns: VOC mAP,
FLOPs, parameters, file MB, and Paddle Inference latency of the network alone (no NMS) and end to end,
each pruned model timed in interleaved rounds against the original in the same call. Finished rows are
kept in --work/state.json: rerunning resumes.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from ppprune.cli import eval as evaluate  # noqa: E402
from ppprune.cli import export_model, prune, sensitive, train  # noqa: E402
from ppprune.config import load_config  # noqa: E402
from ppprune.fsutil import atomic_write  # noqa: E402

CONFIG = os.path.join("configs", "yolov3", "yolov3_mobilenet_v1_demo.yml")
FINETUNED = "Baseline + the same fine-tuning"  # the control: every row's extra iterations, nothing pruned
ROWS = ((FINETUNED, "l1_norm", False, 0.0), ("uniform + L1", "l1_norm", False, 0.3), ("uniform + L1", "l1_norm", False, 0.5),
        ("sensitive + L1", "l1_norm", True, 0.3), ("sensitive + L1", "l1_norm", True, 0.5),
        ("uniform + FPGM", "geometry_median", False, 0.5))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", default=CONFIG)
    p.add_argument("-o", "--opt", nargs="+", default=[], help="overrides for every tool (e.g. a smaller dataset)")
    p.add_argument("--finetune_iters", type=int, default=300)
    p.add_argument("--finetune_lr", type=float, default=0.001)
    p.add_argument("--sensitivity_ratios", default="0.1,0.2,0.3,0.4,0.5,0.6,0.7")
    p.add_argument("--eval_batches", type=int, default=2, help="eval batches per sensitivity trial")
    p.add_argument("--round_to", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--remeasure", action="store_true",
                   help="time the finished rows' exports again (e.g. once the machine is quiet), nothing else")
    p.add_argument("--overwrite", action="store_true", help="let the tools write into folders an older ppprune wrote")
    p.add_argument("--only", default=None, help="run only the rows whose name contains this, e.g. 'uniform'")
    p.add_argument("--work", default="output/results_detection")
    p.add_argument("--report", default="docs/results_detection.md")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    tic = time.time()
    state_path = os.path.join(args.work, "state.json")
    state = json.load(open(state_path)) if os.path.isfile(state_path) else {"rows": {}, "seconds": 0.0}

    def save():
        os.makedirs(args.work, exist_ok=True)
        with atomic_write(state_path) as f:
            json.dump(state, f, indent=1)

    name = os.path.splitext(os.path.basename(args.config))[0]
    opts = [*args.opt, f"save_dir={args.work}"]
    base = os.path.join(args.work, name, "model_final")
    if not os.path.isfile(base + ".pdparams"):
        print("== baseline: training (done once)", flush=True)
        train.main(["-c", args.config, "-o", *opts, *_over(args)])
    if "baseline" not in state["rows"]:
        state["rows"]["baseline"] = {"name": "Baseline", "target": 0.0,
                                     "mAP": evaluate.run(["-c", args.config, "-o", *opts, f"weights={base}"])["mAP"]}
        save()
    rows = [r for r in ROWS if args.only is None or args.only in _key(r[0], r[3])]
    sens = os.path.join(args.work, "sensitivities.pkl")
    if any(r[2] for r in rows):
        print("== sensitivities (resumable)", flush=True)
        sensitive.main(["-c", args.config, "-o", *opts, f"weights={base}", "--pruned_ratios", args.sensitivity_ratios,
                        "--eval_batches", str(args.eval_batches), "-s", sens, *_over(args)])
    for label, criterion, by_sensitivity, target in rows:
        key = _key(label, target)
        if key in state["rows"] and args.remeasure:
            state["rows"][key]["deploy"] = _export(args, opts, _row_dir(args, label, target))
            save()
        if key in state["rows"]:
            continue
        print(f"== {key}", flush=True)
        state["rows"][key] = _row(args, opts, base, sens, label, criterion, by_sensitivity, target)
        save()
    state["seconds"] += time.time() - tic
    save()
    _report(args, state)
    return state


def _over(args):
    return ["--overwrite"] if args.overwrite else []


def _key(label, target):
    return f"{label} -{target:.0%}" if target else label


def _row_dir(args, label, target):
    return os.path.join(args.work, "rows", label.replace(" + ", "_").replace(" ", "_") + f"_{int(target * 100)}")


def _export(args, opts, row_dir):
    """Export a row's fine-tuned model and time it against the original in interleaved rounds."""
    name = os.path.splitext(os.path.basename(args.config))[0]
    weights = os.path.join(row_dir, name + "_pruned", "model_final")
    deployed = export_model.run(["-c", args.config, "-o", *opts, f"weights={weights}", "--threads", str(args.threads),
                                 "--output_dir", os.path.join(row_dir, "export"), *_over(args)])
    if not isinstance(deployed, dict):
        raise SystemExit(f"{row_dir}: the exported model differs from the executor's; see above")
    return deployed


def _row(args, opts, base, sens, label, criterion, by_sensitivity, target):
    row_dir = _row_dir(args, label, target)
    row_opts = [*args.opt, f"save_dir={row_dir}", f"weights={base}", f"max_iters={args.finetune_iters}",
                f"snapshot_iter={args.finetune_iters}", f"LearningRate.base_lr={args.finetune_lr}"]
    if target:
        flags = ["--target_flops", str(target), "--prune_criterion", criterion, "--round_to", str(args.round_to)]
    else:  # a plan that removes nothing: the same fine-tuning on the unpruned model
        flags = ["--pruned_params", _first_prunable(args), "--pruned_ratios", "0"]
    if by_sensitivity:
        flags += ["-s", sens]
    pruned = prune.run(["-c", args.config, "-o", *row_opts, *flags, *_over(args)])
    weights = os.path.join(pruned["out"], "model_final")
    result = evaluate.run(["-c", args.config, "-o", *opts, f"weights={weights}"])
    deployed = _export(args, opts, row_dir)
    return {"name": label, "target": target, "mAP": result["mAP"], "before": pruned["before"], "after": pruned["after"],
            "deploy": deployed}


def _first_prunable(args):
    import paddle

    from ppprune.engine import build_programs
    from ppprune.prune.report import prunable_params

    paddle.enable_static()
    return prunable_params(build_programs(load_config(args.config, args.opt), "eval").eval.program)[0][0]["name"]


def _report(args, state):
    rows = state["rows"]
    base = rows["baseline"]
    first = next((r for k, r in rows.items() if k != "baseline"), None)
    cfg = load_config(args.config, [*args.opt])
    lines = [f"YOLOv3-MobileNetV1 (x{cfg['MobileNetV1']['scale']}, {cfg['EvalReader']['image_shape'][1]} px) on the "
             f"demo VOC data; every row below the baseline fine-tuned {args.finetune_iters} iterations at lr "
             f"{args.finetune_lr} (the control row: that fine-tuning with nothing pruned). "
             "Latency: Paddle Inference on the CPU, "
             f"{args.threads} thread(s), median ms of interleaved rounds against the original in the same call "
             f"(change in brackets). Whole run: {state['seconds'] / 60:.1f} min.", "",
             "| recipe | VOC mAP | MFLOPs (MACs) | parameters (M) | file MB | network ms | end to end ms |",
             "|---|---|---|---|---|---|---|"]
    if first is not None:
        b, d = first["before"], first["deploy"]["original"]
        lines.append(f"| Baseline | {base['mAP']:.4f} | {b['flops'] / 1e6:.1f} | {b['params'] / 1e6:.3f} | "
                     f"{float(d['file_mb']):.2f} | {d['net_latency_ms']} | {d['latency_ms']} |")
    for key in [_key(label, target) for label, _, _, target in ROWS if _key(label, target) in rows]:
        r = rows[key]
        a, b, d, o = r["after"], r["before"], r["deploy"]["pruned"], r["deploy"]["original"]

        def change(new, old):
            return f"{float(new):.2f} ({float(new) / float(old) - 1:+.0%})"

        lines.append(f"| {key} | {r['mAP']:.4f} ({r['mAP'] - base['mAP']:+.4f}) | "
                     f"{a['flops'] / 1e6:.1f} ({a['flops'] / b['flops'] - 1:+.1%}) | {a['params'] / 1e6:.3f} | "
                     f"{change(d['file_mb'], o['file_mb'])} | {change(d['net_latency_ms'], o['net_latency_ms'])} | "
                     f"{change(d['latency_ms'], o['latency_ms'])} |")
    text = "\n".join(lines) + "\n"
    os.makedirs(os.path.dirname(os.path.abspath(args.report)), exist_ok=True)
    with atomic_write(args.report) as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
