"""The results-table scripts in bench/ run end to end on a tiny setting, resume, and report what they measured."""
import json
import os
import subprocess
import sys

import pytest

from ppprune.data.fashion_mnist import fashion_mnist_available

from tests.helpers import ROOT

pytestmark = pytest.mark.heavy(180)  # seconds, about: heavy modules start first


def bench(script, *args):
    env = dict(os.environ, PYTHONWARNINGS="ignore", GLOG_minloglevel="2")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "bench", script), *args], capture_output=True,
                          text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
@pytest.mark.skipif(not fashion_mnist_available(), reason="needs Debian's dataset-fashion-mnist")
def test_classification_table_tiny(tmp_path):
    work, report = tmp_path / "work", tmp_path / "table.md"
    # big enough that the baseline learns (about 50% top-1): sensitivities of an untrained net are all ties
    args = ["--train-size", "800", "--val-size", "100", "--test-size", "200", "--epochs", "3", "--batch-size", "32",
            "--finetune-epochs", "1", "--finetune-size", "96", "--seeds", "0", "--ratios", "0.3,0.6", "--rounds", "2", "--repeat", "2",
            "--tolerance", "0.05", "--work", str(work), "--report", str(report)]
    out = bench("results_classification.py", *args)
    assert "== uniform + L1 -50%" in out
    table = report.read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == 14 and rows[0].startswith("| Baseline |") and rows[1].startswith("| Baseline + the same fine-tuning |")
    state = json.loads((work / "state.json").read_text())
    base = state["rows"]["baseline"]
    for key, r in state["rows"].items():
        if key == "baseline":
            continue
        # the plan lands on the row's target within the tolerance asked; it counts at the 32x32 training size,
        # the row (the pruned Layer itself) at 224x224, where only the fc's share differs
        assert abs(r["planned_flops"] - r["target"]) <= 0.05 + 1e-9, (key, r["planned_flops"])
        assert abs(r["planned_flops"] - (1 - r["flops"] / base["flops"])) < 0.005, (key, r["flops"])
        for t in (1, 2):
            s = r[f"latency_{t}t"]
            assert 0 < s["min"] <= s["median"] <= s["max"]
        assert r["file_mb"] < base["file_mb"] if r["target"] else r["file_mb"] == base["file_mb"]
        if r["align"] > 1:  # every conv pruned keeps a multiple of the alignment
            before = state["rows"]["baseline"]["channels"]
            assert all(n % r["align"] == 0 for name, n in r["channels"].items() if n != before[name]), r["channels"]
    assert os.path.isfile(os.path.splitext(report)[0] + ".png")
    # a second run resumes: every step is found done, nothing is trained, pruned or timed again
    again = bench("results_classification.py", *args)
    resumed = json.loads((work / "state.json").read_text())
    assert "== " not in again and resumed.pop("seconds") >= state.pop("seconds") and resumed == state


