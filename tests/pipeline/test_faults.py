"""SIGKILL at chosen points (PPPRUNE_KILL_AFTER_WRITES=N: the process kills itself right after its N-th file
write) for train, prune (fine-tuning), sensitive and export. After each kill the output folder holds only
complete files (a torn checkpoint pair is refused by the loader, never mixed), and rerunning finishes with
the same result as an uninterrupted run. Also: DataLoader workers of a sensitivity run stay bounded."""
import json
import os
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from ppprune.engine.checkpoint import WeightsError, load_checkpoint
from ppprune.outdir import MANIFEST

from tests.helpers import ROOT

pytestmark = pytest.mark.heavy(160)  # seconds, about: heavy modules start first
PARAMS = "yolo_block.0.0.0.conv.weights,yolo_block.0.1.0.conv.weights"
KILLED = -signal.SIGKILL


def tool(name, *args, kill_after=None, kill_signal="SIGKILL"):
    env = dict(os.environ, PYTHONWARNINGS="ignore", GLOG_minloglevel="2")
    env.pop("PPPRUNE_KILL_AFTER_WRITES", None)
    if kill_after is not None:
        env.update(PPPRUNE_KILL_AFTER_WRITES=str(kill_after), PPPRUNE_KILL_SIGNAL=kill_signal)
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", name), *args], capture_output=True, text=True,
                          env=env, timeout=600, cwd=ROOT)
    return proc.returncode, proc.stdout + proc.stderr


def arrays(path):
    with open(path, "rb") as f:
        return pickle.load(f)


def same_weights(a, b, rtol=1e-3):
    x, y = arrays(a), arrays(b)
    assert x.keys() == y.keys()
    for k in x:
        np.testing.assert_allclose(x[k], y[k], rtol=rtol, atol=1e-5, err_msg=k)


def check_folder(folder):
    """Every file under a final name is complete; a checkpoint pair torn by the kill is refused by the real
    loader (hash-checked pair), never mixed. Returns the iterations of the checkpoints that load."""
    loadable = []
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if name.endswith((".pdparams", ".pdopt", ".pkl")):
            arrays(path)  # unpickles: not truncated
        elif name.endswith(".json"):
            json.load(open(path))
        elif name.endswith(".yml"):
            yaml.safe_load(open(path))
        if name.endswith((".pdparams", ".pdopt")) and name.split(".")[0].isdigit():
            prefix = path.rsplit(".", 1)[0]
            try:  # no model names: only the pair's own consistency is checked
                meta = load_checkpoint(prefix, None, None, [], [])
            except WeightsError:
                continue
            if meta["iter"] not in loadable:
                loadable.append(meta["iter"])
    return sorted(loadable)


def leftovers(folder):
    return [n for n in os.listdir(folder) if n.startswith((".tmp-", ".export-"))]


@pytest.fixture(scope="module")
def faults(tiny_cli, tmp_path_factory):
    return {**tiny_cli, "f": tmp_path_factory.mktemp("faults")}


def test_train_killed_mid_pair_resumes_to_the_same_weights(faults):
    cfg, f = faults["cfg"], faults["f"]
    common = [f"weights={faults['base']}", "max_iters=3", "snapshot_iter=1"]  # loaded weights: runs comparable
    code, out = tool("train.py", "-c", cfg, "-o", f"save_dir={f / 'ref'}", *common)
    assert code == 0, out
    # writes: config.yml, 1.pdopt, 1.pdparams, 2.pdopt | killed here: 2.pdparams never written
    code, out = tool("train.py", "-c", cfg, "-o", f"save_dir={f / 'run'}", *common, kill_after=4)
    assert code == KILLED, out
    folder = f / "run" / "tiny"
    assert check_folder(folder) == [1]
    assert not os.path.exists(folder / "model_final.pdparams")
    # a half-written pair is refused by the real loader, not mixed
    with open(folder / "2.pdopt", "rb") as fh:
        assert pickle.load(fh)["@meta"]["iter"] == 2
    code, out = tool("train.py", "-c", cfg, "-o", f"save_dir={f / 'run'}", *common, "-r", str(folder / "1"))
    assert code == 0, out
    assert leftovers(folder) == []
    same_weights(folder / "model_final.pdparams", f / "ref" / "tiny" / "model_final.pdparams")


def test_train_killed_before_any_complete_checkpoint_reruns_to_the_same_weights(faults):
    cfg, f = faults["cfg"], faults["f"]
    common = [f"weights={faults['base']}", "max_iters=3", "snapshot_iter=1"]
    # writes: config.yml, 1.pdopt | killed: the first pair is torn, its .pdparams still a temp file
    code, out = tool("train.py", "-c", cfg, "-o", f"save_dir={f / 'run2'}", *common, kill_after=2)
    assert code == KILLED, out
    folder = f / "run2" / "tiny"
    assert check_folder(folder) == [] and leftovers(folder)
    code, out = tool("train.py", "-c", cfg, "-o", f"save_dir={f / 'run2'}", *common)  # the same command again
    assert code == 0, out
    assert leftovers(folder) == []  # the killed run's temp file is gone
    same_weights(folder / "model_final.pdparams", f / "ref" / "tiny" / "model_final.pdparams")


