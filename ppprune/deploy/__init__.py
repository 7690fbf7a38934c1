"""Running exported models: a backend-free predictor protocol and registry (`predictor`), the Paddle
Inference backend (`paddle_inference`), latency timing over any predictor (`timing`), exported programs
(`exported`), PaddleDetection's `infer_cfg.yml` (`infer_cfg`) and the detector's output layout
(`detections`).

    predictor = deploy.create_predictor("output/model_export/model", threads=2)
    outputs = predictor.run({"image": image, "im_shape": im_shape})
"""
from . import exported, infer_cfg
from .detections import detections
from .paddle_inference import PaddleInferencePredictor, inference_config, model_files, onednn_passes_to_skip
from .predictor import BACKENDS, Predictor, create_predictor, run
from .timing import compare_latency, latency_ms, spread_warning

__all__ = ["BACKENDS", "PaddleInferencePredictor", "Predictor", "compare_latency", "create_predictor", "detections",
           "exported", "infer_cfg", "inference_config", "latency_ms", "model_files",
           "onednn_passes_to_skip", "run", "spread_warning"]
