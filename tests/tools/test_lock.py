"""One run per output folder: two runs started together on one folder (one wins, the other is refused in
one line and the folder is wholly the winner's); a lock left by a dead process is taken over, a live or
another host's one refused with nothing changed, and so is a damaged one (kept, unless --overwrite);
SIGKILL at chosen points of prune_inference.py, infer.py and sensitive.py --merge leaves each file old or
new (never torn), and the same command then succeeds (taking over the killed run's lock); SIGINT or SIGTERM
there ends the run in one line with the lock released and each file old or new."""
import json
import os
import shutil
import signal
import socket
import subprocess
import time

import numpy as np
import pytest

from ppprune import lock
from ppprune.core.plan import Plan
from ppprune.outdir import MANIFEST
from ppprune.prune import load_sensitivities, merge_sensitive
from tests.helpers.tools import run_in_process
from tests.pipeline.test_faults import KILLED, tool
from tests.pipeline.test_signals import MESSAGE, start
from tests.tools.test_bad_input import tree_state
from tests.tools.test_output_safety import _prune, model  # noqa: F401 - the tiny inference model fixture

pytestmark = pytest.mark.heavy(90)  # seconds, about: heavy modules start first

PARAMS = "yolo_block.0.0.0.conv.weights,yolo_block.0.1.0.conv.weights"


def _errors(err):
    return [line for line in err.splitlines() if line.startswith("error:")]


def _holder(folder, timeout=300):
    """The pid in `folder`'s lock file, once a run has written it."""
    path, deadline = lock.path_for(folder), time.time() + timeout
    while time.time() < deadline:
        try:
            return json.loads(open(path).read())["pid"]
        except (OSError, ValueError):
            time.sleep(0.02)
    raise AssertionError(f"no lock on {folder}")


def test_two_runs_on_one_folder_one_wins_and_the_folder_is_wholly_its(model, tmp_path):  # noqa: F811
    from ppprune.deploy import exported

    out = tmp_path / "out"
    ratios = ("0.3", "0.6")  # tell the runs apart: each plan prunes its own share
    procs = {r: start("prune_inference.py", *_prune(model, out, "--pruned_ratios", r)) for r in ratios}
    holder = _holder(out)
    os.kill(holder, signal.SIGSTOP)  # the winner holds the lock until the other has made its own attempt
    try:
        (win,) = [r for r in ratios if procs[r].pid == holder]
        (lose,) = [r for r in ratios if r != win]
        _, err = procs[lose].communicate(timeout=300)
    finally:
        os.kill(holder, signal.SIGCONT)
    assert procs[lose].returncode == 2 and "Traceback" not in err and len(err.splitlines()) == 1, err
    assert f"pid {holder}" in err and lock.path_for(out) in err and "being written by another" in err, err
    stdout, err = procs[win].communicate(timeout=300)
    assert procs[win].returncode == 0, stdout + err

    plan = Plan.load(out / "plan.json")
    assert plan.entries and {e.ratio for e in plan.entries} == {float(win)}
    saved = exported.load(str(out / "model"))  # the weights are the winner's: pruned to its plan's shapes
    assert plan.shapes and {n: list(np.array(saved.scope.find_var(n).get_tensor()).shape) for n in plan.shapes} == \
        plan.shapes
    listed = set(json.load(open(out / MANIFEST))["files"])
    assert listed == set(os.listdir(out)) - {MANIFEST}  # the manifest names exactly what is there
    assert sorted(os.listdir(tmp_path)) == ["out"]  # lock released, no staging folder left


def _write_lock(folder, pid, host=socket.gethostname()):
    with open(lock.path_for(folder), "w") as f:
        json.dump({"pid": pid, "host": host}, f)


@pytest.fixture
def dead_pid():
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_dead_processs_lock_is_taken_over(model, tmp_path, capfd, dead_pid):  # noqa: F811
    out = tmp_path / "out"
    _write_lock(out, dead_pid)
    capfd.readouterr()
    code = run_in_process("prune_inference", _prune(model, out))
    err = capfd.readouterr().err
    assert code in (0, None), err
    assert f"note: taking over the lock of '{out}' left by pid {dead_pid}" in err and not _errors(err), err
    assert (out / "model.json").exists() and (out / "plan.json").exists()
    assert not os.path.exists(lock.path_for(out))