def test_prune_finetune_killed_resumes_and_reruns(faults):
    cfg, f, base = faults["cfg"], faults["f"], faults["base"]
    args = ["-o", f"weights={base}", "max_iters=2", "snapshot_iter=1", "--pruned_params", PARAMS, "--pruned_ratios", "0.3"]
    code, out = tool("prune.py", "-c", cfg, *args[:2], f"save_dir={f / 'pref'}", *args[2:])
    assert code == 0, out
    faults["pruned"] = f / "pref" / "tiny_pruned" / "model_final"
    # writes: plan.json, config.yml, 1.pdopt, 1.pdparams, 2.pdopt | killed
    code, out = tool("prune.py", "-c", cfg, *args[:2], f"save_dir={f / 'p'}", *args[2:], kill_after=5)
    assert code == KILLED, out
    folder = f / "p" / "tiny_pruned"
    assert check_folder(folder) == [1]
    code, out = tool("prune.py", "-c", cfg, *args[:2], f"save_dir={f / 'p'}", *args[2:], "-r", str(folder / "1"))
    assert code == 0, out
    assert leftovers(folder) == []
    same_weights(folder / "model_final.pdparams", f / "pref" / "tiny_pruned" / "model_final.pdparams")

    # killed right after plan.json: rerunning the same command gives the uninterrupted result
    code, out = tool("prune.py", "-c", cfg, *args[:2], f"save_dir={f / 'p2'}", *args[2:], kill_after=1)
    assert code == KILLED, out
    assert os.listdir(f / "p2" / "tiny_pruned") and check_folder(f / "p2" / "tiny_pruned") == []
    code, out = tool("prune.py", "-c", cfg, *args[:2], f"save_dir={f / 'p2'}", *args[2:])
    assert code == 0, out
    same_weights(f / "p2" / "tiny_pruned" / "model_final.pdparams", f / "pref" / "tiny_pruned" / "model_final.pdparams")


def test_sensitive_killed_resumes_to_the_same_dict(faults):
    cfg, f, base = faults["cfg"], faults["f"], faults["base"]
    args = ["-o", f"weights={base}", "VOCMetric.overlap_thresh=0.01", "YOLOv3Head.conf_thresh=0.0",
            "--pruned_params", PARAMS, "--pruned_ratios", "0.3,0.6", "--eval_batches", "1"]
    code, out = tool("sensitive.py", "-c", cfg, *args, "-s", str(f / "ref.pkl"), "-o", f"save_dir={f / 's'}")
    assert code == 0, out
    # writes: config.yml, the baseline sidecar, the (empty) results, one result | killed
    code, out = tool("sensitive.py", "-c", cfg, *args, "-o", f"save_dir={f / 's'}", kill_after=4)
    assert code == KILLED, out
    folder = f / "s" / "tiny_sensitivity"
    check_folder(folder)
    partial = arrays(folder / "sensitivities.pkl")
    assert sum(len(v) for v in partial.values()) == 1  # a plain PaddleSlim dict with what finished
    code, out = tool("sensitive.py", "-c", cfg, *args, "-o", f"save_dir={f / 's'}")
    assert code == 0, out
    assert arrays(folder / "sensitivities.pkl") == arrays(f / "ref.pkl")
    assert leftovers(folder) == []


def test_export_killed_leaves_the_old_export_then_reruns(faults):
    cfg, f = faults["cfg"], faults["f"]
    weights = faults.get("pruned") or pytest.skip("needs the prune test first")
    out_dir = f / "export"
    args = ["-c", cfg, "-o", f"weights={weights}", "--output_dir", str(out_dir), "--repeat", "1", "--rounds", "1"]
    code, out = tool("export_model.py", *args)
    assert code == 0, out
    first = {n: (out_dir / n).read_bytes() for n in ("model.json", "model.pdiparams", "infer_cfg.yml")}
    (out_dir / "my_notes.txt").write_text("kept\n")  # a file of the user's in the (adopted) export folder
    for kill_after in (1, 2):  # killed while staging: the old export is untouched
        code, out = tool("export_model.py", *args, kill_after=kill_after)
        assert code == KILLED, out
        assert {n: (out_dir / n).read_bytes() for n in first} == first
    assert leftovers(f)  # the killed runs' staging folders, until the next run
    code, out = tool("export_model.py", *args, kill_after=3)  # killed right after the swap: the new export
    assert code == KILLED, out
    assert {n: (out_dir / n).read_bytes() for n in first} == first and (out_dir / "my_notes.txt").exists()
    code, out = tool("export_model.py", *args)
    assert code == 0 and "matches the executor's" in out, out
    assert leftovers(f) == []
    assert {n: (out_dir / n).read_bytes() for n in first} == first  # same model, same bytes
    assert (out_dir / "my_notes.txt").read_text() == "kept\n"
    assert "my_notes.txt" not in json.load(open(out_dir / MANIFEST))["files"]


def test_sensitivity_workers_stay_bounded(faults):
    """Each evaluation with num_workers=2 used to leave its workers alive (hundreds after a while)."""
    cfg, f, base = faults["cfg"], faults["f"], faults["base"]
    env = dict(os.environ, PYTHONWARNINGS="ignore", GLOG_minloglevel="2")
    proc = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "tools", "sensitive.py"), "-c", cfg, "-o", f"weights={base}",
         f"save_dir={f / 'w'}", "EvalReader.num_workers=2", "VOCMetric.overlap_thresh=0.01", "YOLOv3Head.conf_thresh=0.0",
         "--pruned_params", PARAMS, "--pruned_ratios", "0.2,0.4,0.6", "--eval_batches", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)
    most = 0
    while proc.poll() is None:
        most = max(most, len(_children(proc.pid)))
        time.sleep(0.05)
    out = proc.stdout.read()
    assert proc.returncode == 0, out
    assert "analysing 2 weights" in out
    assert most <= 2, f"{most} live child processes"


def _children(pid):
    """Live (not zombie) child processes of `pid`, from /proc."""
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            kids.append(int(entry))
    return kids