@pytest.mark.slow
def test_detection_then_latency_table_tiny(tmp_path, monkeypatch):
    from tests.helpers import tiny

    cfg = tiny.write_config(tmp_path)
    report, work = tmp_path / "table.md", tmp_path / "work"
    # a barely trained tiny detector scores 0 mAP at IoU 0.5: keep every box and loosen the IoU. Sensitivities
    # need a baseline whose convs matter (40 iterations, not 2), 4 held-out images and a metric without the
    # 11-point steps, else most losses tie at 0; its few channels per conv need a wider FLOPs tolerance for the
    # loss-threshold search (4 of 8 trainings missed 1%): the uniform rows run first at the default 1%.
    rows = ("Baseline + the same fine-tuning", "uniform + L1 -50%", "sensitive + L1 -50%")
    tolerance = {"uniform + L1 -50%": 0.01, "Baseline + the same fine-tuning": 0.0, "sensitive + L1 -50%": 0.05}
    opts = ["-o", "VOCMetric.overlap_thresh=0.01", "VOCMetric.map_type=integral", "YOLOv3Head.conf_thresh=0.0",
            "demo_data.num_train=16", "max_iters=40", "snapshot_iter=40"]
    common = ["-c", cfg, *opts, "--finetune_iters", "2", "--seeds", "0,1", "--eval_batches", "2", "--rounds", "2",
              "--repeat", "2", "--work", str(work), "--report", str(report)]
    bench("results_detection.py", *common, "--only", ",".join(rows[:2]))
    args = [*common, "--flops_tolerance", "0.05", "--only", ",".join(rows)]  # adds the sensitive row
    bench("results_detection.py", *args)
    state = json.loads((work / "state.json").read_text())
    assert list(state["rows"]) == ["baseline", *rows]
    # sensitivities were measured on the held-out training images, not on the EvalReader whose mAP is reported
    measured = json.loads((work / "sensitivities.pkl.baseline.json").read_text())
    assert "holdout" in json.dumps(measured) and "EvalReader" not in json.dumps(measured)
    for key in rows:
        r = state["rows"][key]
        target = r["target"]
        assert sorted(r["seeds"]) == ["0", "1"] and all(0 <= s["mAP"] <= 1 for s in r["seeds"].values())
        assert r["seeds"]["0"]["weights"] != r["seeds"]["1"]["weights"]
        assert abs(1 - r["after"]["flops"] / r["before"]["flops"] - target) <= tolerance[key] + 1e-9  # on the pruned program
        if target:
            assert r["file_mb"]["pruned"] < r["file_mb"]["original"]
        else:  # the control: a plan that removes nothing
            assert r["after"] == r["before"] and abs(r["file_mb"]["pruned"] - r["file_mb"]["original"]) < 0.01
    timing = state["timing"]
    assert sorted(timing["stats"]) == sorted(["original", *rows])  # one original, timed with every row
    for parts in timing["stats"].values():
        assert all(0 < parts[p]["min"] <= parts[p]["median"] <= parts[p]["max"] for p in ("network", "end to end"))
    table = report.read_text()
    lines = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert lines[1].startswith("| Baseline | 1 |") and [line.split(" | ")[0][2:] for line in lines[2:]] == list(rows)
    for line in lines[2:]:  # two seeds: a range of mAPs, not a standard deviation
        low, high = (float(v) for v in line.split(" | ")[3].split("-"))
        assert low <= high
    marked = [line for line in lines if line.endswith(" * |")]
    assert len(marked) == table.count("\\* ")  # every end-to-end time below its own network is explained
    assert os.path.isfile(os.path.splitext(report)[0] + ".png")
    # a second run resumes: every row and seed is found done, nothing is trained or timed again
    again = bench("results_detection.py", *args)
    resumed = json.loads((work / "state.json").read_text())
    assert "== " not in again and resumed.pop("seconds") >= state.pop("seconds") and resumed == state

    # the latency table from that baseline and those sensitivities, with a fresh latency-model cache
    monkeypatch.setenv("PPPRUNE_CACHE", str(tmp_path / "cache"))
    report, work = tmp_path / "latency.md", tmp_path / "latency"
    args = ["-c", cfg, *opts, "--from", str(tmp_path / "work"), "--targets", "0.05", "--seeds", "0", "--finetune_iters", "2",
            "--match_steps", "2", "--flops_tolerance", "0.05", "--rounds", "2", "--repeat", "2",
            "--work", str(work), "--report", str(report)]
    bench("results_latency.py", *args)
    state = json.loads((work / "state.json").read_text())
    rows = state["rows"]
    assert [r["recipe"] for r in rows.values()] == ["latency, fewest channels", "latency + sensitive", "FLOPs uniform",
                                                   "FLOPs sensitive"]
    fewest = rows["latency, fewest channels, latency -5%"]
    assert list(fewest["seeds"]) == ["0"] and fewest["after"]["flops"] < fewest["before"]["flops"]
    assert set(fewest["latency"]) == {"predicted_removed", "measured_removed", "prediction_error"}
    for r in rows.values():
        if r["kind"] == "flops":  # searched by timing pruned copies: every try recorded, the chosen one among them
            assert r["match"] and (r["flops_target"] is None or r["flops_target"] in [f for f, _ in r["match"]])
        assert bool(r["seeds"]) != ("error" in r or r.get("flops_target", 0) is None)  # trained, or says why not
    assert sorted(state["timing"]["stats"]) == sorted(["original", *(k for k, r in rows.items() if r["seeds"])])
    lines = [line for line in report.read_text().splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(lines) == 4 and os.path.isfile(os.path.splitext(report)[0] + ".png")
    again = bench("results_latency.py", *args)
    resumed = json.loads((work / "state.json").read_text())
    assert "== " not in again and resumed.pop("seconds") >= state.pop("seconds") and resumed == state


def test_latency_alignment_tiny(tmp_path):
    report = tmp_path / "alignment.md"
    bench("latency_alignment.py", "--rows", "0.5:1", "0.5:8", "--threads", "1", "--rounds", "1", "--repeat", "1",
          "--report", str(report))
    rows = [line.split(" | ") for line in report.read_text().splitlines() if line.startswith("| -50%")]
    assert len(rows) == 2
    for row in rows:  # each model lands on the target (within the bisection's tolerance) and was timed
        change = float(row[1].split("(")[1].rstrip("%)"))
        assert -53 <= change <= -47 and float(row[3].split(" / ")[1].split()[0]) > 0
    assert "0 of" in rows[1][-1]  # multiples of 8: no conv keeps an odd count
