"""The tools on each detector family's demo config (a few generated images, 2 iterations), in this process:
train once, then list the convs, prune to half the FLOPs with one ratio and fine-tune, evaluate, export with
NMS in PaddleDetection's deploy layout, and detect with the exported model; and the main job (tools/demo.py)
on the family's config."""
import json
import os
import re

import pytest

from ppprune import deploy
from tests.helpers import ROOT
from tests.helpers.tools import run_in_process
from tests.pipeline import test_picodet
from tests.pipeline.test_ppyoloe_prune import CONVS as PPYOLOE_CONVS

pytestmark = pytest.mark.heavy(90)  # seconds, about: heavy modules start first

# PicoDet's PaddleDetection state dict names each output conv a second time (head_cls0 = head_cls_list.0)
PICODET_CONVS = [n for n, s in test_picodet._reference() if len(s) == 4 and not re.match(r"head\.head_(cls|reg)\d\.", n)]
FAMILIES = {
    # size: the input side (PicoDet's deepest stride is 64); narrow: what keeps the build and the run small;
    # output: the convs that write the head's outputs, listed as not prunable
    "ppyoloe": dict(config="configs/ppyoloe/ppyoloe_crn_demo.yml", size=96, arch="YOLO", convs=PPYOLOE_CONVS,
                    first="backbone.stem.conv1.conv.weight", output=lambda n: ".pred_" in n, narrow=""),
    "picodet": dict(config="configs/picodet/picodet_lcnet_demo.yml", size=64, arch="PicoDet", convs=PICODET_CONVS,
                    first="backbone.conv1.conv.weight", output=lambda n: "_list." in n,
                    narrow="""LCNet: {scale: 0.25}
LCPAN: {out_channels: 16}
PicoHeadV2: {conv_feat: {feat_in: 16, feat_out: 16}, feat_in_chan: 16}
"""),
}


def _config(tmp, family):
    f, data = FAMILIES[family], tmp / "demo"
    cfg = tmp / f"tiny_{family}.yml"
    cfg.write_text(f"""_BASE_: [{os.path.join(ROOT, f['config'])}]
save_dir: {tmp / 'out'}
max_iters: 2
snapshot_iter: 2
Optimizer: {{name: Momentum, momentum: 0.9}}  # one accumulator a parameter, not Adam's four: a quicker build
demo_data: {{root: {data}, num_train: 8, num_val: 4, image_size: 96, seed: 0}}
{f['narrow']}TrainReader:
  dataset: {{dataset_dir: {data}}}
  batch_size: 2
  num_workers: 0
  sample_transforms: []
  batch_transforms:
    - BatchRandomResize: {{target_sizes: [{f['size']}], random_interp: false}}
    - PadBox: {{num_max_boxes: 20}}
    - NormalizeImage: {{mean: [0.0, 0.0, 0.0], std: [1.0, 1.0, 1.0], is_scale: true}}
    - Permute: {{}}
EvalReader:
  dataset: {{dataset_dir: {data}}}
  image_shape: [3, {f['size']}, {f['size']}]
  batch_size: 2
  num_workers: 0
  sample_transforms:
    - Resize: {{target_size: {f['size']}, interp: 2}}
    - NormalizeImage: {{mean: [0.0, 0.0, 0.0], std: [1.0, 1.0, 1.0], is_scale: true}}
    - Permute: {{}}
""")
    return str(cfg)


def _tool(name, argv, capsys):
    code = run_in_process(name, argv)
    captured = capsys.readouterr()
    out = captured.out + captured.err
    assert code in (0, None), out
    return out


@pytest.fixture(scope="module", params=list(FAMILIES))
def trained(request, tmp_path_factory):
    family = request.param
    tmp = tmp_path_factory.mktemp(f"{family}_tools")
    cfg = _config(tmp, family)
    assert run_in_process("train", ["-c", cfg]) in (0, None)
    base = tmp / "out" / f"tiny_{family}" / "model_final"
    assert os.path.isfile(f"{base}.pdparams")
    return {"cfg": cfg, "base": str(base), "out": tmp / "out", "data": tmp / "demo", "name": f"tiny_{family}",
            **FAMILIES[family]}


