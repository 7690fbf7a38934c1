"""tools/prune_inference.py writes through the output-folder guard: symlinks resolved, foreign folders and
damaged manifests refused (nothing touched), a full disk leaves nothing under a final name."""
import os
import subprocess

import paddle
import pytest

from tests.helpers import nets, oracle
from tests.helpers.tools import run_in_process
from tests.tools.test_bad_input import tree_state


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("safety")
    with oracle.ir_guard("pir"):
        main, startup, x, out = oracle.build(nets.shape_queries, [3, 16, 16])
        scope, exe = oracle.init_scope(startup, main)
        with paddle.static.scope_guard(scope):
            paddle.static.save_inference_model(str(root / "src" / "model"), [x], [out], exe, program=main)
    return root


def _prune(model_root, out, *extra):
    return ["--model", str(model_root / "src"), "--pruned_params", "all", "--pruned_ratios", "0.3",
            "--output_dir", str(out), *extra]


def _refused(capfd, root, argv, message):
    before = tree_state(root)
    capfd.readouterr()
    code = run_in_process("prune_inference", argv)
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err
    assert tree_state(root) == before


def test_bad_flag_is_one_line(model, capfd):
    _refused(capfd, model, ["--modle", "x"], "--help")


def test_symlink_to_the_models_folder_is_refused(model, capfd):
    link = model / "link"
    if not link.exists():
        os.symlink(model / "src", link)
    _refused(capfd, model, _prune(model, link), "holds the input")


def test_foreign_folder_refused_then_written_with_overwrite(model, capfd):
    other = model / "other"
    other.mkdir(exist_ok=True)
    (other / "model.json").write_text("mine")
    _refused(capfd, model, _prune(model, other), "ppprune did not write")
    assert run_in_process("prune_inference", _prune(model, other, "--overwrite")) in (0, None)
    predictor = __import__("ppprune.deploy", fromlist=["x"]).create_predictor(str(other / "model"))
    assert predictor.input_names == ["image"]


def test_manifest_naming_a_file_outside_is_refused(model, capfd):
    victim = model / "victim.pdparams"
    victim.write_bytes(b"keep")
    out = model / "out"
    assert run_in_process("prune_inference", _prune(model, out)) in (0, None)
    (out / ".ppprune-manifest.json").write_text('{"files": ["../victim.pdparams", "model.json"]}')
    _refused(capfd, model, _prune(model, out), "is damaged")
    assert victim.read_bytes() == b"keep"


def test_symlinked_output_folder_is_written_in_its_target(model):
    target, link = model / "target", model / "tlink"
    target.mkdir(exist_ok=True)
    if not link.exists():
        os.symlink(target, link)
    assert run_in_process("prune_inference", _prune(model, link)) in (0, None)
    assert os.path.islink(link) and os.path.isfile(target / "model.pdiparams")
    assert not [n for n in os.listdir(model) if n.startswith((".tmp-", ".export-"))]


def test_full_disk_leaves_nothing_and_says_so_in_one_line(model, capfd, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("a small tmpfs needs root to mount")
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24k", "tmpfs", str(mount)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        capfd.readouterr()
        code = run_in_process("prune_inference", _prune(model, mount / "out"))
        err = capfd.readouterr().err
        lines = [line for line in err.splitlines() if line.startswith("error:")]
        assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
        assert os.listdir(mount) == []  # no output folder, no staging folder, no truncated file
    finally:
        subprocess.run(["umount", str(mount)])
