"""Export a (pruned) model for Paddle Inference and report what pruning bought: FLOPs, file size and
latency of the original and the pruned model, both measured with Paddle Inference in this run.

    python tools/export_model.py -c configs/yolov3/yolov3_mobilenet_v1_demo.yml -o weights=output/..._pruned/model_final

Writes `<save_dir>/<config name>_export/` with `model.json` (or `.pdmodel`), `model.pdiparams` and
`infer_cfg.yml`, and the unpruned reference under `original/`.
"""
import os
import shutil
import tempfile

import numpy as np

from . import common


def parse_args(argv=None):
    p = common.parser(__doc__)
    common.add_prune_flags(p)
    p.add_argument("--output_dir", default=None, help="where to write (default <save_dir>/<config>_export)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads for the latency measurement")
    p.add_argument("--repeat", type=int, default=20, help="timed runs per model")
    return p.parse_args(argv)


def export(spec, exe, scope, folder):
    """save_inference_model into `folder` atomically (a half-written export never replaces a good one)."""
    import paddle

    from ..core.graph import feed_vars

    parent = os.path.dirname(os.path.abspath(folder))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        with paddle.static.scope_guard(scope):
            paddle.static.save_inference_model(os.path.join(tmp, "model"), feed_vars(spec.program, spec.feeds),
                                               list(spec.fetches.values()), exe, program=spec.program)
        _replace_dir(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return os.path.join(folder, "model")


def _replace_dir(src, dst):
    old = None
    if os.path.exists(dst):
        old = dst + ".old"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dst, old)
    os.replace(src, dst)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def sample_inputs(cfg, spec, seed=0):
    """One input of the eval shape: a real eval image when the data is there, else noise."""
    c, h, w = cfg["EvalReader"]["image_shape"]
    image = np.random.RandomState(seed).rand(1, c, h, w).astype("float32")
    try:
        from ..engine.readers import build_reader

        _, loader = build_reader(cfg, "EvalReader")
        image = next(iter(loader))["image"][:1].astype("float32")
    except Exception as e:  # noqa: BLE001 - latency does not need real data; say so and go on
        print(f"note: timing on random input ({e.__class__.__name__}: {e})")
    inputs = {"image": image, "im_shape": np.array([[h, w]], dtype="int32")}
    return {k: inputs[k] for k in spec.feeds}


def write_infer_cfg(cfg, folder):
    import yaml

    from ..fsutil import atomic_write

    reader = cfg["EvalReader"]
    info = {"mode": "paddle", "arch": cfg["architecture"] if isinstance(cfg["architecture"], str) else "custom",
            "min_subgraph_size": 3, "draw_threshold": 0.5, "metric": cfg.get("metric", "VOC"),
            "image_shape": reader["image_shape"], "Preprocess": reader.get("sample_transforms", []),
            "label_list": _labels(cfg)}
    with atomic_write(os.path.join(folder, "infer_cfg.yml")) as f:
        yaml.safe_dump(info, f, sort_keys=False)


def _labels(cfg):
    ds = cfg["EvalReader"].get("dataset", {})
    path = os.path.join(ds.get("dataset_dir", ""), ds.get("label_list", "label_list.txt"))
    if os.path.isfile(path):
        with open(path) as f:
            return [line.strip() for line in f if line.strip()]
    return [str(i) for i in range(cfg.get("num_classes", 0))]


def main(argv=None):
    args = parse_args(argv)
    import paddle

    from .. import deploy
    from ..analysis import flops
    from ..config import dump_config, load_config
    from ..engine import build_programs, load_weights
    from .eval import load_model

    cfg = load_config(args.config, args.opt)
    out = args.output_dir or common.save_dir(cfg, args.config, "_export")
    programs, spec, exe, scope, place, plan = load_model(cfg, "infer", args)
    inputs = sample_inputs(cfg, spec)
    model = export(spec, exe, scope, out)
    write_infer_cfg(cfg, out)
    dump_config(cfg, os.path.join(out, "config.yml"))

    # Same input through the executor and the exported predictor: the export must not change the model.
    with paddle.static.scope_guard(scope):
        expected = exe.run(spec.program, feed=inputs, fetch_list=list(spec.fetches.values()), return_numpy=False)
    expected = [np.array(t) for t in expected]
    use_gpu = bool(cfg.get("use_gpu")) and paddle.is_compiled_with_cuda()
    predictor = deploy.create_predictor(model, threads=args.threads, use_gpu=use_gpu)
    got = deploy.run(predictor, inputs)
    same = len(got) == len(expected) and all(g.shape == e.shape and np.allclose(g, e, rtol=1e-3, atol=1e-3)
                                             for g, e in zip(got, expected))
    print(f"exported to {out}; Paddle Inference output {'matches' if same else 'DIFFERS FROM'} the executor's")
    rows = [_measure("pruned" if plan else "model", spec.program, model, inputs, args, use_gpu, flops)]

    if plan is not None:  # the unpruned reference, from the weights the plan started from
        ref = build_programs(cfg, "infer")
        ref_scope = paddle.static.Scope()
        exe.run(ref.startup, scope=ref_scope)
        base = plan.meta.get("base_weights")
        if base:
            load_weights(base, ref_scope, place, ref.param_names)
        ref_model = export(ref.infer, exe, ref_scope, os.path.join(out, "original"))
        rows.insert(0, _measure("original", ref.infer.program, ref_model, inputs, args, use_gpu, flops))
    common.print_table(f"Paddle Inference ({'GPU' if use_gpu else f'CPU, {args.threads} thread(s)'}):",
                       ("model", "FLOPs (MACs)", "file MB", "latency ms"), rows)
    if not same:
        return 1
    return {row[0]: {"flops": row[1], "file_mb": row[2], "latency_ms": row[3]} for row in rows}


def _measure(label, program, model, inputs, args, use_gpu, flops):
    from .. import deploy

    size = os.path.getsize(model + ".pdiparams") / 2**20
    predictor = deploy.create_predictor(model, threads=args.threads, use_gpu=use_gpu)
    ms = deploy.latency_ms(predictor, inputs, warmup=3, repeat=args.repeat)
    return (label, f"{flops(program) / 1e6:.1f}M", f"{size:.2f}", f"{ms:.1f}")