@pytest.mark.parametrize("holder", ["live", "other-host"])
def test_a_live_lock_refuses_and_changes_nothing(model, tmp_path, capfd, holder):  # noqa: F811
    out = tmp_path / "out"
    assert run_in_process("prune_inference", _prune(model, out)) in (0, None)  # an earlier result to keep
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        _write_lock(out, sleeper.pid, "elsewhere" if holder == "other-host" else socket.gethostname())
        before = tree_state(tmp_path), tree_state(model)
        capfd.readouterr()
        code = run_in_process("prune_inference", _prune(model, out, "--pruned_ratios", "0.5"))
        err = capfd.readouterr().err
        assert (tree_state(tmp_path), tree_state(model)) == before  # lock file, output and input as they were
    finally:
        sleeper.kill()
        sleeper.wait()
    (line,) = _errors(err)
    assert code == 2 and "Traceback" not in err
    assert f"pid {sleeper.pid}" in line and lock.path_for(out) in line and "--output_dir <another folder>" in line
    if holder == "other-host":  # it cannot be checked from here: the user says it is over
        assert "host 'elsewhere'" in line and "pass --overwrite" in line
        assert run_in_process("prune_inference", _prune(model, out, "--overwrite")) in (0, None)
        assert "held by pid" in capfd.readouterr().err and not os.path.exists(lock.path_for(out))


# -- damaged lock files: the lock API in process -------------------------------------------------------------
_ME = {"host": socket.gethostname()}
DAMAGED = {"empty": b"", "cut short": b'{"pid": 12', "not a mapping": b"[1, 2]", "no pid": b'{"host": "h"}',
           "pid true": json.dumps({**_ME, "pid": True}).encode(), "pid -1": json.dumps({**_ME, "pid": -1}).encode(),
           "pid 0": json.dumps({**_ME, "pid": 0}).encode(), "pid too large": json.dumps({**_ME, "pid": 2**70}).encode(),
           "start not a number": json.dumps({**_ME, "pid": os.getppid(), "start": "x"}).encode(),
           "nested too deep": b"[" * 100000, "not text": b"\xff\xfe"}


@pytest.fixture
def no_retry(monkeypatch):
    monkeypatch.setattr(lock, "ATTEMPTS", 1)  # the content is final: no window for its writer to finish


@pytest.mark.parametrize("raw", DAMAGED.values(), ids=DAMAGED)
def test_a_damaged_lock_is_refused_in_one_line_and_kept(tmp_path, no_retry, raw):
    from ppprune.outdir import OutputDir, OutputDirError

    out, path = tmp_path / "out", lock.path_for(tmp_path / "out")
    open(path, "wb").write(raw)
    with pytest.raises(OutputDirError) as e:  # as a tool meets it
        OutputDir(out, flag="--output_dir <another folder>").lock()
    line = str(e.value)
    assert "\n" not in line and line.startswith(f"the lock file '{path}' of output folder '{out}' is ")
    assert line.endswith(f"remove it if no other run is writing to '{out}', or pass --overwrite, or write "
                         "elsewhere with --output_dir <another folder>"), line
    assert open(path, "rb").read() == raw and os.listdir(tmp_path) == [os.path.basename(path)]


def test_overwrite_takes_a_damaged_lock_over(tmp_path, no_retry, capsys):
    out = tmp_path / "out"
    open(lock.path_for(out), "wb").write(b"")
    lock.acquire(out, take_foreign=True)
    try:
        assert capsys.readouterr().err == f"note: taking over the damaged lock of '{out}' (--overwrite)\n"
        assert json.load(open(lock.path_for(out)))["pid"] == os.getpid()
    finally:
        lock.release(out)
    assert os.listdir(tmp_path) == []


def test_a_lock_written_within_the_retry_window_is_judged_by_its_content(tmp_path):
    import threading

    out = tmp_path / "out"
    open(lock.path_for(out), "wb").write(b"")  # as a run leaves it between creating and writing it
    writer = threading.Timer(0.2, _write_lock, (out, os.getppid()))  # a live process of this host
    writer.start()
    try:
        with pytest.raises(lock.LockError, match=f"being written by another ppprune run \\(pid {os.getppid()} "):
            lock.acquire(out)
    finally:
        writer.join()


