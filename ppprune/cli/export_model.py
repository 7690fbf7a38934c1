"""Export a (pruned) model for Paddle Inference and report what pruning bought: FLOPs, file size and
latency of the original and the pruned model, both measured with Paddle Inference in this run.

    python tools/export_model.py -c configs/yolov3/yolov3_mobilenet_v1_demo.yml -o weights=output/..._pruned/model_final

Writes `<save_dir>/<config name>_export/` with `model.json` (or `.pdmodel`), `model.pdiparams` and
`infer_cfg.yml`, and the unpruned reference under `original/`.
"""
import os
import shutil

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
    """save_inference_model into `folder` (a staging folder: the export becomes visible only complete)."""
    import paddle

    from ..core.graph import feed_vars

    prefix = os.path.join(folder, "model")
    with paddle.static.scope_guard(scope):
        paddle.static.save_inference_model(prefix, feed_vars(spec.program, spec.feeds), list(spec.fetches.values()),
                                           exe, program=spec.program)
    return prefix


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
    from ..config import load_config
    from ..outdir import staging_dir, swap_in
    from .eval import load_model

    cfg = load_config(args.config, args.opt)
    programs, spec, exe, scope, place, plan = load_model(cfg, "infer", args)
    base = plan.meta.get("base_weights") if plan is not None else None
    out = common.output_dir(args, args.output_dir or common.save_dir(cfg, args.config, "_export"),
                            inputs=[common.weights_prefix(cfg), base], flag="--output_dir <another folder>")
    inputs = sample_inputs(cfg, spec)
    stage = staging_dir(out.path)
    try:
        result = _export_all(cfg, args, spec, exe, scope, place, plan, base, inputs, stage)
        swap_in(stage, out.path, os.listdir(stage))
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    print(f"exported to {out.path}")
    return result


def _export_all(cfg, args, spec, exe, scope, place, plan, base, inputs, stage):
    """Everything the export writes, into `stage`; refuses an export whose predictor disagrees."""
    import paddle

    from .. import deploy
    from ..analysis import flops
    from ..config import dump_config
    from ..engine import build_programs, load_weights

    model = export(spec, exe, scope, stage)
    write_infer_cfg(cfg, stage)
    dump_config(cfg, os.path.join(stage, "config.yml"))

    # Same input through the executor and the exported predictor: the export must not change the model.
    with paddle.static.scope_guard(scope):
        expected = exe.run(spec.program, feed=inputs, fetch_list=list(spec.fetches.values()), return_numpy=False)
    expected = [np.array(t) for t in expected]
    use_gpu = bool(cfg.get("use_gpu")) and paddle.is_compiled_with_cuda()
    got = deploy.run(deploy.create_predictor(model, threads=args.threads, use_gpu=use_gpu), inputs)
    if len(got) != len(expected) or any(g.shape != e.shape for g, e in zip(got, expected)):
        raise common.UsageError("Paddle Inference returns outputs of other shapes than the executor "
                                f"({[g.shape for g in got]} vs {[e.shape for e in expected]}); nothing was exported. "
                                "Report this with the config and plan.json")
    if not all(np.allclose(g, e, rtol=1e-3, atol=1e-3) for g, e in zip(got, expected)):
        worst = max(float(np.abs(g - e).max()) for g, e in zip(got, expected) if e.size)
        raise common.UsageError(f"Paddle Inference output differs from the executor's by up to {worst:.3g}; "
                                "nothing was exported. Export with use_gpu: false, or report this with the config "
                                "and plan.json")
    print("Paddle Inference output matches the executor's")
    rows = [_measure("pruned" if plan else "model", spec.program, model, inputs, args, use_gpu, flops)]

    if plan is not None:  # the unpruned reference, from the weights the plan started from
        ref = build_programs(cfg, "infer")
        ref_scope = paddle.static.Scope()
        exe.run(ref.startup, scope=ref_scope)
        if base:
            load_weights(base, ref_scope, place, ref.param_names)
        os.makedirs(os.path.join(stage, "original"))
        ref_model = export(ref.infer, exe, ref_scope, os.path.join(stage, "original"))
        rows.insert(0, _measure("original", ref.infer.program, ref_model, inputs, args, use_gpu, flops))
    common.print_table(f"Paddle Inference ({'GPU' if use_gpu else f'CPU, {args.threads} thread(s)'}):",
                       ("model", "FLOPs (MACs)", "file MB", "latency ms"), rows)
    return {row[0]: {"flops": row[1], "file_mb": row[2], "latency_ms": row[3]} for row in rows}


def _measure(label, program, model, inputs, args, use_gpu, flops):
    from .. import deploy

    size = os.path.getsize(model + ".pdiparams") / 2**20
    predictor = deploy.create_predictor(model, threads=args.threads, use_gpu=use_gpu)
    ms = deploy.latency_ms(predictor, inputs, warmup=3, repeat=args.repeat)
    return (label, f"{flops(program) / 1e6:.1f}M", f"{size:.2f}", f"{ms:.1f}")
