"""Every tool as a subprocess on a tiny generated dataset, and each bad input a user can give it."""
import hashlib
import json
import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.heavy(145)  # seconds, about: heavy modules start first
PARAMS = "yolo_block.0.0.0.conv.weights,yolo_block.0.0.1.conv.weights,yolo_block.0.1.0.conv.weights"


def tool(name, *args, cwd=None, env=None):
    env = dict(os.environ, PYTHONWARNINGS="ignore", GLOG_minloglevel="2", **(env or {}))
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", name), *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def work(tiny_cli):
    return tiny_cli


def sha(path):
    return hashlib.sha1(open(path, "rb").read()).hexdigest()


def test_print_params(work):
    code, out = tool("prune.py", "-c", work["cfg"], "--print_params")
    assert code == 0, out
    assert "yolo_block.0.0.0.conv.weights" in out and "conv2_1_sep_weights" in out
    assert "not prunable" in out and "yolo_output.0.conv.weights" in out and "yolo_box" in out


def test_prune_finetune_eval_export_infer(work):
    before = sha(work["base"] + ".pdparams")
    code, out = tool("prune.py", "-c", work["cfg"], "-o", f"weights={work['base']}", "--pruned_params", PARAMS,
                     "--pruned_ratios", "0.2,0.3,0.4")
    assert code == 0, out
    assert "FLOPs (MACs)" in out and "yolo_block.0.0.1.conv.weights: 64 -> 45 channels" in out
    assert sha(work["base"] + ".pdparams") == before  # the input weights are never overwritten
    pruned_dir = work["out"] / "tiny_pruned"
    plan = json.loads((pruned_dir / "plan.json").read_text())
    assert [e["param"] for e in plan["entries"]] == PARAMS.split(",")
    assert plan["criterion"] == "l1_norm" and plan["shapes"]["yolo_block.0.0.1.conv.weights"][0] == 45
    assert os.path.isfile(pruned_dir / "model_final.pdparams")
    weights = f"weights={pruned_dir / 'model_final'}"

    code, out = tool("eval.py", "-c", work["cfg"], "-o", weights)  # the plan alone reshapes the model
    assert code == 0, out
    assert "mAP:" in out and "pruned model: yolo_block.0.0.0.conv.weights -6/32" in out

    code, out = tool("eval.py", "-c", work["cfg"], "-o", f"weights={pruned_dir}")  # a folder: its model_final
    assert code == 0 and "pruned model:" in out, out

    code, out = tool("eval.py", "-c", work["cfg"], "-o", weights, "--pruned_params", PARAMS, "--pruned_ratios", "0.5")
    assert code == 2 and "disagree with the plan" in out

    code, out = tool("export_model.py", "-c", work["cfg"], "-o", weights, "--repeat", "2")
    assert code == 0, out
    assert "Paddle Inference output matches the executor's" in out
    assert "original" in out and "pruned" in out and "latency ms" in out
    assert "network ms" in out and "end to end ms" in out and "load average" in out
    export_dir = work["out"] / "tiny_export"
    assert {"model.json", "model.pdiparams", "infer_cfg.yml", "config.yml"} <= set(os.listdir(export_dir))
    assert (export_dir / "original" / "infer_cfg.yml").is_file()  # the reference deploys the same way

    image = sorted((work["data"] / "JPEGImages").iterdir())[0]
    code, out = tool("infer.py", "--model_dir", str(export_dir), "--infer_img", str(image), "--output_dir",
                     str(work["out"] / "infer"), "--draw_threshold", "0.0")
    assert code == 0, out
    code, out = tool("infer.py", "--model_dir", str(export_dir), "--infer_img", str(image), "--output_dir",
                     str(work["out"] / "infer"), "--draw_threshold", "1.01")
    assert code == 0 and "1 of 1 images have no box at draw_threshold 1.01" in out, out
    assert os.path.isfile(work["out"] / "infer" / image.name)


def test_prune_to_a_flops_target_with_one_ratio_for_every_conv(work):
    code, out = tool("prune.py", "-c", work["cfg"], "-o", f"weights={work['base']}", "save_dir=" + str(work["out"] / "uni"),
                     "max_iters=0", "--target_flops", "0.4")
    assert code == 0, out
    assert "uniform ratio for 40% fewer FLOPs" in out
    removed = next(line for line in out.splitlines() if line.strip().startswith("FLOPs (MACs)")).split()[-1]
    assert abs(float(removed.rstrip("%")) - 40) <= 1.0, out  # what the pruned program counts, within the tolerance
    plan = json.loads((work["out"] / "uni" / "tiny_pruned" / "plan.json").read_text())
    assert len({round(e["ratio"], 9) for e in plan["entries"]}) == 1 and len(plan["entries"]) > 10


def test_demo_main_job_prints_the_before_after_table(work):
    # an untrained tiny model scores 0 mAP, so its sensitivities are undefined: name the convs instead
    code, out = tool("demo.py", "-c", work["cfg"], "--finetune_iters", "2", "--pruned_params", PARAMS,
                     "--pruned_ratios", "0.5")
    assert code == 0, out
    table = out[out.index("YOLOv3-MobileNetV1 (96 px) (tiny), pruned and fine-tuned 2 iterations"):]
    for row in ("VOC mAP", "FLOPs (MACs)", "parameters", "file MB", "network latency ms", "end-to-end latency ms"):
        assert row in table
    flops_row = next(line for line in table.splitlines() if "FLOPs" in line)
    assert flops_row.split()[-1].startswith("-")  # pruning removed FLOPs