def test_a_folder_in_the_locks_place_is_refused_and_kept(tmp_path):
    out, path = tmp_path / "out", lock.path_for(tmp_path / "out")
    os.mkdir(path)
    with pytest.raises(lock.LockError) as e:
        lock.acquire(out)
    assert str(e.value) == (f"the lock file '{path}' of output folder '{out}' cannot be read (Is a directory): "
                            f"remove it if no other run is writing to '{out}'")
    assert os.path.isdir(path) and os.listdir(path) == []


# -- SIGKILL at chosen points (PPPRUNE_KILL_AFTER_WRITES, see tests/pipeline/test_faults.py) -----------------
def _files(folder):
    """{name: bytes} of the folder's files (not the manifest)."""
    return {n: (folder / n).read_bytes() for n in os.listdir(folder) if n != MANIFEST}


def _rerun_takes_over(tool_name, argv, folder, capfd):
    capfd.readouterr()
    code = run_in_process(tool_name, argv)
    err = capfd.readouterr().err
    assert code in (0, None), err
    assert "note: taking over the lock" in err and "no longer running" in err, err  # the killed run's
    assert not os.path.exists(lock.path_for(folder))
    assert not [n for n in os.listdir(folder.parent) if n.startswith((".tmp-", ".export-"))]  # its leftovers gone


def test_prune_inference_killed_before_and_after_its_swap(model, tmp_path, capfd):  # noqa: F811
    from concurrent.futures import ThreadPoolExecutor

    ref = tmp_path / "ref"
    assert run_in_process("prune_inference", _prune(model, ref, "--pruned_ratios", "0.5")) in (0, None)
    new = _files(ref)
    # writes: plan.json (in the staging folder) | killed: the old folder stays; then the swap | killed: the new
    points = {1: tmp_path / "before" / "out", 2: tmp_path / "after" / "out"}
    for out in points.values():
        assert run_in_process("prune_inference", _prune(model, out)) in (0, None)
    old = _files(points[1])
    assert old != new
    with ThreadPoolExecutor(len(points)) as pool:  # independent processes: killed side by side
        killed = {k: pool.submit(tool, "prune_inference.py", *_prune(model, out, "--pruned_ratios", "0.5"), kill_after=k)
                  for k, out in points.items()}
    for kill_after, expected in ((1, old), (2, new)):
        out = points[kill_after]
        code, log = killed[kill_after].result()
        assert code == KILLED, log
        assert _files(out) == expected and os.path.exists(lock.path_for(out))
        _rerun_takes_over("prune_inference", _prune(model, out, "--pruned_ratios", "0.5"), out, capfd)
        assert _files(out) == new


@pytest.fixture(scope="module")
def detector(tiny_cli, tmp_path_factory):
    """The tiny detector's export and a folder of three images."""
    root = tmp_path_factory.mktemp("lock_infer")
    assert run_in_process("export_model", ["-c", tiny_cli["cfg"], "-o", f"weights={tiny_cli['base']}", "--output_dir",
                                           str(root / "export"), "--repeat", "1", "--rounds", "1"]) in (0, None)
    images = root / "images"
    images.mkdir()
    for path in sorted((tiny_cli["data"] / "JPEGImages").iterdir())[:3]:
        shutil.copy(path, images / path.name)
    return root


def test_infer_killed_mid_folder_leaves_each_image_old_or_new(detector, tmp_path, capfd):
    out, ref = tmp_path / "drawn", tmp_path / "ref"
    common = ["--model_dir", str(detector / "export"), "--infer_dir", str(detector / "images")]
    argv = [*common, "--output_dir", str(out), "--draw_threshold", "0"]  # every box drawn
    assert run_in_process("infer", [*common, "--output_dir", str(out), "--draw_threshold", "1.01"]) in (0, None)
    assert run_in_process("infer", [*common, "--output_dir", str(ref), "--draw_threshold", "0"]) in (0, None)
    old, new = _files(out), _files(ref)
    assert old.keys() == new.keys() and all(old[n] != new[n] for n in old)
    code, log = tool("infer.py", *argv, kill_after=1)  # killed after its first picture
    assert code == KILLED, log
    now = _files(out)
    assert now.keys() == old.keys() and sorted(now[n] == new[n] for n in now) == [False, False, True]
    assert all(now[n] in (old[n], new[n]) for n in now)  # never a torn picture
    _rerun_takes_over("infer", argv, out, capfd)
    assert _files(out) == new