def test_print_params_lists_every_conv(trained, capsys):
    out = _tool("prune", ["-c", trained["cfg"], "--print_params"], capsys)
    listed, unprunable = out.split("not prunable:")
    missing = [p for p in trained["convs"] if p not in listed and p not in unprunable]
    assert not missing, missing
    assert sorted(line.split()[0] for line in unprunable.strip().splitlines()) == sorted(
        p for p in trained["convs"] if trained["output"](p))  # the output convs alone, each with its reason


def test_prune_to_half_the_flops_fine_tune_eval_export_infer(trained, capsys):
    out = _tool("prune", ["-c", trained["cfg"], "-o", f"weights={trained['base']}", "--target_flops", "0.5"], capsys)
    assert "uniform ratio for 50% fewer FLOPs" in out and "fine-tuning (plan.json beside) done" in out, out
    removed = next(line for line in out.splitlines() if line.strip().startswith("FLOPs (MACs)")).split()[-1]
    assert abs(float(removed.rstrip("%")) - 50) <= 2.0, out  # what the pruned program counts
    folder = trained["out"] / f"{trained['name']}_pruned"
    plan = json.loads((folder / "plan.json").read_text())
    assert len({round(e["ratio"], 9) for e in plan["entries"]}) == 1 and plan["entries"]
    weights = f"weights={folder / 'model_final'}"

    out = _tool("eval", ["-c", trained["cfg"], "-o", weights], capsys)  # the plan beside the weights reshapes the model
    assert f"pruned model: {trained['first']}" in out and "mAP:" in out, out

    export = trained["out"] / "export"
    out = _tool("export_model", ["-c", trained["cfg"], "-o", weights, "--output_dir", str(export), "--rounds", "1",
                                 "--repeat", "1"], capsys)
    assert "Paddle Inference output matches the executor's" in out, out
    for folder in (export, export / "original"):  # PaddleDetection's deploy layout, the unpruned reference too
        assert {"model.json", "model.pdiparams", "infer_cfg.yml"} <= set(os.listdir(folder))
        infer_cfg = deploy.infer_cfg.read(str(folder))[0]
        assert infer_cfg["arch"] == trained["arch"] and infer_cfg["image_shape"] == [3, trained["size"], trained["size"]]
        assert [step["type"] for step in infer_cfg["Preprocess"]] == ["Resize", "NormalizeImage", "Permute"]
    predictor = deploy.create_predictor(str(export / "model"))
    assert predictor.input_names == ["image", "scale_factor"] and len(predictor.output_names) == 2  # bbox, bbox_num

    image = sorted((trained["data"] / "JPEGImages").iterdir())[0]
    out = _tool("infer", ["--model_dir", str(export), "--infer_img", str(image), "--output_dir",
                          str(trained["out"] / "infer"), "--draw_threshold", "0.0"], capsys)
    assert f"{image}: " in out and " boxes -> " in out, out
    assert os.path.isfile(trained["out"] / "infer" / image.name)


def test_the_main_job_runs_on_the_family(trained, capsys):
    """tools/demo.py -c <family config>: the before/after table of the main job (named convs: a 2-iteration
    detector scores mAP 0, so its sensitivities are undefined)."""
    out = _tool("demo", ["-c", trained["cfg"], "--finetune_iters", "2", "--pruned_params", trained["first"],
                         "--pruned_ratios", "0.5"], capsys)
    table = out[out.index(f"({trained['name']}), pruned and fine-tuned 2 iterations"):]
    for row in ("VOC mAP", "FLOPs (MACs)", "parameters", "file MB", "network latency ms", "end-to-end latency ms"):
        assert row in table
    assert next(line for line in table.splitlines() if "FLOPs" in line).split()[-1].startswith("-")
