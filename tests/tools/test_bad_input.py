"""Bad input, table-driven, over every tool and the public API. Each case must answer with exit code 2 and
exactly one line naming the problem (the public API: its documented exception), never a traceback, and
leave every file it could touch (config, dataset, weights, earlier outputs) byte for byte as it was.

The tools run in-process (`runner.run`, exactly what tools/*.py call) so that fifty cases cost seconds;
a few run as real subprocesses too."""
import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys

import numpy as np
import paddle
import pytest

from tests.helpers import ROOT, nets, oracle
from ppprune.core.errors import MissingDependency, PruneError
from tests.helpers.tools import run_in_process

pytestmark = pytest.mark.heavy(185)  # seconds, about: heavy modules start first

PARAMS = "yolo_block.0.0.0.conv.weights,yolo_block.0.0.1.conv.weights"


def _subprocess(name, *args):
    env = dict(os.environ, PYTHONWARNINGS="ignore", GLOG_minloglevel="2")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", name), *args], capture_output=True,
                          text=True, env=env, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def world(tiny_cli):
    """The shared tiny model, plus a pruned run and its export in their own folders, and broken inputs."""
    bad = tiny_cli["tmp"] / "bad"
    bad.mkdir()
    out = bad / "out"
    cfg, base = tiny_cli["cfg"], tiny_cli["base"]
    _subprocess("prune.py", "-c", cfg, "-o", f"weights={base}", f"save_dir={out}", "max_iters=1", "snapshot_iter=1",
                "--pruned_params", PARAMS, "--pruned_ratios", "0.25")
    pruned = out / "tiny_pruned"
    _subprocess("export_model.py", "-c", cfg, "-o", f"weights={pruned / 'model_final'}", f"save_dir={out}", "--repeat", "1")

    edited = bad / "edited"  # a copy whose plan.json lost other channels (same count)
    edited.mkdir()
    for n in ("model_final.pdparams", "model_final.pdopt"):
        shutil.copy(pruned / n, edited / n)
    text = (pruned / "plan.json").read_text()
    plan = json.loads(text)
    entry = plan["entries"][0]
    entry["pruned"] = sorted(set(range(entry["size"])) - set(entry["pruned"]))[: len(entry["pruned"])]
    (edited / "plan.json").write_text(json.dumps(plan))
    truncated_plan = bad / "truncplan"
    truncated_plan.mkdir()
    for n in ("model_final.pdparams", "model_final.pdopt"):
        shutil.copy(pruned / n, truncated_plan / n)
    (truncated_plan / "plan.json").write_text(text[: len(text) // 2])

    files = bad / "files"
    files.mkdir()
    raw = open(base + ".pdparams", "rb").read()
    (files / "truncated.pdparams").write_bytes(raw[: len(raw) // 3])
    (files / "list.pdparams").write_bytes(pickle.dumps([1, 2, 3]))
    (files / "sens_truncated.pkl").write_bytes(pickle.dumps({"a": {0.1: 0.1}})[:10])
    (files / "sens_text.pkl").write_text("not a pickle\n")
    (files / "sens_nonnumeric.pkl").write_bytes(pickle.dumps({"yolo_block.0.0.0.conv.weights": {0.1: "abc"}}))
    (files / "bad_yaml.yml").write_text("max_iters: 3\n  snapshot_iter: [1, 2\n")
    (files / "unknown_arch.yml").write_text(f"_BASE_: [{cfg}]\narchitecture: YOLOv4\n")
    for name, text in BAD_CONFIGS.items():  # values of the wrong type, each on top of the tiny config
        (files / f"{name}.yml").write_text(text if text.startswith("_BASE_") else f"_BASE_: [{cfg}]\n{text}")
    arrays = pickle.loads(raw)
    (files / "foreign.pdparams").write_bytes(pickle.dumps({"conv_0.w_0": np.zeros((2, 2), np.float32)}))
    (files / "partial.pdparams").write_bytes(pickle.dumps({k: v for k, v in arrays.items() if "yolo_output" not in k}))
    _damaged_exports(out / "tiny_export", files)
    user = bad / "user"  # folders of the user's, where the tools would write with -o save_dir={user}
    for sub in ("", "tiny", "tiny_pruned"):
        (user / sub).mkdir(exist_ok=True)
        (user / sub / "notes.txt").write_text("mine\n")
    (bad / "no_images").mkdir()
    return {"cfg": cfg, "base": base, "out": out, "pruned": pruned, "export": out / "tiny_export", "edited": edited,
            "truncplan": truncated_plan, "files": files, "user": user, "bad": bad, "tmp": tiny_cli["tmp"],
            "image": str(sorted((tiny_cli["data"] / "JPEGImages").iterdir())[0])}


BAD_CONFIGS = {
    "base_int": "_BASE_: 5\n", "base_list_of_int": "_BASE_: [5]\n", "base_mapping": "_BASE_: {a: b.yml}\n",
    "train_reader_int": "TrainReader: 5\n", "eval_reader_list": "EvalReader: [1, 2]\n",
    "schedulers_list": "LearningRate: {base_lr: 0.001, schedulers: [1, 2]}\n",
    "schedule_int": "LearningRate: {base_lr: 0.001, schedulers: {LinearWarmup: 5}}\n",
    "backbone_int": "MobileNetV1: 5\n", "transforms_int": "EvalReader: {sample_transforms: 5}\n",
    "transform_two_keys": "EvalReader: {sample_transforms: [{Resize: {}, Permute: {}}]}\n",
    "architecture_list": "architecture: [YOLOv3]\n", "no_architecture": "architecture: null\n",
    "dataset_int": "EvalReader: {dataset: 5}\n", "demo_data_list": "demo_data: [1]\n",
    "anchor_mask_range": "YOLOv3Head: {anchor_masks: [[0, 1, 20], [3, 4, 5], [6, 7, 8]]}\n",
    "anchor_masks_levels": "YOLOv3Head: {anchor_masks: [[0, 1, 2]]}\n",
    "anchor_negative": "YOLOv3Head: {anchors: [[-10, 13], [16, 30], [33, 23], [30, 61], [62, 45], [59, 119], [116, 90], "
                       "[156, 198], [373, 326]]}\n",
    "feature_strides": "MobileNetV1: {feature_strides: [3]}\n", "save_dir_list": "save_dir: [1]\n",
    "transform_unknown_arg": "EvalReader: {sample_transforms: [{Resize: {target_siz: 96}}]}\n",
    "transform_missing_arg": "EvalReader: {sample_transforms: [{Resize: {interp: 2}}]}\n",
    "piecewise_unordered": "LearningRate: {base_lr: 0.001, schedulers: {PiecewiseDecay: {milestones: [5, 2]}}}\n",
    "piecewise_values_count": "LearningRate: {base_lr: 0.001, schedulers: {PiecewiseDecay: {milestones: [5, 8], "
                              "values: [0.01, 0.001]}}}\n",
}


def _damaged_exports(export, files):
    """Copies of the export whose model or weights file is truncated or garbage (and a legacy one)."""
    for name, victim, cut in (("json_truncated", "model.json", 0.5), ("params_truncated", "model.pdiparams", -100),
                              ("params_garbage", "model.pdiparams", None), ("json_empty", "model.json", 0.0)):
        folder = files / name
        folder.mkdir()
        for n in ("model.json", "model.pdiparams"):
            shutil.copy(export / n, folder / n)
        raw = (folder / victim).read_bytes()
        # a cut inside the last tensor's data (-100 bytes) is what Paddle itself reads without complaint
        kept = len(raw) + cut if isinstance(cut, int) else int(len(raw) * cut) if cut is not None else 0
        (folder / victim).write_bytes(raw[:kept] if cut is not None else b"\x00garbage" * 50)
    legacy = files / "pdmodel_garbage"
    legacy.mkdir()
    (legacy / "model.pdmodel").write_bytes(b"\x00garbage" * 50)
    shutil.copy(export / "model.pdiparams", legacy / "model.pdiparams")


_HASHES = {}


def tree_state(root):
    """{path: sha1} of every file under `root` (hashes are cached by inode, size and mtime)."""
    state = {}
    for folder, dirs, names in os.walk(root):
        for d in dirs:
            state[os.path.join(folder, d)] = "dir"
        for n in names:
            path = os.path.join(folder, n)
            st = os.stat(path)
            key = (path, st.st_ino, st.st_size, st.st_mtime_ns)
            if key not in _HASHES:
                _HASHES[key] = hashlib.sha1(open(path, "rb").read()).hexdigest()
            state[path] = _HASHES[key]
    return state


# (id, tool, argv with {placeholders} from the world fixture, what the error line must say)
NO_DATA = ["demo_data=", "TrainReader.dataset.dataset_dir=/nonexistent/voc", "EvalReader.dataset.dataset_dir=/nonexistent/voc"]
CASES = [
    # -- train
    ("train-max_iters-abc", "train", ["-o", "max_iters=abc"], "max_iters takes an integer"),
    ("train-max_iters-negative", "train", ["-o", "max_iters=-1", "save_dir={out}"], "max_iters is -1"),
    ("train-max_iters-zero", "train", ["-o", "max_iters=0", "save_dir={out}"], "max_iters is 0"),
    ("train-snapshot_iter-zero", "train", ["-o", "snapshot_iter=0", "save_dir={out}"], "snapshot_iter is 0"),
    ("train-base_lr-negative", "train", ["-o", "LearningRate.base_lr=-0.1", "save_dir={out}"], "base_lr is -0.1"),
    ("train-batch_size-zero", "train", ["-o", "TrainReader.batch_size=0", "save_dir={out}"], "batch_size is 0"),
    ("train-use_gpu-word", "train", ["-o", "use_gpu=maybe"], "use_gpu takes true or false"),
    ("train-list-for-number", "train", ["-o", "max_iters=[1,2]"], "max_iters takes an integer"),
    ("train-override-no-equals", "train", ["-o", "max_iters"], "must look like key.sub=value"),
    ("train-unknown-key", "train", ["-o", "max_iter=3"], "Did you mean 'max_iters'"),
    ("train-weights-truncated", "train", ["-o", "weights={files}/truncated.pdparams", "save_dir={out}"], "truncated or not a pickle"),
    ("train-weights-list", "train", ["-o", "weights={files}/list.pdparams", "save_dir={out}"], "holds a pickled list"),
    ("train-weights-missing", "train", ["-o", "weights={bad}/none/model", "save_dir={out}"], "no weights at"),
    ("train-weights-url", "train", ["-o", "weights=https://example.com/m.pdparams"], "URL"),
    ("train-resume-missing", "train", ["-r", "{bad}/none/5", "-o", "save_dir={out}"], "no weights at"),
    ("train-yaml-syntax", "train", ["-c", "{files}/bad_yaml.yml"], "YAML syntax error at line 2"),
    ("train-unknown-architecture", "train", ["-c", "{files}/unknown_arch.yml", "-o", "save_dir={out}"], "unknown architecture 'YOLOv4'"),
    ("train-config-typo", "train", ["-c", "configs/yolov3/yolov3_mobilenet_v1_dem.yml"], "yolov3_mobilenet_v1_demo.yml"),
    ("train-into-user-folder", "train", ["-o", "save_dir={user}", "weights={base}"], "ppprune did not write"),
    ("train-into-input-folder", "train", ["-o", "weights={base}"], "holds the input"),
    ("train-no-config", "train", ["-c"], "expected one argument"),
    ("train-unknown-flag", "train", ["--evaluate"], "unrecognized arguments: --evaluate"),
    ("train-missing-dataset", "train", ["-o", *NO_DATA, "save_dir={out}"], "VOC dataset directory not found"),
    # -- prune
    ("prune-round_to-zero", "prune", ["-o", "weights={base}", "--pruned_params", PARAMS, "--pruned_ratios", "0.2", "--round_to", "0"], "--round_to 0"),
    ("prune-round_to-negative", "prune", ["-o", "weights={base}", "--pruned_params", PARAMS, "--pruned_ratios", "0.2", "--round_to", "-3"], "--round_to -3"),
    ("prune-round_to-word", "prune", ["--round_to", "eight"], "invalid int value: 'eight'"),
    ("prune-ratio-word", "prune", ["-o", "weights={base}", "--pruned_params", PARAMS, "--pruned_ratios", "0.2,a"], "'a' is not a number"),
    ("prune-ratio-one", "prune", ["-o", "weights={base}", "--pruned_params", PARAMS, "--pruned_ratios", "1.0"], "outside [0, 1)"),
    ("prune-unknown-param", "prune", ["-o", "weights={base}", "save_dir={out}", "--pruned_params", "yolo_block.0.0.0.conv.weight", "--pruned_ratios", "0.2"], "Did you mean 'yolo_block.0.0.0.conv.weights'"),
    ("prune-nothing", "prune", ["-o", "weights={base}"], "nothing to prune"),
    ("prune-target-and-ratios", "prune", ["-o", "weights={base}", "--target_flops", "0.3", "--pruned_ratios", "0.2"],
     "--target_flops chooses the ratios"),
    ("prune-target-out-of-range", "prune", ["-o", "weights={base}", "--target_flops", "1.5"], "pruned_flops=1.5"),
    ("prune-flops-tolerance-out-of-range", "prune", ["--target_flops", "0.3", "--flops_tolerance", "1.5"],
     "1.5 is not a share in [0, 1)"),
    ("prune-sens-truncated", "prune", ["-o", "weights={base}", "save_dir={out}", "--target_flops", "0.3", "-s", "{files}/sens_truncated.pkl"], "not a readable sensitivities file"),
    ("prune-sens-not-pickle", "prune", ["-o", "weights={base}", "save_dir={out}", "--target_flops", "0.3", "-s", "{files}/sens_text.pkl"], "not a readable sensitivities file"),
    ("prune-sens-nonnumeric", "prune", ["-o", "weights={base}", "save_dir={out}", "--target_flops", "0.3", "-s", "{files}/sens_nonnumeric.pkl"], "must be finite numbers"),
    ("prune-missing-dataset", "prune", ["-o", "weights={base}", "save_dir={out}", *NO_DATA, "--pruned_params", PARAMS, "--pruned_ratios", "0.5"], "VOC dataset directory not found"),
    ("prune-max_iters-abc", "prune", ["-o", "weights={base}", "save_dir={out}", "max_iters=abc", "--pruned_params", PARAMS, "--pruned_ratios", "0.5"], "max_iters takes an integer"),
    ("prune-resume-edited-plan", "prune", ["-r", "{edited}/model_final", "-o", "save_dir={out}"], "not the one it was saved with"),
    ("prune-resume-truncated-plan", "prune", ["-r", "{truncplan}/model_final", "-o", "save_dir={out}"], "not a readable plan"),
    ("prune-into-input-folder", "prune", ["-o", "weights={pruned}/model_final", "save_dir={out}", "--pruned_params", PARAMS, "--pruned_ratios", "0.1"], "holds the input"),
    ("prune-into-user-folder", "prune", ["-o", "weights={base}", "save_dir={user}", "--pruned_params", PARAMS, "--pruned_ratios", "0.1"], "ppprune did not write"),
    # -- eval
    ("eval-edited-plan", "eval", ["-o", "weights={edited}/model_final"], "not the one it was saved with"),
    ("eval-truncated-plan", "eval", ["-o", "weights={truncplan}/model_final"], "not a readable plan"),
    ("eval-weights-truncated", "eval", ["-o", "weights={files}/truncated.pdparams"], "truncated or not a pickle"),
    ("eval-round_to-zero", "eval", ["-o", "weights={base}", "--pruned_params", PARAMS, "--pruned_ratios", "0.2", "--round_to", "0"], "--round_to 0"),
    ("eval-no-weights", "eval", [], "no weights to load"),
    # -- export
    ("export-into-user-folder", "export_model", ["-o", "weights={pruned}/model_final", "--output_dir", "{user}"], "ppprune did not write"),
    ("export-into-weights-folder", "export_model", ["-o", "weights={pruned}/model_final", "--output_dir", "{pruned}"], "holds the input"),
    ("export-above-weights-folder", "export_model", ["-o", "weights={pruned}/model_final", "--output_dir", "{out}"], "holds the input"),
    ("export-edited-plan", "export_model", ["-o", "weights={edited}/model_final", "--output_dir", "{export}"], "not the one it was saved with"),
    ("export-weights-list", "export_model", ["-o", "weights={files}/list.pdparams", "--output_dir", "{export}"], "holds a pickled list"),
    # -- sensitive
    ("sensitive-ratios-word", "sensitive", ["-o", "weights={base}", "save_dir={out}", "--pruned_ratios", "abc"], "'abc' is not a number"),
    ("sensitive-ratios-range", "sensitive", ["-o", "weights={base}", "save_dir={out}", "--pruned_ratios", "0.2,1.5"], "outside (0, 1)"),
    ("sensitive-shard-range", "sensitive", ["-o", "weights={base}", "save_dir={out}", "--shard", "3/2"], "--shard '3/2'"),
    ("sensitive-shard-word", "sensitive", ["-o", "weights={base}", "save_dir={out}", "--shard", "x"], "--shard 'x'"),
    ("sensitive-file-truncated", "sensitive", ["-o", "weights={base}", "save_dir={out}", "-s", "{files}/sens_truncated.pkl"], "not a readable sensitivities file"),
    ("sensitive-file-not-pickle", "sensitive", ["-o", "weights={base}", "save_dir={out}", "-s", "{files}/sens_text.pkl"], "not a readable sensitivities file"),
    ("sensitive-file-nonnumeric", "sensitive", ["-o", "weights={base}", "save_dir={out}", "-s", "{files}/sens_nonnumeric.pkl"], "must be finite numbers"),
    ("sensitive-merge-truncated", "sensitive", ["-o", "weights={base}", "save_dir={out}", "--merge", "{files}/sens_truncated.pkl"], "not a readable sensitivities file"),
    ("sensitive-eval_batches-zero", "sensitive", ["-o", "weights={base}", "save_dir={out}", "--eval_batches", "0"], "--eval_batches 0"),
    ("sensitive-unknown-param", "sensitive", ["-o", "weights={base}", "save_dir={out}", "--pruned_params", "nope_weights"], "unknown parameter 'nope_weights'"),
    ("sensitive-missing-dataset", "sensitive", ["-o", "weights={base}", "save_dir={out}", *NO_DATA], "VOC dataset directory not found"),
    ("sensitive-into-input-folder", "sensitive", ["-o", "weights={bad}/out/tiny_sensitivity/w", "save_dir={out}"], None),
    # -- infer
    ("infer-no-export", "infer", ["--model_dir", "{bad}/none", "--infer_img", "{image}"], "no infer_cfg.yml"),
    ("infer-image-missing", "infer", ["--model_dir", "{export}", "--infer_img", "{bad}/none.jpg", "--output_dir", "{bad}/infer"], "does not exist"),
    ("infer-no-images", "infer", ["--model_dir", "{export}", "--infer_dir", "{bad}/no_images", "--output_dir", "{bad}/infer"], "no .jpg/.png images"),
    ("infer-into-model-folder", "infer", ["--model_dir", "{export}", "--infer_img", "{image}", "--output_dir", "{export}"], "holds the input"),
    ("infer-into-user-folder", "infer", ["--model_dir", "{export}", "--infer_img", "{image}", "--output_dir", "{user}"], "ppprune did not write"),
    ("infer-nothing-given", "infer", ["--model_dir", "{export}"], "give --infer_img or --infer_dir"),
    ("infer-threads-word", "infer", ["--model_dir", "{export}", "--threads", "two"], "invalid int value: 'two'"),
    # -- config values of the wrong type (files written by the world fixture from BAD_CONFIGS)
    ("config-base-int", "train", ["-c", "{files}/base_int.yml"], "_BASE_ is 5; it must be a path or a list of paths"),
    ("config-base-list-of-int", "train", ["-c", "{files}/base_list_of_int.yml"], "_BASE_ is [5]"),
    ("config-base-mapping", "eval", ["-c", "{files}/base_mapping.yml"], "_BASE_ is {'a': 'b.yml'}"),
    ("config-train-reader-int", "train", ["-c", "{files}/train_reader_int.yml", "-o", "save_dir={out}"], "TrainReader is 5; it must be a mapping"),
    ("config-train-reader-int-prune", "prune", ["-c", "{files}/train_reader_int.yml", "-o", "weights={base}", "save_dir={out}", "--pruned_params", PARAMS, "--pruned_ratios", "0.2"], "TrainReader is 5"),
    ("config-eval-reader-list", "eval", ["-c", "{files}/eval_reader_list.yml", "-o", "weights={base}"], "EvalReader is [1, 2]"),
    ("config-eval-reader-list-export", "export_model", ["-c", "{files}/eval_reader_list.yml", "-o", "weights={pruned}/model_final", "--output_dir", "{export}"], "EvalReader is [1, 2]"),
    ("config-eval-reader-list-sensitive", "sensitive", ["-c", "{files}/eval_reader_list.yml", "-o", "weights={base}", "save_dir={out}"], "EvalReader is [1, 2]"),
    ("config-schedulers-list", "train", ["-c", "{files}/schedulers_list.yml", "-o", "save_dir={out}"], "LearningRate.schedulers is [1, 2]; it must be a mapping"),
    ("config-schedule-int", "train", ["-c", "{files}/schedule_int.yml", "-o", "save_dir={out}"], "LearningRate.schedulers.LinearWarmup is 5"),
    ("config-backbone-int", "train", ["-c", "{files}/backbone_int.yml", "-o", "save_dir={out}"], "MobileNetV1 is 5; it must be a mapping"),
    ("config-transforms-int", "eval", ["-c", "{files}/transforms_int.yml", "-o", "weights={base}"], "EvalReader.sample_transforms is 5; it must be a list"),
    ("config-transform-two-keys", "eval", ["-c", "{files}/transform_two_keys.yml", "-o", "weights={base}"], "each transform is one 'Name: {args}' entry"),
    ("config-architecture-list", "train", ["-c", "{files}/architecture_list.yml"], "architecture is ['YOLOv3']; it must be a string"),
    ("config-no-architecture", "eval", ["-c", "{files}/no_architecture.yml", "-o", "weights={base}"], "architecture is None"),
    ("config-dataset-int", "eval", ["-c", "{files}/dataset_int.yml", "-o", "weights={base}"], "EvalReader.dataset is 5; it must be a mapping"),
    ("config-demo-data-list", "train", ["-c", "{files}/demo_data_list.yml", "-o", "save_dir={out}"], "demo_data is [1]"),
    ("config-num_classes-zero", "train", ["-o", "num_classes=0", "save_dir={out}"], "num_classes is 0; it must be an integer >= 1"),
    ("config-num_classes-negative", "eval", ["-o", "weights={base}", "num_classes=-2"], "num_classes is -2"),
    ("config-num_classes-word", "train", ["-o", "num_classes=abc", "save_dir={out}"], "num_classes takes an integer"),
    ("config-weights-number", "train", ["-o", "weights=5", "save_dir={out}"], "weights is 5; it must be a string"),
    ("config-save_dir-list", "train", ["-c", "{files}/save_dir_list.yml"], "save_dir is [1]; it must be a string"),
    ("config-image_shape-zero", "eval", ["-o", "weights={base}", "EvalReader.image_shape=[3,0,96]"], "EvalReader.image_shape[1] is 0"),
    ("config-num_classes-not-the-datasets", "train", ["-o", "num_classes=3", "save_dir={out}"],
     "num_classes is 3 but the TrainReader dataset has 5 classes (trouser, bag, sneaker, shirt, ankle_boot); set "
     "num_classes: 5 in the config (or -o num_classes=5)"),
    ("config-transform-unknown-arg", "eval", ["-c", "{files}/transform_unknown_arg.yml", "-o", "weights={base}"],
     "unknown key 'target_siz' in the config of Resize. Did you mean 'target_size'?"),
    ("config-transform-missing-arg", "eval", ["-c", "{files}/transform_missing_arg.yml", "-o", "weights={base}"],
     "bad arguments for transform Resize: Resize.__init__() missing 1 required positional argument: 'target_size'"),
    ("config-piecewise-unordered", "train", ["-c", "{files}/piecewise_unordered.yml", "-o", "save_dir={out}"],
     "LearningRate.schedulers.PiecewiseDecay.milestones is [5, 2]; they must be increasing iteration numbers"),
    ("config-piecewise-values-count", "train", ["-c", "{files}/piecewise_values_count.yml", "-o", "save_dir={out}"],
     "PiecewiseDecay.values is [0.01, 0.001]; give 3 learning rates for 2 milestones"),
    ("config-image_shape-short", "eval", ["-o", "weights={base}", "EvalReader.image_shape=[96,96]"], "EvalReader.image_shape is [96, 96]; it must be a list of 3 items"),
    # -- architecture numbers, range-checked like the trainer's
    ("arch-scale-negative", "train", ["-o", "MobileNetV1.scale=-1", "save_dir={out}"], "MobileNetV1.scale is -1.0; it must be a number > 0"),
    ("arch-scale-zero", "prune", ["-o", "weights={base}", "save_dir={out}", "MobileNetV1.scale=0", "--pruned_params", PARAMS, "--pruned_ratios", "0.2"], "MobileNetV1.scale is 0.0"),
    ("arch-in_channels-zero", "train", ["-o", "MobileNetV1.in_channels=0", "save_dir={out}"], "MobileNetV1.in_channels is 0"),
    ("arch-feature_strides", "train", ["-c", "{files}/feature_strides.yml", "-o", "save_dir={out}"], "MobileNetV1.feature_strides is [3]"),
    ("arch-base_channels-zero", "train", ["-o", "YOLOv3Head.base_channels=0", "save_dir={out}"], "YOLOv3Head.base_channels is 0; it must be an integer >= 4"),
    ("arch-nms_threshold-range", "eval", ["-o", "weights={base}", "YOLOv3Head.nms_threshold=1.5"], "YOLOv3Head.nms_threshold is 1.5"),
    ("arch-ignore_thresh-negative", "train", ["-o", "YOLOv3Head.ignore_thresh=-0.1", "save_dir={out}"], "YOLOv3Head.ignore_thresh is -0.1"),
    ("arch-keep_top_k-zero", "eval", ["-o", "weights={base}", "YOLOv3Head.keep_top_k=0"], "YOLOv3Head.keep_top_k is 0"),
    ("arch-anchor_mask-range", "train", ["-c", "{files}/anchor_mask_range.yml", "-o", "save_dir={out}"], "YOLOv3Head.anchor_masks[0][2] is 20; it must be an integer >= 0 and <= 8"),
    ("arch-anchor_masks-levels", "export_model", ["-c", "{files}/anchor_masks_levels.yml", "-o", "weights={base}", "--output_dir", "{export}"], "it must list 3 masks"),
    ("arch-anchor-negative", "train", ["-c", "{files}/anchor_negative.yml", "-o", "save_dir={out}"], "YOLOv3Head.anchors[0][0] is -10"),
    # -- weights that do not cover the model
    ("weights-match-nothing-prune", "prune", ["-o", "weights={files}/foreign.pdparams", "save_dir={out}", "--pruned_params", PARAMS, "--pruned_ratios", "0.2"],
     "holds none of the model's 241 parameters (missing: "),
    ("weights-match-nothing-eval", "eval", ["-o", "weights={files}/foreign.pdparams"], "the file has conv_0.w_0"),
    ("weights-match-nothing-export", "export_model", ["-o", "weights={files}/foreign.pdparams", "--output_dir", "{export}"], "holds none of the model's"),
    ("weights-match-nothing-sensitive", "sensitive", ["-o", "weights={files}/foreign.pdparams", "save_dir={bad}/sens"], "holds none of the model's"),
    ("weights-partial-train", "train", ["-o", "weights={files}/partial.pdparams", "save_dir={out}"], "(missing: yolo_output."),
    ("weights-partial-eval", "eval", ["-o", "weights={files}/partial.pdparams"], "-o pretrain_weights= for weights that cover part"),
    ("pretrain-match-nothing-train", "train", ["-o", "pretrain_weights={files}/foreign.pdparams", "save_dir={out}"], "holds none of the model's"),
    # -- export's counts
    ("export-rounds-zero", "export_model", ["-o", "weights={pruned}/model_final", "--output_dir", "{export}", "--rounds", "0"], "argument --rounds: 0 is not a positive integer"),
    ("export-threads-negative", "export_model", ["-o", "weights={pruned}/model_final", "--output_dir", "{export}", "--threads", "-3"], "argument --threads: -3 is not a positive integer"),
    ("export-repeat-zero", "export_model", ["-o", "weights={pruned}/model_final", "--output_dir", "{export}", "--repeat", "0"], "argument --repeat: 0"),
    ("export-name-too-long", "export_model", ["-o", "weights={pruned}/model_final", "--output_dir", "{bad}/" + "x" * 250, "--repeat", "1", "--rounds", "1"],
     "File name too long (ENAMETOOLONG); shorten the file or folder names"),
    # -- damaged inference models (the loader names the file)
    ("model-json-truncated", "prune_inference", ["--model", "{files}/json_truncated/model", "--print_params"], "json_truncated/model.json' is not valid JSON"),
    ("model-json-empty", "prune_inference", ["--model", "{files}/json_empty", "--print_params"], "json_empty/model.json' is empty"),
    ("model-params-truncated", "prune_inference", ["--model", "{files}/params_truncated/model", "--print_params"], "params_truncated/model.pdiparams' is truncated"),
    ("model-params-garbage", "prune_inference", ["--model", "{files}/params_garbage/model", "--print_params"], "params_garbage/model.pdiparams'"),
    ("model-pdmodel-garbage", "prune_inference", ["--model", "{files}/pdmodel_garbage/model", "--print_params"], "pdmodel_garbage/model.pdmodel'"),
    # -- a config naming an evaluator that does not exist: the key and the known metrics
    ("eval-unknown-metric", "eval", ["-o", "weights={base}", "metric=mAPP"],
     "config key 'metric': unknown metric 'mAPP'. Registered metrics: COCO, VOC, accuracy"),
    ("train-unknown-metric", "train", ["--eval", "-o", "save_dir={out}", "metric=VOCC"], "Did you mean 'VOC'?"),
]


def _argv(tool, args, world):
    args = [a.format(**world) for a in args]
    if tool not in ("infer", "prune_inference") and "-c" not in args:
        args = ["-c", world["cfg"]] + args
    return args


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_tool_refuses(world, case, capfd, monkeypatch):
    name, tool, args, message = case
    if name == "sensitive-into-input-folder":  # weights inside the folder the tool would write
        folder = world["out"] / "tiny_sensitivity"
        folder.mkdir(exist_ok=True)
        for ext in (".pdparams", ".pdopt"):
            shutil.copy(world["base"] + ext, folder / ("w" + ext))
        message = "holds the input"
    monkeypatch.chdir(ROOT)
    before = tree_state(world["tmp"])
    capfd.readouterr()
    code = run_in_process(tool, _argv(tool, args, world))
    out, err = capfd.readouterr()
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2, out + err
    assert len(errors) == 1 and message in errors[0], err
    assert "Traceback" not in out + err
    assert tree_state(world["tmp"]) == before  # nothing written, replaced or removed


def test_real_entry_points_answer_in_one_line(world):
    """The same answers from tools/*.py as separate processes (what a user runs)."""
    env = dict(os.environ, PYTHONWARNINGS="ignore", GLOG_minloglevel="2")
    by_id = {c[0]: c for c in CASES}
    for name, tool, args, message in (CASES[0], by_id["train-yaml-syntax"], by_id["eval-truncated-plan"]):
        before = tree_state(world["tmp"])
        script = os.path.join(ROOT, "tools", ("export_model" if tool == "export_model" else tool) + ".py")
        proc = subprocess.run([sys.executable, script, *_argv(tool, args, world)], capture_output=True, text=True,
                              env=env, timeout=600, cwd=ROOT)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], proc.stderr
        assert tree_state(world["tmp"]) == before


# -- the public API ---------------------------------------------------------------------------------------------
def _seed(ir="pir"):
    with oracle.ir_guard(ir):
        main, startup, x, out = oracle.build(nets.residual, [3, 8, 8])
        scope, exe = oracle.init_scope(startup, main)
    return main, startup, scope


def _scope_state(scope, program):
    return {n: np.array(scope.find_var(n).get_tensor()).tobytes() for n in oracle.persistable_names(program)
            if scope.find_var(n) is not None and scope.find_var(n).get_tensor()._is_initialized()}


def api_lazy_only_graph():
    from ppprune.prune import Pruner

    main, _, scope = _seed()
    return Pruner().prune, (main, scope, ["conv4_weights"], [0.5]), {"lazy": True, "only_graph": True}, scope, main


def api_pruned_scope():
    from ppprune.prune import Pruner

    main, _, scope = _seed()
    Pruner().prune(main, scope, ["conv4_weights"], [0.5])  # the scope now holds the pruned shapes
    return Pruner().prune, (main, scope, ["conv4_weights"], [0.5]), {}, scope, main


def api_uninitialised():
    from ppprune.prune import Pruner

    main, _, _ = _seed()
    scope = paddle.static.Scope()
    for n in oracle.persistable_names(main):
        scope.var(n)  # exists, never initialised
    return Pruner().prune, (main, scope, ["conv4_weights"], [0.5]), {}, None, main


def api_ratio_one():
    from ppprune.prune import Pruner

    main, _, scope = _seed()
    return Pruner().prune, (main, scope, ["conv4_weights"], [1.0]), {}, scope, main


def api_unknown_param():
    from ppprune.prune import Pruner

    main, _, scope = _seed()
    return Pruner().prune, (main, scope, ["conv9_weights"], [0.5]), {}, scope, main


def api_sensitivity_nan():
    from ppprune.prune import sensitivity

    main, _, scope = _seed()
    return sensitivity, (main, None, ["conv4_weights"], lambda p: float("nan")), {"scope": scope}, scope, main


def api_sensitivity_non_number():
    from ppprune.prune import sensitivity

    main, _, scope = _seed()
    return sensitivity, (main, None, ["conv4_weights"], lambda p: "good"), {"scope": scope}, scope, main


def _dygraph(shape):
    from paddle.vision.models import mobilenet_v1

    import ppprune

    paddle.disable_static()
    return ppprune.L1NormFilterPruner, (mobilenet_v1(scale=0.25, num_classes=10), shape), {}, None, None


def api_dygraph_no_batch_dim():
    return _dygraph([3, 32, 32])


def api_dygraph_wrong_channels():
    return _dygraph([1, 4, 32, 32])


def api_plan_truncated(tmp):
    from ppprune.core.plan import Plan

    (tmp / "plan.json").write_text('{"entries": [{"param": ')
    return Plan.load, (str(tmp / "plan.json"),), {}, None, None


def api_sensitivities_truncated(tmp):
    from ppprune.prune import load_sensitivities

    (tmp / "s.pkl").write_bytes(pickle.dumps({"a": {0.1: 0.2}})[:7])
    return load_sensitivities, (str(tmp / "s.pkl"),), {}, None, None


def api_ratios_for_flops_round_to(tmp):
    from ppprune.prune import ratios_for_flops

    main, _, scope = _seed()
    return ratios_for_flops, (main, {"conv4_weights": {0.5: 0.1}}, 0.2), {"round_to": 0, "scope": scope}, scope, main


def api_demo_without_skimage(tmp):
    from ppprune.data import ensure_demo_voc

    return ensure_demo_voc, (str(tmp / "demo"),), {"num_train": 2, "num_val": 1, "image_size": 64}, None, None


# The public API's bad input, by what it is given: the static pruner, sensitivities, a dygraph Layer,
# files written by someone else, an optional dependency that is missing.
API_CASES = [
    # prune
    ("prune-lazy-only_graph", api_lazy_only_graph, PruneError, "changes nothing|would change nothing"),
    ("prune-already-pruned-scope", api_pruned_scope, PruneError, "pruned already"),
    ("prune-uninitialised-param", api_uninitialised, PruneError, "never initialised"),
    ("prune-ratio-one", api_ratio_one, PruneError, "outside"),
    ("prune-unknown-param", api_unknown_param, PruneError, "unknown parameter"),
    # sensitivity
    ("sensitivity-nan", api_sensitivity_nan, PruneError, "finite number"),
    ("sensitivity-non-number", api_sensitivity_non_number, PruneError, "must return one number"),
    ("ratios_for_flops-round_to", api_ratios_for_flops_round_to, PruneError, "positive integer"),
    # dygraph
    ("dygraph-no-batch-dim", api_dygraph_no_batch_dim, PruneError, "batch dimension"),
    ("dygraph-wrong-channels", api_dygraph_wrong_channels, PruneError, "4 input channels, but it takes 3"),
    # files
    ("plan-load-truncated", api_plan_truncated, PruneError, "not a readable plan"),
    ("load_sensitivities-truncated", api_sensitivities_truncated, PruneError, "not a readable sensitivities file"),
    # data
    ("demo-data-without-skimage", api_demo_without_skimage, MissingDependency, r"ppprune\[data\]"),
]


@pytest.mark.parametrize("case", API_CASES, ids=[c[0] for c in API_CASES])
def test_api_refuses(case, tmp_path, monkeypatch):
    name, make, error, message = case
    if name == "demo-data-without-skimage":
        monkeypatch.setitem(sys.modules, "skimage", None)  # as if scikit-image were not installed
        monkeypatch.setitem(sys.modules, "skimage.data", None)
    try:
        fn, args, kwargs, scope, program = make(tmp_path) if make.__code__.co_argcount else make()
        before = _scope_state(scope, program) if scope is not None else None
        with pytest.raises(error, match=message) as info:
            fn(*args, **kwargs)
        assert "\n" not in str(info.value)
        if scope is not None:
            assert _scope_state(scope, program) == before  # nothing half-pruned
        if name == "demo-data-without-skimage":
            assert os.listdir(tmp_path) == []  # not even a temp folder is left
    finally:
        paddle.enable_static()


# -- weights that may cover part of the model, or none ----------------------------------------------------------
@pytest.mark.parametrize("weights, said", [("pretrain_weights={files}/partial.pdparams", "kept their initial values"),
                                           (None, "no weights given (-o weights= or pretrain_weights=): pruning")])
def test_prune_from_partial_or_no_weights_says_so(world, weights, said, capfd, monkeypatch, tmp_path):
    """pretrain_weights (e.g. a backbone) may cover part of the model, no weights at all is allowed (training
    after pruning, as PaddleDetection): both run, and say what the model starts from."""
    monkeypatch.chdir(ROOT)
    args = ["-o", f"save_dir={tmp_path}", "max_iters=0", *([weights] if weights else []), "--pruned_params", PARAMS,
            "--pruned_ratios", "0.25"]
    capfd.readouterr()
    assert run_in_process("prune", _argv("prune", args, world)) == 0
    out = capfd.readouterr().out
    assert said in out
    assert os.path.isfile(tmp_path / "tiny_pruned" / "model_final.pdparams")


# -- the disk itself refuses: full, read-only, a mount point (tmpfs mounts; root only) ----------------------------
@pytest.fixture
def mounted(tmp_path):
    """mount(options) -> a fresh tmpfs folder; unmounted after the test."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a small tmpfs needs root")
    points = []

    def mount(options):
        point = tmp_path / f"mnt{len(points)}"
        point.mkdir()
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True, text=True)
        if proc.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
        points.append(point)
        return point

    yield mount
    for point in points:
        subprocess.run(["umount", str(point)], check=False)


DISK_CASES = [  # (id, mount options, tool, argv with {disk}, what the line says)
    ("prune-disk-full", "size=1m", "prune", ["-o", "weights={base}", "save_dir={disk}", "max_iters=0", "--pruned_params", PARAMS,
                                             "--pruned_ratios", "0.25"], "No space left on device (ENOSPC); free some space"),
    ("export-disk-full", "size=1m", "export_model", ["-o", "weights={pruned}/model_final", "--output_dir", "{disk}/export",
                                                     "--repeat", "1", "--rounds", "1"], "No space left on device (ENOSPC)"),
    ("prune-inference-disk-full", "size=256k", "prune_inference", ["--model", "{export}/model", "--output_dir", "{disk}/out",
                                                                    "--pruned_params", "all", "--pruned_ratios", "0.3"],
     "is the disk full? Nothing was written to the output folder"),  # paddle's save truncates silently: read back
    ("train-read-only", "ro,size=1m", "train", ["-o", "save_dir={disk}"], "Read-only file system"),
    ("export-into-mount-point", "size=64m", "export_model", ["-o", "weights={pruned}/model_final", "--output_dir", "{disk}",
                                                             "--repeat", "1", "--rounds", "1"], "(EBUSY); it is in use or a mount point"),
]


@pytest.mark.parametrize("case", DISK_CASES, ids=[c[0] for c in DISK_CASES])
def test_disk_errors_are_one_line(world, mounted, case, capfd, monkeypatch):
    name, options, tool, args, message = case
    disk = mounted(options)
    monkeypatch.chdir(ROOT)
    before = tree_state(world["tmp"])
    capfd.readouterr()
    code = run_in_process(tool, _argv(tool, args, {**world, "disk": disk}))
    out, err = capfd.readouterr()
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2, out + err
    assert len(errors) == 1 and message in errors[0], err
    assert str(disk) in errors[0] and "Traceback" not in out + err  # the line names the path
    assert tree_state(world["tmp"]) == before
    left = [os.path.join(d, n) for d, _, names in os.walk(disk) for n in names]
    assert not [p for p in left if os.path.basename(p).startswith((".tmp-", ".export-")) or p.endswith((".pdparams", ".pdopt"))], left


def test_infer_keeps_each_images_name_and_refuses_a_corrupt_one(world, capfd, tmp_path):
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    source = Image.open(world["image"]).convert("RGB")
    for name in ("a.jpg", "a.png", "IMG.JPG"):
        source.save(images / name)
    out = tmp_path / "drawn"
    assert run_in_process("infer", ["--model_dir", str(world["export"]), "--infer_dir", str(images),
                                    "--output_dir", str(out)]) in (0, None)
    assert sorted(n for n in os.listdir(out) if not n.startswith(".")) == ["IMG.JPG", "a.jpg", "a.png"]
    assert Image.open(out / "a.png").format == "PNG" and Image.open(out / "IMG.JPG").format == "JPEG"

    raw = (images / "a.jpg").read_bytes()
    (images / "b.jpg").write_bytes(raw[: len(raw) // 2])  # truncated
    before = tree_state(tmp_path)
    capfd.readouterr()
    code = run_in_process("infer", ["--model_dir", str(world["export"]), "--infer_dir", str(images),
                                    "--output_dir", str(tmp_path / "drawn2")])
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(lines) == 1 and "b.jpg" in lines[0] and "Traceback" not in err, err
    assert tree_state(tmp_path) == before
