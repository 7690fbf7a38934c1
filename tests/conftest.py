import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import paddle  # noqa: E402

paddle.enable_static()


@pytest.fixture(autouse=True)
def _static_mode():
    """Most tests build static programs; a dygraph test switching modes must not leak into the next."""
    paddle.enable_static()
    yield
    paddle.enable_static()


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_CONFIG = """_BASE_: [{demo}]
save_dir: {out}
max_iters: 2
snapshot_iter: 2
demo_data: {{root: {data}, num_train: 8, num_val: 4, image_size: 96, seed: 0}}
YOLOv3Head: {{base_channels: 32}}
TrainReader:
  dataset: {{dataset_dir: {data}}}
  batch_size: 2
  num_workers: 0
  batch_transforms:
    - BatchRandomResize: {{target_sizes: [96], random_interp: false}}
    - NormalizeBox: {{}}
    - PadBox: {{num_max_boxes: 20}}
    - BboxXYXY2XYWH: {{}}
    - NormalizeImage: {{mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], is_scale: true}}
    - Permute: {{}}
EvalReader:
  dataset: {{dataset_dir: {data}}}
  image_shape: [3, 96, 96]
  batch_size: 2
  num_workers: 0
  sample_transforms:
    - Resize: {{target_size: 96, interp: 2}}
    - NormalizeImage: {{mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], is_scale: true}}
    - Permute: {{}}
"""


@pytest.fixture(scope="session")
def tiny_cli(tmp_path_factory):
    """A tiny config over a tiny generated dataset, and a 'baseline' checkpoint trained by tools/train.py,
    shared by the CLI, bad-input and fault tests."""
    import subprocess

    tmp = tmp_path_factory.mktemp("cli")
    cfg = tmp / "tiny.yml"
    cfg.write_text(TINY_CONFIG.format(demo=os.path.join(ROOT, "configs", "yolov3", "yolov3_mobilenet_v1_demo.yml"),
                                      out=tmp / "out", data=tmp / "demo"))
    env = dict(os.environ, PYTHONWARNINGS="ignore", GLOG_minloglevel="2")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train.py"), "-c", str(cfg)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    base = tmp / "out" / "tiny" / "model_final"
    assert os.path.isfile(str(base) + ".pdparams")
    return {"cfg": str(cfg), "base": str(base), "out": tmp / "out", "data": tmp / "demo", "tmp": tmp}
