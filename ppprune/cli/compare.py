"""Checkpoints of one config timed against one original: each model's network alone (no post-processing)
and end to end, exported with Paddle Inference, every model in its own interleaved rounds with the
original (a results table's latency columns, each beside the original timed with it).

Why pairs and not all models in one round: with a dozen predictors in a round each one's weights and
buffers are evicted by the others before it runs again, and on this CPU that hid two thirds of a pruned
model's gain (a -31% model timed -11% among 18 predictors); a deployed model runs alone and warm."""
import os
import tempfile

import numpy as np

PARTS = ("network", "end to end")


def time_checkpoints(config, opts, models, threads=1, rounds=7, repeat=20):
    """`models` is {label: weights prefix}, the original first (a pruned one is reshaped by the plan beside
    it). -> {"threads", "rounds", "repeat", "stats": {label: {part: {"min", "median", "max"}}}, "reference":
    {label: {part: the original's stats in that label's rounds}}, "load": {label: [before, after]}} in ms;
    the original's own stats gather all its rounds (min, median of the per-pair medians, max)."""
    from .. import deploy

    labels = list(models)
    original = labels[0]
    timing = {"threads": threads, "rounds": rounds, "repeat": repeat, "stats": {}, "reference": {}, "load": {}}
    with tempfile.TemporaryDirectory(prefix="ppprune-compare-") as tmp:
        predictors, inputs = _predictors(config, opts, models, threads, tmp)
        for label in labels[1:]:
            pair = {(k, part): predictors[k, part] for k in (original, label) for part in PARTS}
            stats, load = deploy.compare_latency(pair, inputs, rounds=rounds, repeat=repeat)
            timing["stats"][label] = {part: stats[label, part] for part in PARTS}
            timing["reference"][label] = {part: stats[original, part] for part in PARTS}
            timing["load"][label] = list(load)
    refs = list(timing["reference"].values())
    timing["stats"][original] = {part: {"min": min(r[part]["min"] for r in refs),
                                        "median": float(np.median([r[part]["median"] for r in refs])),
                                        "max": max(r[part]["max"] for r in refs)} for part in PARTS} if refs else {}
    return timing


def _predictors(config, opts, models, threads, tmp):
    """({(label, part): predictor}, one eval-shaped input), every model exported under `tmp`."""
    import paddle

    from .. import deploy
    from ..config import load_config
    from .driver import load_model
    from .export_model import export, network_spec, sample_inputs

    predictors, inputs = {}, None
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
    return predictors, inputs


def describe(cfg):
    """A table caption's name for the config's model, e.g. 'YOLOv3-MobileNetV1 (256 px)'."""
    arch = cfg["architecture"]
    backbone = (cfg.get(arch) or {}).get("backbone")
    return f"{arch}{f'-{backbone}' if backbone else ''} ({cfg['EvalReader']['image_shape'][1]} px)"
