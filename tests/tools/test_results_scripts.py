"""The results-table scripts in bench/ run end to end on a tiny setting, resume, and report what they measured."""
import json
import os
import subprocess
import sys

import pytest

from ppprune.data.fashion_mnist import fashion_mnist_available

from tests.helpers import ROOT

pytestmark = pytest.mark.heavy(195)  # seconds, about: heavy modules start first


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
        # the FLOPs are counted on the pruned Layer itself, and land on the row's target
        assert abs(1 - r["flops"] / base["flops"] - r["target"]) <= 0.05 + 1e-9, (key, r["flops"])
        # the plan counts at the 32x32 training size, the row at 224x224: only the fc's share differs
        assert abs(r["planned_flops"] - (1 - r["flops"] / base["flops"])) < 0.005
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
def test_detection_table_tiny(tmp_path):
    from tests.helpers import tiny

    cfg = tiny.write_config(tmp_path)
    report, work = tmp_path / "table.md", tmp_path / "work"
    # an untrained tiny detector scores 0 mAP at IoU 0.5: keep every box and loosen the IoU
    args = ["-c", cfg, "-o", "VOCMetric.overlap_thresh=0.01", "YOLOv3Head.conf_thresh=0.0", "--finetune_iters", "2",
            "--only", "uniform + L1", "--work", str(work), "--report", str(report)]
    bench("results_detection.py", *args)
    state = json.loads((work / "state.json").read_text())
    assert list(state["rows"]) == ["baseline", "uniform + L1 -30%", "uniform + L1 -50%"]
    for key, target in (("uniform + L1 -30%", 0.3), ("uniform + L1 -50%", 0.5)):
        r = state["rows"][key]
        assert abs(1 - r["after"]["flops"] / r["before"]["flops"] - target) <= 0.01  # counted on the pruned program
        assert float(r["deploy"]["pruned"]["file_mb"]) < float(r["deploy"]["original"]["file_mb"])
        assert float(r["deploy"]["pruned"]["net_latency_ms"]) > 0 and float(r["deploy"]["pruned"]["latency_ms"]) > 0
    lines = report.read_text().splitlines()
    assert any(line.startswith("| Baseline |") for line in lines) and sum("uniform + L1" in line for line in lines) == 2
    assert "network ms" in report.read_text()


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
