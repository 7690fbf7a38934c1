"""A tiny YOLOv3 config over a tiny generated dataset: what the tool-level tests run on."""
import os

from . import ROOT

DEMO = os.path.join(ROOT, "configs", "yolov3", "yolov3_mobilenet_v1_demo.yml")


def write_config(tmp, name="tiny"):
    """Write `tmp/<name>.yml` (data under tmp/demo, outputs under tmp/out); returns its path."""
    data = tmp / "demo"
    cfg = tmp / f"{name}.yml"
    cfg.write_text(f"""_BASE_: [{DEMO}]
save_dir: {tmp / 'out'}
max_iters: 2
snapshot_iter: 2
demo_data: {{root: {data}, num_train: 8, num_val: 4, image_size: 96, seed: 0}}
# keep_top_k: the 100 best boxes of a barely trained model can all be of one class missing from the 2
# held-out images, and a sensitivity run then stops on a baseline mAP of 0 (2 of 8 trainings did)
YOLOv3Head: {{base_channels: 32, keep_top_k: 1000}}
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
""")
    return str(cfg)
