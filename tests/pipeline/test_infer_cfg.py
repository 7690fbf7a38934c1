"""infer_cfg.yml in PaddleDetection's deploy layout, read back by tools/infer.py."""
import pytest
import yaml

from ppprune.deploy import infer_cfg
from ppprune.data import build_transforms

CFG = {
    "architecture": "YOLOv3", "metric": "VOC", "num_classes": 2,
    "EvalReader": {"image_shape": [3, 64, 64], "dataset": {"dataset_dir": "/nonexistent"},
                   "sample_transforms": [{"Resize": {"target_size": 64, "interp": 2}},
                                         {"NormalizeImage": {"mean": [0.5] * 3, "std": [0.2] * 3, "is_scale": True}},
                                         {"Permute": {}}]},
}


def test_written_in_paddledetection_layout_and_read_back(tmp_path):
    infer_cfg.write(CFG, str(tmp_path), "YOLO", 3)
    raw = yaml.safe_load((tmp_path / "infer_cfg.yml").read_text())
    # the keys PaddleDetection's deploy/python/infer.py reads
    assert raw["arch"] == "YOLO" and raw["min_subgraph_size"] == 3 and raw["draw_threshold"] == 0.5
    assert raw["label_list"] == ["0", "1"] and raw["mode"] == "paddle"
    assert raw["Preprocess"][0] == {"type": "Resize", "target_size": [64, 64], "interp": 2, "keep_ratio": False}
    assert raw["Preprocess"][1]["type"] == "NormalizeImage" and raw["Preprocess"][1]["norm_type"] == "mean_std"
    assert raw["Preprocess"][2] == {"type": "Permute"}
    info, steps = infer_cfg.read(str(tmp_path))
    assert steps == [{"Resize": {"target_size": [64, 64], "interp": 2}},
                     {"NormalizeImage": {"mean": [0.5] * 3, "std": [0.2] * 3, "is_scale": True}}, {"Permute": {}}]
    build_transforms(steps)  # our transforms accept what was read


def test_earlier_layout_still_reads(tmp_path):
    (tmp_path / "infer_cfg.yml").write_text(yaml.safe_dump({"Preprocess": CFG["EvalReader"]["sample_transforms"]}))
    assert infer_cfg.read(str(tmp_path))[1] == CFG["EvalReader"]["sample_transforms"]


def test_unsupported_options_are_refused_by_name(tmp_path):
    (tmp_path / "infer_cfg.yml").write_text(yaml.safe_dump(
        {"Preprocess": [{"type": "Resize", "target_size": [64, 64], "keep_ratio": True}]}))
    with pytest.raises(infer_cfg.InferCfgError, match="keep_ratio"):
        infer_cfg.read(str(tmp_path))
    with pytest.raises(infer_cfg.InferCfgError, match="export the model"):
        infer_cfg.read(str(tmp_path / "missing"))
