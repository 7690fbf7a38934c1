"""The detection table: a detector on the generated demo VOC data, pruned by each recipe to a FLOPs target
with the tools a user runs, every row fine-tuned the same number of iterations, once per seed.

    python bench/results_detection.py                    # YOLOv3-MobileNetV1: baseline (trained once), 6 rows x 2 seeds
    python bench/results_detection.py -c configs/ppyoloe/ppyoloe_crn_demo.yml --work output/results_ppyoloe
    python bench/results_detection.py --finetune_iters 2 --eval_batches 1 -o max_iters=4 ...   # a smoke run

Rows: baseline; the control (the same fine-tuning with nothing pruned); uniform L1 -30% and -50%
(`tools/prune.py --target_flops`); sensitive L1 -30% and -50% (`tools/sensitive.py` on the config's
held-out training images, then `tools/prune.py --target_flops -s`); uniform FPGM -50%. Seeds change the
fine-tuning's data order and augmentation (`TrainReader.seed`). Columns: VOC mAP (mean and range over
seeds), FLOPs, parameters, file MB, and Paddle Inference latency of the network alone (no NMS) and end to
end. All models are timed together, against one original, in the same interleaved rounds, after every row
is trained. Finished rows and seeds are kept in --work/state.json: rerunning resumes.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from ppprune.analysis.plot import plot_recipes  # noqa: E402
from ppprune.cli import eval as evaluate  # noqa: E402
from ppprune.cli import export_model, prune, sensitive, train  # noqa: E402
from ppprune.cli.compare import describe, time_checkpoints  # noqa: E402
from ppprune.config import load_config  # noqa: E402
from ppprune.fsutil import atomic_write  # noqa: E402

CONFIG = os.path.join("configs", "yolov3", "yolov3_mobilenet_v1_demo.yml")
FINETUNED = "Baseline + the same fine-tuning"  # the control: every row's extra iterations, nothing pruned
ROWS = ((FINETUNED, "l1_norm", False, 0.0), ("uniform + L1", "l1_norm", False, 0.3), ("uniform + L1", "l1_norm", False, 0.5),
        ("sensitive + L1", "l1_norm", True, 0.3), ("sensitive + L1", "l1_norm", True, 0.5),
        ("uniform + FPGM", "geometry_median", False, 0.5))
ORIGINAL = "original"  # the timing label of the baseline's export


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", default=CONFIG)
    p.add_argument("-o", "--opt", nargs="+", default=[], help="overrides for every tool (e.g. a smaller dataset)")
    p.add_argument("--finetune_iters", type=int, default=300)
    p.add_argument("--finetune_lr", type=float, default=0.001)
    p.add_argument("--seeds", default="0,1", help="fine-tuning seeds: every row below the baseline once per seed")
    p.add_argument("--sensitivity_ratios", default="0.1,0.2,0.3,0.4,0.5,0.6,0.7")
    p.add_argument("--eval_batches", type=int, default=2, help="held-out batches per sensitivity trial")
    p.add_argument("--round_to", type=int, default=1)
    p.add_argument("--flops_tolerance", type=float, default=0.01, help="as tools/prune.py --flops_tolerance")
    add_timing_flags(p)
    p.add_argument("--only", default=None,
                   help="run only the rows whose name contains one of these (comma-separated), e.g. 'uniform'")
    p.add_argument("--work", default="output/results_detection")
    p.add_argument("--report", default="docs/results_detection.md")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    tic = time.time()
    state, save = load_state(args.work)

    seeds = [int(s) for s in args.seeds.split(",")]
    opts = [*args.opt, f"save_dir={args.work}"]
    base = _baseline(args)
    if not os.path.isfile(base + ".pdparams"):
        print("== baseline: training (done once)", flush=True)
        train.main(["-c", args.config, "-o", *opts, *_over(args)])
    if "baseline" not in state["rows"]:
        state["rows"]["baseline"] = {"name": "Baseline", "target": 0.0,
                                     "mAP": evaluate.run(["-c", args.config, "-o", *opts, f"weights={base}"])["mAP"]}
        save()
    wanted = args.only.split(",") if args.only else None
    rows = [r for r in ROWS if wanted is None or any(w in _key(r[0], r[3]) for w in wanted)]
    sens = os.path.join(args.work, "sensitivities.pkl")
    if any(r[2] and len(state["rows"].get(_key(r[0], r[3]), {}).get("seeds", ())) < len(seeds) for r in rows):
        print("== sensitivities on the held-out training images (resumable)", flush=True)
        sensitive.main(["-c", args.config, "-o", *opts, f"weights={base}", "--pruned_ratios", args.sensitivity_ratios,
                        "--eval_batches", str(args.eval_batches), "--split", "holdout", "-s", sens, *_over(args)])
    for label, criterion, by_sensitivity, target in rows:
        key = _key(label, target)
        row = state["rows"].setdefault(key, {"name": label, "target": target, "seeds": {}})
        for seed in seeds:
            if str(seed) in row["seeds"]:
                continue
            print(f"== {key}, seed {seed}", flush=True)
            row["seeds"][str(seed)] = _finetune(args, base, sens, row, criterion, by_sensitivity, seed)
            state.pop("timing", None)  # a new model: the table's timing no longer covers every row
            save()
    if args.remeasure:
        state.pop("timing", None)
    if "timing" not in state:
        print("== timing every model against the original in the same interleaved rounds", flush=True)
        state["timing"] = _time_all(args, state)
        save()
    state["seconds"] += time.time() - tic
    save()
    _report(args, state)
    return state


def add_timing_flags(p):
    """The flags both results tables time and write with."""
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds of each model with the original")
    p.add_argument("--repeat", type=int, default=20, help="timed runs per model and round")
    p.add_argument("--remeasure", action="store_true",
                   help="time the finished rows again (e.g. once the machine is quiet), nothing else")
    p.add_argument("--overwrite", action="store_true", help="let the tools write into folders an older ppprune wrote")


def load_state(work):
    """The finished work kept in `work`/state.json, and a `save()` that rewrites it atomically."""
    path = os.path.join(work, "state.json")
    state = json.load(open(path)) if os.path.isfile(path) else {"rows": {}, "seconds": 0.0}

    def save():
        os.makedirs(work, exist_ok=True)
        with atomic_write(path) as f:
            json.dump(state, f, indent=1)

    return state, save


def _over(args):
    return ["--overwrite"] if args.overwrite else []


def _key(label, target):
    return f"{label} -{target:.0%}" if target else label


def _name(args):
    return os.path.splitext(os.path.basename(args.config))[0]


def _baseline(args):
    return os.path.join(args.work, _name(args), "model_final")


def _seed_dir(args, row, seed):
    folder = row["name"].replace(" + ", "_").replace(" ", "_") + f"_{int(row['target'] * 100)}"
    return os.path.join(args.work, "rows", folder, f"seed{seed}")


def _finetune(args, base, sens, row, criterion, by_sensitivity, seed):
    """Prune (the control: a plan that removes nothing), fine-tune with `seed` and evaluate; the first seed's
    model is also exported (Paddle Inference must match the executor) for its file size."""
    folder = _seed_dir(args, row, seed)
    row_opts = [*args.opt, f"save_dir={folder}", f"weights={base}", f"max_iters={args.finetune_iters}",
                f"snapshot_iter={args.finetune_iters}", f"LearningRate.base_lr={args.finetune_lr}",
                f"TrainReader.seed={seed}"]
    if row["target"]:
        flags = ["--target_flops", str(row["target"]), "--flops_tolerance", str(args.flops_tolerance),
                 "--prune_criterion", criterion, "--round_to", str(args.round_to)]
    else:
        flags = ["--pruned_params", _first_prunable(args), "--pruned_ratios", "0"]
    if by_sensitivity:
        flags += ["-s", sens]
    pruned = prune.run(["-c", args.config, "-o", *row_opts, *flags, *_over(args)])
    row.setdefault("before", pruned["before"])
    row.setdefault("after", pruned["after"])
    weights = os.path.join(pruned["out"], "model_final")
    result = {"weights": weights, "mAP": evaluate.run(["-c", args.config, "-o", *args.opt, f"weights={weights}"])["mAP"]}
    if "file_mb" not in row:
        deployed = export_model.run(["-c", args.config, "-o", *args.opt, f"weights={weights}", "--rounds", "1",
                                     "--repeat", "1", "--output_dir", os.path.join(folder, "export"), *_over(args)])
        if not isinstance(deployed, dict):
            raise SystemExit(f"{folder}: the exported model differs from the executor's; see above")
        row["file_mb"] = {k: float(v["file_mb"]) for k, v in deployed.items()}
    return result


def _first_prunable(args):
    import paddle

    from ppprune.engine import build_programs
    from ppprune.prune.report import prunable_params

    paddle.enable_static()
    return prunable_params(build_programs(load_config(args.config, args.opt), "eval").eval.program)[0][0]["name"]


def _time_all(args, state):
    """One model per row (the first seed's: seeds share the structure), each timed against the original."""
    models = {ORIGINAL: _baseline(args)}
    for key, row in state["rows"].items():
        if key != "baseline" and row["seeds"]:
            models[key] = row["seeds"][min(row["seeds"], key=int)]["weights"]
    return time_checkpoints(args.config, args.opt, models, args.threads, args.rounds, args.repeat)


def _report(args, state):
    rows, timing = state["rows"], state["timing"]
    stats, ref, base = timing["stats"], timing["reference"], rows["baseline"]
    cfg = load_config(args.config, [*args.opt])
    o = stats[ORIGINAL]
    lines = [f"{describe(cfg)} on the demo VOC data; every row below the baseline fine-tuned {args.finetune_iters} "
             f"iterations at lr {args.finetune_lr} once per seed (the control row: that fine-tuning with nothing "
             f"pruned); mAP is the mean over seeds with their range (two seeds give a range, not a standard "
             f"deviation). Latency: Paddle Inference on the CPU, {timing['threads']} thread(s), every model timed "
             f"against the original in its own {timing['rounds']} interleaved rounds of {timing['repeat']} runs, "
             f"one model after another in one run (load average {load_range(timing)}); ms median (min-max over rounds), "
             "then the original's median in the same rounds and the change. Whole run: "
             f"{state['seconds'] / 60:.1f} min.", "",
             "| recipe | seeds | VOC mAP | mAP range | MFLOPs (MACs) | parameters (M) | file MB | network ms | "
             "end to end ms |", "|---|---|---|---|---|---|---|---|---|"]
    first = next((r for k, r in rows.items() if k != "baseline" and "before" in r), None)
    if first is not None:
        b = first["before"]
        lines.append(f"| Baseline | 1 | {base['mAP']:.4f} | - | {b['flops'] / 1e6:.1f} | {b['params'] / 1e6:.3f} | "
                     f"{first['file_mb'][ORIGINAL]:.2f} | {latency_cell(o['network'])} | {latency_cell(o['end to end'])}{_mark(o)} |")
    points = [("Baseline", o["network"]["median"], [base["mAP"]])]
    for key in [_key(label, target) for label, _, _, target in ROWS]:
        r = rows.get(key)
        if not r or key not in stats:
            continue
        maps = np.array([s["mAP"] for s in r["seeds"].values()])
        a, b, t = r["after"], r["before"], stats[key]
        spread = f"{maps.min():.4f}-{maps.max():.4f}" if len(maps) > 1 else "-"
        lines.append(f"| {key} | {len(maps)} | {maps.mean():.4f} ({maps.mean() - base['mAP']:+.4f}) | {spread} | "
                     f"{a['flops'] / 1e6:.1f} ({a['flops'] / b['flops'] - 1:+.1%}) | {a['params'] / 1e6:.3f} | "
                     f"{r['file_mb']['pruned']:.2f} ({r['file_mb']['pruned'] / r['file_mb'][ORIGINAL] - 1:+.0%}) | "
                     f"{latency_cell(t['network'], ref[key]['network'])} | {latency_cell(t['end to end'], ref[key]['end to end'])}"
                     f"{_mark(t)} |")
        points.append((key, t["network"]["median"], list(maps)))
    notes = [_below_note(label, s) for label, s in stats.items() if _mark(s)]
    write_report(args.report, "\n".join(lines + ([""] + notes if notes else [])) + "\n", points, timing, describe(cfg))


def write_report(path, text, points, timing, title):
    """The table (markdown) at `path`, printed, and beside it its picture: mAP against network latency."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_write(path) as f:
        f.write(text)
    print(text)
    try:
        plot_recipes(points, os.path.splitext(path)[0] + ".png",
                     f"network latency ms (Paddle Inference, {timing['threads']} thread(s), median of the rounds)",
                     "VOC mAP (mean; bar: min-max over seeds)", title)
    except ImportError as e:
        print(f"no plot: {e}")


def latency_cell(s, original=None):
    text = f"{s['median']:.2f} ({s['min']:.2f}-{s['max']:.2f})"
    return f"{text}, original {original['median']:.2f}: {s['median'] / original['median'] - 1:+.0%}" if original else text


def load_range(timing):
    """The range of the load averages the pairs were timed at."""
    loads = [v for pair in timing["load"].values() for v in pair]
    return f"{min(loads):.2f}-{max(loads):.2f}" if loads else "-"


def _mark(s):
    """A mark when end to end was timed below the network it contains (it runs the network, then NMS)."""
    return " *" if s["end to end"]["median"] < s["network"]["median"] else ""


def _below_note(label, s):
    net, e2e = s["network"], s["end to end"]
    gap = net["median"] - e2e["median"]
    spread = max(net["max"] - net["min"], e2e["max"] - e2e["min"])
    why = (f"within the rounds' spread ({spread:.2f} ms), so it is timing noise: the two are separate predictors "
           "and NMS on this model's few boxes costs less than that noise" if gap <= spread else
           f"more than the rounds' spread ({spread:.2f} ms): not explained by noise in these rounds")
    return f"\\* {label}: end to end timed {gap:.2f} ms below its own network, {why}."


if __name__ == "__main__":
    main()
