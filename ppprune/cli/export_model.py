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

from . import flags, paths, runner, table


def parse_args(argv=None):
    p = flags.parser(__doc__)
    flags.add_prune_flags(p)
    p.add_argument("--output_dir", default=None, help="where to write (default <save_dir>/<config>_export)")
    p.add_argument("--threads", type=flags.positive_int, default=1, help="CPU threads for the latency measurement")
    p.add_argument("--rounds", type=flags.positive_int, default=5, help="interleaved timing rounds of all models")
    p.add_argument("--repeat", type=flags.positive_int, default=10, help="timed runs per model and round")
    return p.parse_args(argv)


def export(spec, exe, scope, folder):
    """save_inference_model into `folder` (a staging folder: the export becomes visible only complete)."""
    import paddle

    from ..core.graph import feed_vars

    from ..fsutil import blame

    prefix = os.path.join(folder, "model")
    with blame(folder), paddle.static.scope_guard(scope):
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
    from ..models.base import Detector

    inputs = Detector.eval_inputs(image[0], (h, w))
    return {k: inputs[k] for k in spec.feeds}


def check_export(spec, exe, scope, model, inputs, threads, use_gpu):
    """The same input through the executor and the exported predictor: the export must not change the model.

    The network (before post-processing) must agree to 1e-3. After NMS, boxes of equal score may come in
    another order, or another of them may fill the last kept place, on the two backends: there the
    detections are compared as sorted scores of PaddleDetection's [class, score, x1, y1, x2, y2] rows."""
    import paddle

    from .. import deploy

    with tempfile.TemporaryDirectory(prefix="ppprune-check-") as tmp:
        parts = [("", spec, model, False)]  # (what, program part, exported prefix, detections after NMS)
        if spec.network:
            net = network_spec(spec)
            parts = [("network ", net, export(net, exe, scope, tmp), False), ("", spec, model, True)]
        for what, part, prefix, detections in parts:
            with paddle.static.scope_guard(scope):
                expected = exe.run(part.program, feed=inputs,  # the whole program runs: every feed
                                   fetch_list=list(part.fetches.values()), return_numpy=False)
            expected = [np.array(t) for t in expected]
            predictor = deploy.create_predictor(prefix, threads=threads, use_gpu=use_gpu)
            got = deploy.run(predictor, {k: inputs[k] for k in part.feeds})
            if len(got) != len(expected) or any(g.shape != e.shape for g, e in zip(got, expected)):
                raise runner.UsageError(f"Paddle Inference returns {what}outputs of other shapes than the executor "
                                        f"({[g.shape for g in got]} vs {[e.shape for e in expected]}); nothing was "
                                        "exported. Report this with the config and plan.json")
            pairs = [(_scores(g), _scores(e)) if detections and e.ndim == 2 and e.shape[1] > 1 else (g, e)
                     for g, e in zip(got, expected)]
            if not all(np.allclose(g, e, rtol=1e-3, atol=1e-3) for g, e in pairs):
                worst = max(float(np.abs(g - e).max()) for g, e in pairs if e.size)
                raise runner.UsageError(f"Paddle Inference {what}output differs from the executor's by up to {worst:.3g}; "
                                        "nothing was exported. Export with use_gpu: false, or report this with the "
                                        "config and plan.json")


def _scores(rows):
    return np.sort(rows[:, 1].astype("float64"))


def network_spec(spec):
    """The same program cut at the network's outputs: post-processing left out."""
    from ..engine.programs import ProgramSpec

    return ProgramSpec(spec.program, spec.network_feeds, {f"network.{i}": v for i, v in enumerate(spec.network)})


def deploy_arch(cfg):
    """PaddleDetection's infer_cfg `arch` and TensorRT subgraph size, as the architecture class states them."""
    from ..registry import ARCHITECTURES

    name = cfg["architecture"]
    arch = ARCHITECTURES.get(name)
    return getattr(arch, "deploy_arch", None) or name, getattr(arch, "min_subgraph_size", 3)


