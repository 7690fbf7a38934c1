"""The Paddle Inference backend: the config for an exported model (with the oneDNN passes Paddle 3.3.1
gets wrong left out) and a predictor that follows `deploy.predictor.Predictor`."""
import os

import numpy as np

from .predictor import BACKENDS


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


class PaddleInferencePredictor:
    """A Paddle Inference predictor built from `config` (see `inference_config`)."""

    def __init__(self, config):
        import paddle.inference as pi

        self._predictor = pi.create_predictor(config)
        self.input_names = list(self._predictor.get_input_names())
        self.output_names = list(self._predictor.get_output_names())

    def run(self, feed):
        for name in self.input_names:
            handle = self._predictor.get_input_handle(name)
            arr = np.ascontiguousarray(feed[name])
            handle.reshape(arr.shape)
            handle.copy_from_cpu(arr)
        self._predictor.run()
        return [self._predictor.get_output_handle(n).copy_to_cpu() for n in self.output_names]


@BACKENDS.register(name="paddle_inference")
def open_predictor(prefix, threads=1, use_gpu=False, onednn=True):
    return PaddleInferencePredictor(inference_config(prefix, threads, use_gpu, onednn))
