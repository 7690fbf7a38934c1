"""The deploy backend seam: a second backend registered by name is all timing and tools/infer.py need.

`Counting` is a real backend wrapping Paddle Inference that offers the `Predictor` protocol and nothing
else, so a caller reaching for Paddle's own predictor methods would fail here, and it logs each run, so
the tests see which predictor ran when."""
import functools
import os
import sys

import numpy as np
import pytest

from ppprune import deploy
from tests.helpers.tools import run_in_process

RUNS = []  # (backend label, number of feeds given) of every run, in order
RETURNED = []  # the outputs of every run


@deploy.BACKENDS.register(name="counting")
class Counting:
    def __init__(self, prefix, threads=1, use_gpu=False, onednn=True):
        self._inner = deploy.BACKENDS.build("paddle_inference", prefix, threads=threads, use_gpu=use_gpu, onednn=onednn)
        self.input_names, self.output_names = self._inner.input_names, self._inner.output_names
        self.label = prefix

    def run(self, feed):
        RUNS.append((self.label, len(feed)))
        RETURNED.append(self._inner.run(feed))
        return RETURNED[-1]


@pytest.fixture(scope="module")
def exported(tiny_cli, tmp_path_factory):
    """The tiny detector exported by tools/export_model.py, and one eval input of it."""
    from ppprune.models.base import Detector

    out = tmp_path_factory.mktemp("deploy_backends") / "export"
    code = run_in_process("export_model", ["-c", tiny_cli["cfg"], "-o", f"weights={tiny_cli['base']}", "--output_dir",
                                           str(out), "--rounds", "1", "--repeat", "1"])
    assert code in (0, None)
    image = sorted((tiny_cli["data"] / "JPEGImages").iterdir())[0]
    c, h, w = deploy.infer_cfg.read(str(out))[0]["image_shape"]
    inputs = Detector.eval_inputs(np.random.RandomState(0).rand(c, h, w).astype("float32"), (h, w))
    return {"dir": out, "prefix": str(out / "model"), "image": image, "inputs": inputs}


@pytest.fixture(autouse=True)
def fresh_log():
    RUNS.clear()
    RETURNED.clear()


def test_a_registered_backend_is_created_by_name_and_runs_the_same_model(exported):
    predictor = deploy.create_predictor(exported["prefix"], backend="counting")
    assert isinstance(predictor, Counting) and predictor.input_names == ["image", "im_shape"]
    reference = deploy.create_predictor(exported["prefix"])
    assert isinstance(predictor, deploy.Predictor) and isinstance(reference, deploy.Predictor)
    got = deploy.run(predictor, exported["inputs"])
    assert len(got) == len(predictor.output_names) == 2
    for g, r in zip(got, reference.run(exported["inputs"])):
        np.testing.assert_array_equal(g, r)
    assert RUNS == [(exported["prefix"], 3)]  # the extra scale_factor feed is passed on, for the backend to ignore
    with pytest.raises(ValueError, match="Did you mean 'counting'"):
        deploy.create_predictor(exported["prefix"], backend="countin")


def test_timing_runs_any_predictor_in_interleaved_rounds(exported):
    a = deploy.create_predictor(exported["prefix"], backend="counting")
    b = deploy.create_predictor(exported["prefix"], backend="counting")
    b.label = "b"
    assert deploy.latency_ms(a, exported["inputs"], warmup=2, repeat=3) > 0
    assert [label for label, _ in RUNS] == [a.label] * 5
    RUNS.clear()
    stats, (before, after) = deploy.compare_latency({"a": a, "b": b}, exported["inputs"], rounds=2, repeat=3, warmup=1)
    # warm-up of each, then per round: a's two untimed runs (the other model evicted its caches) and its
    # timed ones, then b's
    assert [label for label, _ in RUNS] == [a.label, "b"] + ([a.label] * (2 + 3) + ["b"] * (2 + 3)) * 2
    assert set(stats) == {"a", "b"} and all(0 < s["min"] <= s["median"] <= s["max"] for s in stats.values())


def test_infer_tool_runs_through_a_registered_backend(exported, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(deploy, "create_predictor", functools.partial(deploy.create_predictor, backend="counting"))
    code = run_in_process("infer", ["--model_dir", str(exported["dir"]), "--infer_img", str(exported["image"]),
                                    "--output_dir", str(tmp_path / "infer"), "--draw_threshold", "0.0"])
    assert code in (0, None) and len(RUNS) == 1
    # at draw_threshold 0 it counts every box of the outputs the backend returned (0 if the tiny model finds none)
    (boxes,) = deploy.detections(RETURNED[0])
    assert f"{exported['image']}: {len(boxes)} boxes" in capsys.readouterr().out
    assert [n for n in os.listdir(tmp_path / "infer") if n.startswith(exported["image"].stem)]


def test_detections_split_per_image_and_drop_the_nothing_detected_rows():
    bbox = np.array([[0, 0.9, 1, 1, 5, 5], [2, 0.4, 0, 0, 3, 3], [-1, 0, 0, 0, 0, 0]], "float32")
    first, second = deploy.detections([bbox, np.array([2, 1], "int32")], num_images=2)
    np.testing.assert_array_equal(first, bbox[:2])
    assert second.shape == (0, 6)


def test_a_backend_is_one_module_in_the_package_imported_when_named(exported, tmp_path, monkeypatch):
    (tmp_path / "one_file_backend.py").write_text(
        "from ppprune.deploy.paddle_inference import open_predictor\n"
        "from ppprune.deploy.predictor import BACKENDS\n\n"
        "BACKENDS.register(open_predictor, name='one_file_backend')\n")
    monkeypatch.setattr(deploy, "__path__", [*deploy.__path__, str(tmp_path)])
    monkeypatch.delitem(sys.modules, "ppprune.deploy.one_file_backend", raising=False)
    assert "one_file_backend" not in deploy.BACKENDS
    predictor = deploy.create_predictor(exported["prefix"], backend="one_file_backend")
    assert "ppprune.deploy.one_file_backend" in sys.modules
    assert predictor.run(exported["inputs"])[0].shape[1] == 6
