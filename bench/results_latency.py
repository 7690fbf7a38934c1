"""Latency targets against FLOPs targets at the same measured latency, on the detection table's baseline:
is a model pruned for measured latency more accurate than one pruned for FLOPs that runs as fast?

    python bench/results_latency.py          # after bench/results_detection.py (its baseline and sensitivities)

For each latency target (default -30% and -50% of the network's Paddle Inference latency on this CPU):
  - latency, fewest channels: `tools/prune.py --target_latency T` (the latency model measured on this machine);
  - latency + sensitive:      `tools/prune.py --target_latency T -s SENS` (least accuracy lost for the time saved);
  - FLOPs uniform / FLOPs sensitive: `tools/prune.py --target_flops F [-s SENS]`, with F searched here so that
    the pruned network's measured latency is the target's (pruned on copies of the weights and timed against the
    original in interleaved rounds; nothing fine-tuned).
Every row is fine-tuned the same iterations per seed and evaluated; then all models are timed together against
one original in the same interleaved rounds. The sensitivities are the detection table's, measured on held-out
training images. Finished steps are kept in --work/state.json: rerunning resumes.
"""
import argparse
import json
import os
import re
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from ppprune.cli import eval as evaluate  # noqa: E402
from ppprune.cli import prune  # noqa: E402
from ppprune.cli.compare import describe, time_checkpoints  # noqa: E402
from results_detection import add_timing_flags, latency_cell, load_range, load_state, write_report  # noqa: E402
from ppprune.cli.runner import UsageError  # noqa: E402
from ppprune.config import load_config  # noqa: E402
from ppprune.core.errors import PruneError  # noqa: E402

CONFIG = os.path.join("configs", "yolov3", "yolov3_mobilenet_v1_demo.yml")
RECIPES = (("latency, fewest channels", "latency", False), ("latency + sensitive", "latency", True),
           ("FLOPs uniform", "flops", False), ("FLOPs sensitive", "flops", True))
ORIGINAL = "original"
WITHIN = 0.05  # the measured latency counts as on target within this share of the original's


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", default=CONFIG)
    p.add_argument("-o", "--opt", nargs="+", default=[], help="overrides for every tool (e.g. a smaller dataset)")
    p.add_argument("--from", dest="source", default="output/results_detection",
                   help="bench/results_detection.py's --work: its baseline and sensitivities are used")
    p.add_argument("--targets", default="0.3,0.5", help="shares of the network's latency to remove")
    p.add_argument("--finetune_iters", type=int, default=300)
    p.add_argument("--finetune_lr", type=float, default=0.001)
    p.add_argument("--seeds", default="0,1", help="fine-tuning seeds (TrainReader.seed), every row once per seed")
    p.add_argument("--flops_tolerance", type=float, default=0.01, help="as tools/prune.py --flops_tolerance")
    p.add_argument("--match_steps", type=int, default=8, help="bisection steps of a FLOPs row's latency match")
    add_timing_flags(p)
    p.add_argument("--work", default="output/results_latency")
    p.add_argument("--report", default="docs/results_latency.md")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    tic = time.time()
    state, save = load_state(args.work)

    name = os.path.splitext(os.path.basename(args.config))[0]
    base, sens = os.path.join(args.source, name, "model_final"), os.path.join(args.source, "sensitivities.pkl")
    for path in (base + ".pdparams", sens):
        if not os.path.isfile(path):
            raise SystemExit(f"{path} is missing: run bench/results_detection.py first (--work {args.source}); it "
                             "trains the baseline and measures the sensitivities on held-out training images")
    if "baseline_mAP" not in state:
        state["baseline_mAP"] = evaluate.run(["-c", args.config, "-o", *args.opt, f"weights={base}"])["mAP"]
        save()
    rows = [(f"{recipe}, latency -{target:.0%}", recipe, kind, by_sensitivity, target)
            for target in (float(t) for t in args.targets.split(",")) for recipe, kind, by_sensitivity in RECIPES]
    for seed in (int(s) for s in args.seeds.split(",")):  # every row's first seed before any second one
        for key, recipe, kind, by_sensitivity, target in rows:
            row = state["rows"].setdefault(key, {"recipe": recipe, "kind": kind, "target": target,
                                                 "sensitive": by_sensitivity, "seeds": {}})
            if kind == "flops" and "flops_target" not in row:
                print(f"== {key}: the FLOPs target whose measured latency is the target's", flush=True)
                row.update(_match_flops(args, base, sens if by_sensitivity else None, target))
                save()
            if (kind == "flops" and row["flops_target"] is None) or "error" in row or str(seed) in row["seeds"]:
                continue  # out of reach (the report says so), or done
            print(f"== {key}, seed {seed}", flush=True)
            try:
                row["seeds"][str(seed)] = _finetune(args, base, sens, key, row, seed)
            except (PruneError, UsageError) as e:  # an impossible target: the row says why
                row["error"] = str(e)
            state.pop("timing", None)  # a new model: the timing no longer covers every row
            save()
    if args.remeasure:
        state.pop("timing", None)
    if "timing" not in state:
        print("== timing every model against the original in the same interleaved rounds", flush=True)
        models = {ORIGINAL: base}
        for key, row in state["rows"].items():
            if row["seeds"]:
                models[key] = row["seeds"][min(row["seeds"], key=int)]["weights"]
        state["timing"] = time_checkpoints(args.config, args.opt, models, args.threads, args.rounds, args.repeat)
        save()
    state["seconds"] += time.time() - tic
    save()
    _report(args, state)
    return state


