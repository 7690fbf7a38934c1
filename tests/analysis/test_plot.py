"""The pictures: a few params give curves, many a heatmap (chosen ratios marked); recipes one point each."""
import struct

import pytest

pytest.importorskip("matplotlib", reason="the plots need matplotlib (pip install matplotlib)")

from ppprune.analysis import plot  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def png_size(path):
    """(width, height) from the PNG header: the file is a real image, not just named like one."""
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == PNG and head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def sens(n):
    return {f"conv{i}_weights": {0.1: 0.01 * i, 0.3: 0.02 * i, 0.5: 0.05 * i} for i in range(n)}


@pytest.mark.parametrize("n,heatmap", [(3, False), (10, False), (11, True), (47, True)])
def test_curves_for_few_params_heatmap_for_many(tmp_path, monkeypatch, n, heatmap):
    drawn = []
    real = plot._heatmap
    monkeypatch.setattr(plot, "_heatmap", lambda *a: drawn.append(a) or real(*a))
    chosen = {"conv1_weights": 0.2, "conv2_weights": 0.5}
    path = plot.plot_sensitivities(sens(n), str(tmp_path / "s.png"), chosen=chosen)
    width, height = png_size(path)
    assert bool(drawn) == heatmap and width > 100 and height > 100
    if heatmap:  # one row per param: the picture grows with them
        assert height > 0.15 * 120 * n


def test_recipes_picture(tmp_path):
    points = [("uniform + L1", -0.5, [0.71, 0.74]), ("sensitive + L1", -0.49, [0.75, 0.77]), ("control", 0.0, [0.8])]
    width, height = png_size(plot.plot_recipes(points, str(tmp_path / "r.png"), "FLOPs change", "mAP"))
    assert width > 100 and height > 100
