"""Output folders: the manifest, what a rerun may replace or remove, file modes, staged exports."""
import json
import os
import pickle

import numpy as np
import pytest

from ppprune import fsutil
from ppprune.outdir import MANIFEST, OutputDir, OutputDirError, recover, swap_in
from tests.helpers.tools import run_in_process

PARAMS = "yolo_block.0.0.0.conv.weights,yolo_block.0.1.0.conv.weights"


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_honour_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        with fsutil.atomic_write(tmp_path / "a.yml") as f:
            f.write("x: 1\n")
        fsutil.write_files_atomically({str(tmp_path / "b.pdparams"): b"1", str(tmp_path / "b.pdopt"): b"2"})
        with open(tmp_path / "plain.txt", "w") as f:
            f.write("x")
    finally:
        os.umask(old)
    for name in ("a.yml", "b.pdparams", "b.pdopt", "plain.txt"):
        assert os.stat(tmp_path / name).st_mode & 0o777 == mode, name


def test_foreign_folder_refused_unless_overwrite_and_only_own_files_removed(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(OutputDirError, match="ppprune did not write.*--overwrite"):
        OutputDir(tmp_path)
    out = OutputDir(tmp_path, overwrite=True).open()
    try:
        with fsutil.atomic_write(tmp_path / "config.yml") as f:
            f.write("a: 1\n")
    finally:
        out.close()
    assert json.load(open(tmp_path / MANIFEST))["files"] == ["config.yml"]
    again = OutputDir(tmp_path)  # ours now: no flag needed
    assert again.remove(["config.yml", "notes.txt"]) == ["config.yml"]
    assert sorted(os.listdir(tmp_path)) == [MANIFEST, "notes.txt"]


def test_inputs_folder_refused(tmp_path):
    (tmp_path / "model_final.pdparams").write_bytes(b"x")
    with pytest.raises(OutputDirError, match="holds the input"):
        OutputDir(tmp_path, inputs=[str(tmp_path / "model_final")])
    with pytest.raises(OutputDirError, match="holds the input"):
        OutputDir(tmp_path.parent, inputs=[str(tmp_path / "model_final")])  # nor a folder above it


def test_leftovers_of_dead_processes_are_removed_live_ones_kept(tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".tmp-model_final.pdparams.{dead.stdout.strip()}.abcd1234"
    live = tmp_path / f".tmp-model_final.pdopt.{os.getppid()}.abcd1234"
    staged = tmp_path / f".export-x.{dead.stdout.strip()}.zz"
    stale.write_bytes(b"x" * 100)
    live.write_bytes(b"x")
    staged.mkdir()
    OutputDir(tmp_path).open().close()
    assert sorted(os.listdir(tmp_path)) == sorted([MANIFEST, live.name])


def test_swap_keeps_user_files_and_recover_puts_back_a_folder_lost_mid_swap(tmp_path):
    final = tmp_path / "export"
    final.mkdir()
    (final / MANIFEST).write_text(json.dumps({"files": ["model.pdmodel"]}))
    (final / "model.pdmodel").write_text("old")
    (final / "mine.txt").write_text("user")
    stage = tmp_path / "stage"
    stage.mkdir()
    (stage / "model.json").write_text("new")
    swap_in(str(stage), str(final), ["model.json"])
    assert sorted(os.listdir(final)) == sorted([MANIFEST, "model.json", "mine.txt"])  # own old file gone
    # a crash between the two renames: the old folder sits under a temp name, put back by the next run
    os.replace(final, tmp_path / f".export-old-export.{os.getpid()}.abc")
    recover(str(final))
    assert (final / "model.json").read_text() == "new"


def test_prune_rerun_with_another_plan_drops_its_old_snapshots(tiny_cli, tmp_path):
    common = ["-c", tiny_cli["cfg"], "-o", f"weights={tiny_cli['base']}", f"save_dir={tmp_path}", "snapshot_iter=1"]
    assert run_in_process("prune", common + ["max_iters=1", "--pruned_params", PARAMS, "--pruned_ratios", "0.3"]) in (0, None)
    folder = tmp_path / "tiny_pruned"
    assert (folder / "1.pdparams").exists()
    (folder / "mine.txt").write_text("user")
    assert run_in_process("prune", common + ["max_iters=0", "--pruned_params", PARAMS, "--pruned_ratios", "0.5"]) in (0, None)
    assert sorted(n for n in os.listdir(folder) if not n.startswith(".")) == [
        "config.yml", "mine.txt", "model_final.pdopt", "model_final.pdparams", "plan.json",
        "prune_report.json"]
    with open(folder / "model_final.pdopt", "rb") as f:
        from ppprune.core.plan import Plan

        assert pickle.load(f)["@meta"]["plan_sha1"] == Plan.load(str(folder / "plan.json")).digest()


def test_export_mismatch_stops_and_leaves_nothing(tiny_cli, tmp_path, monkeypatch, capsys):
    from ppprune import deploy

    real = deploy.run
    monkeypatch.setattr(deploy, "run", lambda predictor, inputs: [o + np.float32(0.5) for o in real(predictor, inputs)])
    out = tmp_path / "export"
    code = run_in_process("export_model", ["-c", tiny_cli["cfg"], "-o", f"weights={tiny_cli['base']}", "--output_dir", str(out),
                                 "--repeat", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "differs from the executor's by up to 0.5;" in err and "nothing was exported" in err, err
    assert os.listdir(tmp_path) == []  # no export folder, no staging folder