def _match_flops(args, base, sens_path, target):
    """{"flops_target": F or None, "match": [[F, measured latency removed], ...]}: F bisected so that the
    network pruned to F fewer FLOPs (uniform, or by the sensitivities) is measured `target` faster."""
    from types import SimpleNamespace

    from ppprune.cli.driver import load_model
    from ppprune.cli.latency import LatencyTarget
    from ppprune.prune import load_sensitivities, ratios_for_flops
    from ppprune.prune.latency_check import PrunedTimer
    from ppprune.prune.ratios import uniform_ratios
    from ppprune.prune.report import prunable_params

    cfg = load_config(args.config, [*args.opt, f"weights={base}"])
    loaded = load_model(cfg, "eval", None)
    spec, scope = loaded.spec, loaded.scope
    timed = LatencyTarget(cfg, SimpleNamespace(target_latency=target, threads=args.threads, no_onednn=False), spec,
                          loaded.exe, scope)
    try:
        timer = PrunedTimer(spec.program, scope, spec.network_feeds, spec.network, timed.original, timed.inputs,
                            timed.settings, rounds=5)
        sens = load_sensitivities(sens_path) if sens_path else None
        params = [r["name"] for r in prunable_params(spec.program)[0]]
        tried = []

        def removed(flops):
            """The measured share of latency removed at `flops` fewer FLOPs; None when no ratios land there."""
            try:
                ratios = flops_ratios(flops)
            except PruneError as e:
                print(f"  {flops:.1%} fewer FLOPs: {e}", flush=True)
                return None
            share = 1 - timer({p: r for p, r in ratios.items() if r > 0})
            tried.append([flops, share])
            print(f"  {flops:.1%} fewer FLOPs: measured {share:.1%} less latency", flush=True)
            return share

        def flops_ratios(flops):
            if sens is None:
                return uniform_ratios(spec.program, params, flops, scope=scope, tolerance=args.flops_tolerance)
            return ratios_for_flops(spec.program, sens, flops, scope=scope, tolerance=args.flops_tolerance)

        # FLOPs fall faster than latency on this CPU: search between the target itself and the most the
        # sensitivities' (or a uniform ratio's) reach allows
        lo, hi = target, 0.9
        while removed(hi) is None and hi - 0.05 > lo:
            hi -= 0.05
        if not tried or max(share for _, share in tried) < target - WITHIN:
            print(f"  out of reach: {hi:.0%} fewer FLOPs is not {target:.0%} faster", flush=True)
            return {"flops_target": None, "match": tried}
        for _ in range(args.match_steps):
            mid = (lo + hi) / 2
            share = removed(mid)
            if share is None:
                share = removed(mid + args.flops_tolerance)  # a step of the channel counts: just above it
            if share is None:
                break
            if abs(share - target) <= WITHIN / 5:
                break
            lo, hi = (mid, hi) if share < target else (lo, mid)
        best = min(tried, key=lambda t: abs(t[1] - target))
        return {"flops_target": best[0], "match": tried}
    finally:
        timed.close()


