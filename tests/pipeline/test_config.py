"""Config loading: _BASE_ inheritance, typed overrides, strict keys with suggestions, atomic dumps."""
import os

import pytest
import yaml

from ppprune.config import ConfigError, create, dump_config, load_config
from ppprune.engine.programs import check_config
from ppprune.registry import BACKBONES

from tests.helpers import ROOT


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        yaml.safe_dump(data, f)
    return str(path)


@pytest.fixture
def chain(tmp_path):
    write(tmp_path / "base" / "a.yml", {"lr": 0.1, "model": {"depth": 18, "width": 64, "tags": [1, 2]}, "name": "a"})
    write(tmp_path / "base" / "b.yml", {"model": {"width": 32}, "name": "b"})
    # paths in _BASE_ are relative to the file that names them
    return write(tmp_path / "exp" / "c.yml", {"_BASE_": ["../base/a.yml", "../base/b.yml"], "model": {"depth": 50}})


def test_base_chain_deep_merges_later_files_win(chain):
    cfg = load_config(chain)
    assert cfg["model"] == {"depth": 50, "width": 32, "tags": [1, 2]}
    assert cfg["name"] == "b" and cfg["lr"] == 0.1
    assert "_BASE_" not in cfg


def test_overrides_are_typed_by_yaml(chain):
    cfg = load_config(chain, ["lr=1e-3", "model.tags=[3, 4]", "model.depth=34", "name=xyz"])
    assert cfg["lr"] == pytest.approx(1e-3) and isinstance(cfg["lr"], float)
    assert cfg["model"]["tags"] == [3, 4] and cfg["model"]["depth"] == 34 and cfg["name"] == "xyz"


def test_unknown_override_key_suggests_nearest(chain):
    with pytest.raises(ConfigError, match=r"model\.widht.*Did you mean 'width'"):
        load_config(chain, ["model.widht=8"])
    with pytest.raises(ConfigError, match="Did you mean 'lr'"):
        load_config(chain, ["lrr=0.5"])


def test_circular_base_is_reported(tmp_path):
    write(tmp_path / "x.yml", {"_BASE_": ["y.yml"]})
    write(tmp_path / "y.yml", {"_BASE_": ["x.yml"]})
    with pytest.raises(ConfigError, match="circular"):
        load_config(str(tmp_path / "x.yml"))


def test_dump_round_trips_and_leaves_no_temp_file(chain, tmp_path):
    cfg = load_config(chain, ["model.width=16"])
    out = tmp_path / "out" / "config.yml"
    dump_config(cfg, str(out))
    assert load_config(str(out)) == {**cfg, "filename": str(out)}
    assert os.listdir(out.parent) == ["config.yml"]


def test_create_rejects_unknown_constructor_arg():
    with pytest.raises(ConfigError, match="Did you mean 'scale'"):
        create(BACKBONES, "MobileNetV1", {"MobileNetV1": {"scal": 0.5}})


def test_shipped_yolov3_configs_resolve():
    voc = load_config(os.path.join(ROOT, "configs/yolov3/yolov3_mobilenet_v1_voc.yml"))
    demo = load_config(os.path.join(ROOT, "configs/yolov3/yolov3_mobilenet_v1_demo.yml"))
    assert voc["num_classes"] == 20 and demo["num_classes"] == 5
    assert voc["MobileNetV1"]["scale"] == 1.0 and demo["MobileNetV1"]["scale"] == 0.25
    assert demo["YOLOv3Head"]["anchor_masks"] == voc["YOLOv3Head"]["anchor_masks"]  # inherited
    assert demo["TrainReader"]["dataset"]["name"] == "VOCDataSet"
    check_config(voc)
    check_config(demo)
    with pytest.raises(ConfigError, match="Did you mean 'snapshot_iter'"):
        check_config({**demo, "snapshot_iters": 5})
