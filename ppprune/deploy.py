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


def needs_onednn_off(model_file):
    """Paddle 3.3.1's oneDNN CPU path cannot run PIR interpolate ops (nor some conv+leaky_relu fusions);
    such models run correctly with oneDNN off. See docs/paddle-notes.md."""
    if not model_file.endswith(".json"):
        return False
    with open(model_file) as f:
        text = f.read()
    return "interp" in text or "leaky_relu" in text


def create_predictor(prefix, threads=1, use_gpu=False, onednn=None):
    """A Paddle Inference predictor; `onednn=None` keeps the default unless the model needs it off."""
    import paddle.inference as pi

    model, params = model_files(prefix)
    config = pi.Config(model, params)
    config.disable_glog_info()
    if use_gpu:
        config.enable_use_gpu(256, 0)
    else:
        config.disable_gpu()
        config.set_cpu_math_library_num_threads(threads)
        if onednn is False or (onednn is None and needs_onednn_off(model)):
            config.disable_mkldnn()
    return pi.create_predictor(config)


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
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run(predictor, inputs)
        times.append(1000 * (time.perf_counter() - start))
    return float(np.median(times))