def _finetune(args, base, sens, key, row, seed):
    folder = os.path.join(args.work, "rows", re.sub(r"[^A-Za-z0-9]+", "_", key).strip("_"), f"seed{seed}")
    opts = [*args.opt, f"save_dir={folder}", f"weights={base}", f"max_iters={args.finetune_iters}",
            f"snapshot_iter={args.finetune_iters}", f"LearningRate.base_lr={args.finetune_lr}", f"TrainReader.seed={seed}"]
    if "ratios" in row:  # a later seed: the first seed's plan (a latency search times, so it may differ run to run)
        flags = ["--pruned_params", ",".join(row["ratios"]), "--pruned_ratios", ",".join(map(str, row["ratios"].values()))]
    elif row["kind"] == "latency":
        flags = ["--target_latency", str(row["target"]), "--threads", str(args.threads)]
    else:
        flags = ["--target_flops", str(row["flops_target"]), "--flops_tolerance", str(args.flops_tolerance)]
    if row["sensitive"] and "ratios" not in row:
        flags += ["-s", sens]
    pruned = prune.run(["-c", args.config, "-o", *opts, *flags, *(["--overwrite"] if args.overwrite else [])])
    with open(os.path.join(pruned["out"], "plan.json")) as f:
        row.setdefault("ratios", {e["param"]: e["ratio"] for e in json.load(f)["entries"]})
    row.setdefault("before", pruned["before"])
    row.setdefault("after", pruned["after"])
    if "latency" in pruned["report"]:
        row.setdefault("latency", {k: pruned["report"]["latency"][k] for k in
                                   ("predicted_removed", "measured_removed", "prediction_error")})
    weights = os.path.join(pruned["out"], "model_final")
    return {"weights": weights, "mAP": evaluate.run(["-c", args.config, "-o", *args.opt, f"weights={weights}"])["mAP"]}


def _report(args, state):
    timing = state["timing"]
    stats = timing["stats"]
    o = stats[ORIGINAL]["network"]
    cfg = load_config(args.config, [*args.opt])
    lines = [f"{describe(cfg)} on the demo VOC data, from the "
             f"detection table's baseline (VOC mAP {state['baseline_mAP']:.4f}); every row fine-tuned "
             f"{args.finetune_iters} iterations at lr {args.finetune_lr} once per seed. Latency: the network alone, "
             f"Paddle Inference on the CPU, {timing['threads']} thread(s), every model timed against the original in "
             f"its own {timing['rounds']} interleaved rounds of {timing['repeat']} runs (load average "
             f"{load_range(timing)}); original {o['median']:.2f} ms (median over the pairs). \"On target\": "
             f"measured within ±{WITHIN:.0%} of the original's latency of the target. Whole run: "
             f"{state['seconds'] / 60:.1f} min.", "",
             "| recipe | target | FLOPs target | seeds | VOC mAP | network ms | latency removed | on target | "
             "predicted (error) | MFLOPs (MACs) | parameters (M) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    points = [("Baseline", o["median"], [state["baseline_mAP"]])]
    for key, r in state["rows"].items():
        flops_target = "-" if r["kind"] == "latency" else (
            "out of reach" if r.get("flops_target") is None else f"-{r['flops_target']:.1%}")
        if not r["seeds"] or key not in stats:
            why = r.get("error", "not run").replace("|", "/")
            lines.append(f"| {r['recipe']} | -{r['target']:.0%} | {flops_target} | 0 | {why} | - | - | no | - | - | - |")
            continue
        maps = np.array([s["mAP"] for s in r["seeds"].values()])
        m = stats[key]["network"]
        got = 1 - m["median"] / timing["reference"][key]["network"]["median"]  # against the original of its rounds
        spread = f" ({maps.min():.4f}-{maps.max():.4f})" if len(maps) > 1 else ""
        lat = r.get("latency")
        predicted = f"{lat['predicted_removed']:.1%} ({lat['prediction_error']:+.1%})" if lat else "-"
        a, b = r["after"], r["before"]
        lines.append(f"| {r['recipe']} | -{r['target']:.0%} | {flops_target} | {len(maps)} | {maps.mean():.4f}{spread} | "
                     f"{latency_cell(m, timing['reference'][key]['network'])} | {got:.1%} | "
                     f"{'yes' if abs(got - r['target']) <= WITHIN else 'no'} | {predicted} | "
                     f"{a['flops'] / 1e6:.1f} ({a['flops'] / b['flops'] - 1:+.1%}) | {a['params'] / 1e6:.3f} |")
        points.append((key, m["median"], list(maps)))
    write_report(args.report, "\n".join(lines) + "\n", points, timing, "latency targets against FLOPs targets")


if __name__ == "__main__":
    main()