# tools/sensitive.py with every evaluation counted: eval_loop is looked up at call time, so wrapping it counts
# the baseline and every trial; the count is the last line printed.
_COUNTED = """
import sys
sys.path.insert(0, sys.argv.pop(1))
import ppprune.engine as engine
from ppprune.cli import runner, sensitive
calls, real = [], engine.eval_loop
engine.eval_loop = lambda *a, **k: calls.append(1) or real(*a, **k)
code = runner.run(sensitive.main)
print(f"evaluations: {len(calls)}")
sys.exit(code)
"""


def counted_sensitive(*args):
    env = dict(os.environ, PYTHONWARNINGS="ignore", GLOG_minloglevel="2")
    proc = subprocess.run([sys.executable, "-c", _COUNTED, ROOT, *args], capture_output=True, text=True, env=env,
                          timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    return int(proc.stdout.strip().splitlines()[-1].split(": ")[1]), out


def test_sensitive_resumes(work):
    # An untrained model scores 0 mAP at IoU 0.5, and losses are relative to the baseline: keep every box
    # and loosen the IoU so the baseline is non-zero.
    args = ["-c", work["cfg"], "-o", f"weights={work['base']}", "VOCMetric.overlap_thresh=0.01",
            "YOLOv3Head.conf_thresh=0.0", "--pruned_params",
            "yolo_block.0.0.0.conv.weights,yolo_block.0.1.0.conv.weights", "--pruned_ratios", "0.5", "--eval_batches", "1"]
    code, out = tool("sensitive.py", *args, "--shard", "0/2")
    assert code == 0, out
    sens_dir = work["out"] / "tiny_sensitivity"
    assert os.path.isfile(sens_dir / "sensitivities.shard0of2.pkl")
    evaluations, out = counted_sensitive(*args, "-s", str(sens_dir / "all.pkl"))
    assert evaluations == 3, out  # a new file: the baseline and both weights at 0.5
    first = (sens_dir / "all.pkl").read_bytes()
    evaluations, out = counted_sensitive(*args, "-s", str(sens_dir / "all.pkl"), "--loss", "0.5")
    assert evaluations == 0, out  # resumed: nothing evaluated again
    assert (sens_dir / "all.pkl").read_bytes() == first
    assert os.path.isfile(sens_dir / "sensitivities.png")


@pytest.mark.parametrize("args,message", [
    (["-c", "configs/nope.yml", "--print_params"], "nope.yml"),
    (["-o", "max_iter=3", "--pruned_params", "x", "--pruned_ratios", "0.1"], "max_iters"),
    (["--pruned_params", "yolo_block.0.0.0.conv.weight", "--pruned_ratios", "0.2"], "Did you mean 'yolo_block.0.0.0.conv.weights'"),
    (["--pruned_params", PARAMS, "--pruned_ratios", "0.2,a,0.3"], "'a' is not a number"),
    (["--pruned_params", PARAMS, "--pruned_ratios", "0.2,1.0,0.3"], "outside [0, 1)"),
    (["--pruned_params", PARAMS, "--pruned_ratios", "0.2,0.3"], "3 --pruned_params but 2 --pruned_ratios"),
    (["--pruned_params", "yolo_output.0.conv.weights", "--pruned_ratios", "0.2"], "no channel rule for this op type"),
    (["-o", "weights=https://example.com/model.pdparams", "--pruned_params", PARAMS, "--pruned_ratios", "0.2"], "URL"),
    (["-o", "weights=/nonexistent/model", "--pruned_params", PARAMS, "--pruned_ratios", "0.2"], "no weights at"),
    (["-o", "save_dir=/proc/ppprune", "--pruned_params", PARAMS, "--pruned_ratios", "0.2"], "cannot write"),
])
def test_prune_bad_input(work, args, message):
    if "-c" not in args:
        args = ["-c", work["cfg"]] + args
    plan = work["out"] / "tiny_pruned" / "plan.json"
    before = plan.read_bytes() if plan.exists() else None
    code, out = tool("prune.py", *args, cwd=ROOT)
    assert code == 2, out
    assert message in out, out
    assert "Traceback" not in out
    assert (plan.read_bytes() if plan.exists() else None) == before  # earlier outputs intact


def test_pruned_weights_without_plan_name_the_mismatch(work, tmp_path):
    src = work["out"] / "tiny_pruned" / "model_final.pdparams"
    if not src.exists():
        pytest.skip("needs test_prune_finetune_eval_export_infer first")
    (tmp_path / "model_final.pdparams").write_bytes(src.read_bytes())  # a pruned checkpoint without its plan
    code, out = tool("eval.py", "-c", work["cfg"], "-o", f"weights={tmp_path / 'model_final'}")
    assert code == 2 and "has shape" in out and "--pruned_params" in out, out