def run(argv=None):
    """Export and measure; returns per model its FLOPs, file size and latencies."""
    args = parse_args(argv)
    from ..config import load_config
    from ..outdir import staging_dir, swap_in
    from .driver import load_model

    cfg = load_config(args.config, args.opt)
    programs, spec, exe, scope, place, plan = load_model(cfg, "infer", args)
    base = plan.meta.get("base_weights") if plan is not None else None
    out = paths.output_dir(args, args.output_dir or paths.save_dir(cfg, args.config, "_export"),
                            inputs=[paths.weights_prefix(cfg), base], flag="--output_dir <another folder>")
    inputs = sample_inputs(cfg, spec)
    stage = staging_dir(out)  # locks the folder for the rest of the run
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

    from ..deploy import infer_cfg
    from ..config import dump_config
    from ..engine import build_programs, load_weights

    model = export(spec, exe, scope, stage)
    infer_cfg.write(cfg, stage, *deploy_arch(cfg))
    dump_config(cfg, os.path.join(stage, "config.yml"))

    use_gpu = bool(cfg.get("use_gpu")) and paddle.is_compiled_with_cuda()
    check_export(spec, exe, scope, model, inputs, args.threads, use_gpu)
    print("Paddle Inference output matches the executor's")
    label = "pruned" if plan else "model"
    models, scopes = {label: (spec, model)}, {label: scope}
    if plan is not None:  # the unpruned reference, from the weights the plan started from
        ref = build_programs(cfg, "infer")
        ref_scope = paddle.static.Scope()
        exe.run(ref.startup, scope=ref_scope)
        if base:
            load_weights(base, ref_scope, place, ref.param_names, partial=True,  # as prune may have: pretrain_weights
                         flexible=ref.head_names if cfg.get("ignore_head_shapes") else ())
        original = os.path.join(stage, "original")
        os.makedirs(original)
        models = {"original": (ref.infer, export(ref.infer, exe, ref_scope, original)), **models}
        scopes["original"] = ref_scope
        infer_cfg.write(cfg, original, *deploy_arch(cfg))
    rows, stats = measure(models, scopes, exe, inputs, args, use_gpu)
    return {row[0]: {"flops": row[1], "file_mb": row[2], "net_latency_ms": f"{stats[row[0], 'network']['median']:.2f}",
                     "latency_ms": f"{stats[row[0], 'end to end']['median']:.2f}"} for row in rows}


def measure(models, scopes, exe, inputs, args, use_gpu):
    """FLOPs, file size and Paddle Inference latency of each exported model, the network alone (no NMS)
    and end to end, timed in interleaved rounds; prints the table, the load and a warning when the
    spread over rounds is larger than the difference between the first two models."""
    from .. import deploy
    from ..analysis import flops

    with tempfile.TemporaryDirectory(prefix="ppprune-net-") as tmp:
        predictors = {}
        for label, (spec, prefix) in models.items():
            if spec.network:
                net = network_spec(spec)
                os.makedirs(os.path.join(tmp, label))
                net_prefix = export(net, exe, scopes[label], os.path.join(tmp, label))
                predictors[label, "network"] = deploy.create_predictor(net_prefix, threads=args.threads, use_gpu=use_gpu)
            predictors[label, "end to end"] = deploy.create_predictor(prefix, threads=args.threads, use_gpu=use_gpu)
        stats, load = deploy.compare_latency(
            predictors, inputs, rounds=args.rounds, repeat=args.repeat)
    for key in [k for k in predictors if k[1] == "end to end" and (k[0], "network") not in stats]:
        stats[key[0], "network"] = stats[key]  # a model without post-processing is its network
    fmt = "{min:.1f} / {median:.1f} / {max:.1f}".format
    rows = [(label, f"{flops(spec.program) / 1e6:.1f}M", f"{os.path.getsize(prefix + '.pdiparams') / 2**20:.2f}",
             fmt(**stats[label, "network"]), fmt(**stats[label, "end to end"])) for label, (spec, prefix) in models.items()]
    where = "GPU" if use_gpu else f"CPU, {args.threads} thread(s)"
    table.print_table(f"Paddle Inference ({where}; latency ms min / median / max over {args.rounds} interleaved "
                       f"rounds of {args.repeat} runs; load average {load[0]:.2f} -> {load[1]:.2f}):",
                       ("model", "FLOPs (MACs)", "file MB", "network ms", "end to end ms"), rows)
    if len(models) > 1:
        labels = list(models)
        for part in ("network", "end to end"):
            warning = deploy.spread_warning({k: stats[k, part] for k in labels}, *labels[:2])
            if warning:
                print(f"{part}: {warning}")
    return rows, stats


main = runner.exit_zero(run)
