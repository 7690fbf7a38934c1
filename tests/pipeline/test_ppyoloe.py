"""PP-YOLOE: PaddleDetection's state-dict names and shapes, and an eval forward giving [N, 6] boxes."""
import ast
import os

import numpy as np
import paddle

import ppprune.models  # noqa: F401 - registers PPYOLOE
from ppprune.config import create
from ppprune.registry import ARCHITECTURES

REFERENCE = os.path.join(os.path.dirname(__file__), "fixtures", "ppyoloe_crn_s_300e_coco.state_dict.txt")


def _reference():
    rows = [line.rstrip("\n").split("\t") for line in open(REFERENCE) if not line.startswith("#")]
    return {name: ast.literal_eval(shape) for name, shape in rows}


def test_ppyoloe_s_names_shapes_and_eval_forward():
    cfg = {"architecture": "PPYOLOE", "num_classes": 80, "width_mult": 0.5, "depth_mult": 0.33,
           "CustomCSPPAN": {"out_channels": [768, 384, 192]}}
    main, startup = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(main, startup), paddle.utils.unique_name.guard():
        model = create(ARCHITECTURES, "PPYOLOE", cfg)
        model.eval()
        feeds = {n: paddle.static.data(n, s, d) for n, s, d in model.input_specs("eval", [3, 64, 64])}
        out = model(feeds, mode="eval")
    assert {p.name: list(p.shape) for p in model.state_dict().values()} == _reference()
    exe, scope = paddle.static.Executor(paddle.CPUPlace()), paddle.static.Scope()
    exe.run(startup, scope=scope)
    bbox, num = exe.run(main, feed={"image": np.random.rand(2, 3, 64, 64).astype("float32"),
                                    "scale_factor": np.ones((2, 2), "float32")},
                        fetch_list=[out["bbox"], out["bbox_num"]], scope=scope, return_numpy=False)
    bbox, num = np.array(bbox), np.array(num)
    assert num.shape == (2,) and bbox.shape == (num.sum(), 6)