def _two_shards(tiny_cli, tmp_path):
    """Two sensitivity shards measured into one folder; returns (folder, shard paths, the merge command)."""
    args = ["-c", tiny_cli["cfg"], "-o", f"weights={tiny_cli['base']}", f"save_dir={tmp_path}",
            "VOCMetric.overlap_thresh=0.01", "YOLOv3Head.conf_thresh=0.0", "--split", "eval", "--pruned_params",
            PARAMS, "--pruned_ratios", "0.5", "--eval_batches", "1"]
    folder = tmp_path / "tiny_sensitivity"
    shards = [str(folder / f"sensitivities.shard{i}of2.pkl") for i in range(2)]
    for i in range(2):
        assert run_in_process("sensitive", [*args, "--shard", f"{i}/2"]) in (0, None)
    return folder, shards, [*args[:7], "--merge", *shards]


def test_sensitive_merge_killed_leaves_no_torn_results(tiny_cli, tmp_path, capfd):
    folder, shards, merge = _two_shards(tiny_cli, tmp_path)
    expected = merge_sensitive(shards)
    assert set(expected) == set(PARAMS.split(","))
    # writes: config.yml, the results file emptied for the new record | killed
    code, log = tool("sensitive.py", *merge, kill_after=2)
    assert code == KILLED, log
    assert load_sensitivities(str(folder / "sensitivities.pkl")) == {}  # nothing torn, nothing of another record
    assert not os.path.exists(folder / "sensitivities.png")
    _rerun_takes_over("sensitive", merge, folder, capfd)
    assert load_sensitivities(str(folder / "sensitivities.pkl")) == expected
    assert os.path.getsize(folder / "sensitivities.png") > 0


# -- SIGINT / SIGTERM at the same points: one line, exit 128 + signal, lock released -----------------------------
def _interrupted(tool_name, argv, kill_after, signum, folder):
    name = signal.Signals(signum).name
    code, log = tool(tool_name, *argv, kill_after=kill_after, kill_signal=name)
    assert code == 128 + signum and "Traceback" not in log and MESSAGE.format(name) in log.splitlines(), log
    assert not os.path.exists(lock.path_for(folder))
    assert not [n for n in os.listdir(folder.parent) if n.startswith((".tmp-", ".export-"))]


def test_prune_inference_interrupted_in_staging_keeps_the_old_folder(model, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    assert run_in_process("prune_inference", _prune(model, out)) in (0, None)
    old = _files(out)
    argv = _prune(model, out, "--pruned_ratios", "0.5")
    _interrupted("prune_inference.py", argv, 1, signal.SIGTERM, out)  # after plan.json, in the staging folder
    assert _files(out) == old
    assert run_in_process("prune_inference", argv) in (0, None)
    assert {e.ratio for e in Plan.load(out / "plan.json").entries} == {0.5}


def test_infer_interrupted_mid_folder_leaves_each_image_old_or_new(detector, tmp_path):
    out, ref = tmp_path / "drawn", tmp_path / "ref"
    common = ["--model_dir", str(detector / "export"), "--infer_dir", str(detector / "images")]
    argv = [*common, "--output_dir", str(out), "--draw_threshold", "0"]
    assert run_in_process("infer", [*common, "--output_dir", str(out), "--draw_threshold", "1.01"]) in (0, None)
    assert run_in_process("infer", [*common, "--output_dir", str(ref), "--draw_threshold", "0"]) in (0, None)
    old, new = _files(out), _files(ref)
    _interrupted("infer.py", argv, 1, signal.SIGINT, out)  # Ctrl-C after its first picture
    now = _files(out)
    assert now.keys() == old.keys() and sorted(now[n] == new[n] for n in now) == [False, False, True]
    assert all(now[n] in (old[n], new[n]) for n in now)
    assert run_in_process("infer", argv) in (0, None) and _files(out) == new


def test_sensitive_merge_interrupted_leaves_no_torn_results(tiny_cli, tmp_path):
    folder, shards, merge = _two_shards(tiny_cli, tmp_path)
    _interrupted("sensitive.py", merge, 2, signal.SIGTERM, folder)  # after the results file was emptied
    assert load_sensitivities(str(folder / "sensitivities.pkl")) == {}
    assert not os.path.exists(folder / "sensitivities.png")
    assert run_in_process("sensitive", merge) in (0, None)
    assert load_sensitivities(str(folder / "sensitivities.pkl")) == merge_sensitive(shards)
