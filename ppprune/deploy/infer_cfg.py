"""`infer_cfg.yml` beside an exported model, in PaddleDetection's deploy layout, so its
`deploy/python/infer.py` reads our exports and `tools/infer.py` reads theirs.

PaddleDetection lists preprocessing as `Preprocess: [{type: Resize, target_size: [h, w], ...}, ...]`;
our readers name a transform by its key (`- Resize: {...}`). The two are converted here, one op at a time.
"""
import os

from ..fsutil import atomic_write

FILE = "infer_cfg.yml"


class InferCfgError(ValueError):
    """An infer_cfg.yml this project cannot run; the message says which entry and what to do."""


def _to_deploy(name, args):
    """One of our transforms -> PaddleDetection's deploy op."""
    op = {"type": name, **args}
    if name == "Resize":
        size = args["target_size"]
        op.update(target_size=[size, size] if isinstance(size, int) else list(size), keep_ratio=False,
                  interp=args.get("interp", 2))
    elif name == "NormalizeImage":
        op.setdefault("is_scale", True)
        op["norm_type"] = "mean_std"
    return op


def _from_deploy(op):
    """PaddleDetection's deploy op -> one of our transforms, refusing options our transforms lack."""
    args = {k: v for k, v in op.items() if k != "type"}
    name = op.get("type")
    if name == "Resize" and args.pop("keep_ratio", False):
        raise InferCfgError("infer_cfg.yml: Resize with keep_ratio: true is not supported; export with a fixed "
                            "[h, w] target_size (keep_ratio: false)")
    if name == "NormalizeImage" and args.pop("norm_type", "mean_std") != "mean_std":
        raise InferCfgError("infer_cfg.yml: NormalizeImage supports norm_type: mean_std only")
    return {name: args}


def write(cfg, folder, deploy_arch, min_subgraph, draw_threshold=0.5):
    """Write `folder/infer_cfg.yml` for a model built from config `cfg`; `deploy_arch` and `min_subgraph`
    are PaddleDetection's `arch` (it names the deploy pipeline) and TensorRT subgraph size, from the model."""
    import yaml

    reader = cfg["EvalReader"]
    info = {
        "mode": "paddle",
        "draw_threshold": draw_threshold,
        "metric": cfg.get("metric", "VOC"),
        "use_dynamic_shape": False,
        "arch": deploy_arch,
        "min_subgraph_size": min_subgraph,
        "image_shape": list(reader["image_shape"]),
        "Preprocess": [_to_deploy(name, dict(args or {})) for t in reader.get("sample_transforms", [])
                       for name, args in t.items()],
        "label_list": _labels(cfg),
    }
    with atomic_write(os.path.join(folder, FILE)) as f:
        yaml.safe_dump(info, f, sort_keys=False)


def read(folder):
    """(info dict, our transform specs) from `folder/infer_cfg.yml`; accepts both layouts."""
    import yaml

    path = os.path.join(folder, FILE)
    if not os.path.isfile(path):
        raise InferCfgError(f"no {FILE} in '{folder}': export the model with tools/export_model.py")
    try:
        with open(path) as f:
            info = yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise InferCfgError(f"{path} is not valid YAML ({e.__class__.__name__}); export the model again") from None
    steps = info.get("Preprocess") if isinstance(info, dict) else None
    if not isinstance(steps, list):
        raise InferCfgError(f"{path} has no Preprocess list; export the model again with tools/export_model.py")
    specs = [_from_deploy(s) if "type" in s else s for s in steps]  # `- Resize: {...}`: our earlier layout
    return info, specs


def _labels(cfg):
    ds = cfg["EvalReader"].get("dataset", {})
    path = os.path.join(ds.get("dataset_dir", ""), ds.get("label_list", "label_list.txt"))
    if os.path.isfile(path):
        with open(path) as f:
            return [line.strip() for line in f if line.strip()]
    return [str(i) for i in range(cfg.get("num_classes", 0))]
