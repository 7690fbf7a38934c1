"""Several checkpoints of one config timed together: each model's network alone (no post-processing) and end
to end, exported with Paddle Inference and run in the same interleaved rounds, so every model is compared
with one original under the same load (a results table's latency columns)."""
import os
import tempfile

PARTS = ("network", "end to end")


def time_checkpoints(config, opts, models, threads=1, rounds=7, repeat=20):
    """`models` is {label: weights prefix} (a pruned one is reshaped by the plan beside it). -> {"threads",
    "rounds", "repeat", "load": [before, after], "stats": {label: {part: {"min", "median", "max"}}}} in ms."""
    import paddle

    from .. import deploy
    from ..config import load_config
    from .driver import load_model
    from .export_model import export, network_spec, sample_inputs

    predictors, inputs = {}, None
    with tempfile.TemporaryDirectory(prefix="ppprune-compare-") as tmp:
        for i, (label, weights) in enumerate(models.items()):
            cfg = load_config(config, [*opts, f"weights={weights}"])
            loaded = load_model(cfg, "infer", None)
            use_gpu = bool(cfg.get("use_gpu")) and paddle.is_compiled_with_cuda()  # as tools/export_model.py
            for part, spec in zip(PARTS, (network_spec(loaded.spec), loaded.spec)):
                folder = os.path.join(tmp, str(i), part.replace(" ", "_"))
                os.makedirs(folder)
                prefix = export(spec, loaded.exe, loaded.scope, folder)
                predictors[label, part] = deploy.create_predictor(prefix, threads=threads, use_gpu=use_gpu)
            if inputs is None:
                inputs = sample_inputs(cfg, loaded.spec)
        stats, load = deploy.compare_latency(predictors, inputs, rounds=rounds, repeat=repeat)
    timing = {"threads": threads, "rounds": rounds, "repeat": repeat, "load": list(load), "stats": {}}
    for (label, part), s in stats.items():
        timing["stats"].setdefault(label, {})[part] = s
    return timing


def describe(cfg):
    """A table caption's name for the config's model, e.g. 'YOLOv3-MobileNetV1 (256 px)'."""
    arch = cfg["architecture"]
    backbone = (cfg.get(arch) or {}).get("backbone")
    return f"{arch}{f'-{backbone}' if backbone else ''} ({cfg['EvalReader']['image_shape'][1]} px)"
