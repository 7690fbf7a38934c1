"""Paddle Inference: build a predictor for an exported model, run it, and time it."""
import os
import time

import numpy as np


def model_files(prefix):
    """(model file, params file) of an inference model saved at `prefix` (PIR .json or legacy .pdmodel)."""
    for ext in (".json", ".pdmodel"):
        if os.path.exists(prefix + ext):
            return prefix + ext, prefix + ".pdiparams"
    raise FileNotFoundError(f"no inference model at '{prefix}' (expected {prefix}.json or {prefix}.pdmodel)")


# Paddle 3.3.1 oneDNN passes that break on some PIR models (see docs/paddle-notes.md), keyed by the op that
# triggers them. Skipping the pass keeps oneDNN on: about 5x faster on CPU than turning it off.
_BROKEN_ONEDNN_PASSES = {
    # places interpolate on a oneDNN kernel that cannot take its float-array `scale` attribute
    "_interp": "onednn_placement_pass",
    # fusing conv + leaky_relu reads the slope with the wrong attribute type and segfaults
    "leaky_relu": "conv_activation_onednn_fuse_pass",
}


# Buffer reuse between ops: on some pruned PIR models (a conv left with one channel feeding others, e.g. an SE
# gate) the oneDNN run then differs from the executor by up to 0.1, while every intermediate value fetched
# on its own is exact. Skipping it makes them exact and costs no measurable latency (MobileNetV1 at 224x224:
# 16.4 vs 16.2 ms), so it is skipped for every PIR model.
_UNSAFE_PIR_PASSES = ["inplace_pass"]


def onednn_passes_to_skip(model_file):
    """The passes Paddle 3.3.1 gets wrong on this inference model with oneDNN (PIR `.json` models only)."""
    if not model_file.endswith(".json"):
        return []
    with open(model_file) as f:
        text = f.read()
    return [p for op, p in _BROKEN_ONEDNN_PASSES.items() if op in text] + _UNSAFE_PIR_PASSES


def inference_config(prefix, threads=1, use_gpu=False, onednn=True):
    """The Paddle Inference config for a model: the default CPU config (oneDNN on, minus the passes this
    model breaks), the plain CPU kernels with `onednn=False`, or the GPU."""
    import paddle.inference as pi

    model, params = model_files(prefix)
    config = pi.Config(model, params)
    config.disable_glog_info()
    if use_gpu:
        config.enable_use_gpu(256, 0)
    else:
        config.disable_gpu()
        config.set_cpu_math_library_num_threads(threads)
        if not onednn:
            config.disable_mkldnn()
        for name in onednn_passes_to_skip(model):
            config.delete_pass(name)
    return config


def create_predictor(prefix, threads=1, use_gpu=False, onednn=True):
    import paddle.inference as pi

    return pi.create_predictor(inference_config(prefix, threads, use_gpu, onednn))


def run(predictor, inputs):
    """Run with {input name: array}; returns the outputs as a list of arrays."""
    for name in predictor.get_input_names():
        handle = predictor.get_input_handle(name)
        arr = np.ascontiguousarray(inputs[name])
        handle.reshape(arr.shape)
        handle.copy_from_cpu(arr)
    predictor.run()
    return [predictor.get_output_handle(n).copy_to_cpu() for n in predictor.get_output_names()]


def latency_ms(predictor, inputs, warmup=3, repeat=10):
    """Median milliseconds per run after warm-up."""
    for _ in range(warmup):
        run(predictor, inputs)
    return float(np.median(_timed_runs(predictor, inputs, repeat)))


def _timed_runs(predictor, inputs, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run(predictor, inputs)
        times.append(1000 * (time.perf_counter() - start))
    return times


def compare_latency(predictors, inputs, rounds=5, repeat=10, warmup=3):
    """Time several predictors in interleaved rounds (A B A B ...), so a change in the machine's load
    hits every model alike. {label: predictor} -> {label: {"min", "median", "max"}} of the per-round
    median milliseconds, plus "load" (the 1-minute load average before and after)."""
    load_before = _load_average()
    for predictor in predictors.values():
        for _ in range(warmup):
            run(predictor, inputs)
    medians = {label: [] for label in predictors}
    for _ in range(rounds):
        for label, predictor in predictors.items():
            medians[label].append(float(np.median(_timed_runs(predictor, inputs, repeat))))
    stats = {label: {"min": min(m), "median": float(np.median(m)), "max": max(m)} for label, m in medians.items()}
    return stats, (load_before, _load_average())


def spread_warning(stats, a, b):
    """A sentence when the run-to-run spread of `a` or `b` is larger than the difference between them."""
    diff = abs(stats[a]["median"] - stats[b]["median"])
    spread = max(stats[a]["max"] - stats[a]["min"], stats[b]["max"] - stats[b]["min"])
    if spread > diff:
        return (f"warning: the latency spread over rounds ({spread:.2f} ms) exceeds the difference between "
                f"'{a}' and '{b}' ({diff:.2f} ms); the difference is not measured reliably on this machine now")
    return None


def _load_average():
    try:
        return os.getloadavg()[0]
    except OSError:  # not every platform reports it
        return float("nan")
