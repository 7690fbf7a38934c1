"""What a deploy backend provides, and the registry that finds one by name.

A backend is one module `ppprune/deploy/<name>.py` that registers, under `<name>`, a callable
`(prefix, threads=1, use_gpu=False, onednn=True) -> Predictor` for the model exported at `prefix`
(options a backend has no use for, such as `onednn` off Paddle Inference, are ignored). `create_predictor`
imports that module on first use, so no other file changes and a backend's own dependencies are only
imported when it is asked for.
"""
import importlib.util
from typing import List, Protocol, runtime_checkable

from ..core.registry import Registry

BACKENDS = Registry("deploy backend", error=ValueError)


@runtime_checkable  # so a test can check that a backend's predictor follows it
class Predictor(Protocol):
    """An exported model ready to run: everything timing, export checks and tools/infer.py use."""

    input_names: List[str]  # the feeds the model takes, in its order
    output_names: List[str]  # the outputs `run` returns, in this order

    def run(self, feed):
        """{input name: ndarray} -> the outputs as a list of ndarrays. `feed` may hold more names than
        `input_names` (a model cut before post-processing takes fewer feeds); the others are ignored."""


def create_predictor(prefix, backend="paddle_inference", threads=1, use_gpu=False, onednn=True):
    """A `Predictor` of `backend` for the inference model saved at `prefix`."""
    if backend not in BACKENDS and backend.isidentifier():
        if importlib.util.find_spec(f"{__package__}.{backend}") is not None:
            importlib.import_module(f"{__package__}.{backend}")
    return BACKENDS.build(backend, prefix, threads=threads, use_gpu=use_gpu, onednn=onednn)


def run(predictor, feed):
    """Run any `Predictor` with {input name: ndarray}; returns its outputs as a list of ndarrays."""
    return predictor.run(feed)
