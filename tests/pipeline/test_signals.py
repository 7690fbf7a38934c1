"""Ctrl-C (SIGINT) and SIGTERM at chosen points of prune.py (fine-tuning) and export_model.py (timing): the
tool ends with one line and exit status 130 / 143 (no traceback, no C++ stack dump of Paddle's own handler),
the output folder holds its old or its new state, and a rerun resumes or redoes the work."""
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.helpers import ROOT
from tests.pipeline.test_faults import check_folder, leftovers
from tests.tools.test_bad_input import tree_state

pytestmark = pytest.mark.heavy(60)  # seconds, about: heavy modules start first

PARAMS = "yolo_block.0.0.0.conv.weights"
MESSAGE = "interrupted ({}); rerun the same command to resume"


def start(name, *args):
    env = dict(os.environ, PYTHONWARNINGS="ignore", GLOG_minloglevel="2")
    # a test runner may ignore SIGINT (a background job); the tool must see it as a user's Ctrl-C would
    return subprocess.Popen([sys.executable, os.path.join(ROOT, "tools", name), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def interrupt_when(proc, ready, signum, timeout=300):
    """Send `signum` once `ready(stdout so far)` holds; returns (exit status, stdout, stderr)."""
    out, err = [], []
    readers = [threading.Thread(target=lambda s=s, b=b: b.extend(s), daemon=True) for s, b in
               ((proc.stdout, out), (proc.stderr, err))]
    for r in readers:
        r.start()
    deadline = time.time() + timeout
    while not ready("".join(out)):
        assert proc.poll() is None, "".join(out + err)  # it must still be running when the signal comes
        assert time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signum)
    code = proc.wait(timeout=120)
    for r in readers:
        r.join(timeout=10)
    return code, "".join(out), "".join(err)


def assert_one_line(code, err, signum):
    name = signal.Signals(signum).name
    assert code == 128 + signum, err
    assert "Traceback" not in err and "C++" not in err, err
    lines = [line for line in err.splitlines() if line.strip() and "%|" not in line]  # progress bars aside
    assert lines == [MESSAGE.format(name)], err


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_prune_interrupted_while_fine_tuning_resumes(tiny_cli, tmp_path, signum):
    args = ["-c", tiny_cli["cfg"], "-o", f"weights={tiny_cli['base']}", f"save_dir={tmp_path}", "max_iters=40",
            "snapshot_iter=1", "--pruned_params", PARAMS, "--pruned_ratios", "0.25"]
    folder = tmp_path / "tiny_pruned"
    code, out, err = interrupt_when(start("prune.py", *args), lambda _: (folder / "2.pdopt").exists(), signum)
    assert_one_line(code, err, signum)
    done = check_folder(folder)  # every file complete, no torn pair mixed
    assert done and leftovers(folder) == [] and not (folder / "model_final.pdparams").exists()
    if signum == signal.SIGINT:  # the rerun resumes from the last snapshot and finishes
        resume = ["-r", str(folder / str(done[-1])), *args[:-4], "max_iters=" + str(done[-1] + 1)]
        proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "prune.py"), *resume], capture_output=True,
                              text=True, cwd=ROOT, timeout=300, env=dict(os.environ, PYTHONWARNINGS="ignore"))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert (folder / "model_final.pdparams").exists() and check_folder(folder)[-1] == done[-1] + 1


def test_export_interrupted_while_timing_keeps_the_old_export(tiny_cli, tmp_path):
    out = tmp_path / "export"
    first = ["-c", tiny_cli["cfg"], "-o", f"weights={tiny_cli['base']}", "--output_dir", str(out), "--repeat", "1",
             "--rounds", "1"]
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "export_model.py"), *first], capture_output=True,
                          text=True, cwd=ROOT, timeout=300, env=dict(os.environ, PYTHONWARNINGS="ignore"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    before = tree_state(tmp_path)
    for signum in (signal.SIGTERM, signal.SIGINT):  # the second run proves the first left a usable folder
        code, _, err = interrupt_when(start("export_model.py", *first[:-4], "--repeat", "50", "--rounds", "50"),
                                      lambda text: "matches the executor" in text, signum)
        assert_one_line(code, err, signum)
        assert tree_state(tmp_path) == before  # the old export, byte for byte; no staging folder left
