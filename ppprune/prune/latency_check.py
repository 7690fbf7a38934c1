"""A candidate pruning timed for real: the network pruned on a copy of its weights, saved as an inference
model in a temporary folder and timed against the original in interleaved rounds. The program and scope
given are not changed. `ratios_for_latency(time_pruned=PrunedTimer(...))` closes its loop with it."""
import os
import tempfile

import numpy as np
import paddle

from .. import deploy
from ..core.graph import feed_vars, persistable_names
from ..core.tensors import read
from .pruner import Pruner


class PrunedTimer:
    """`timer(ratios)` -> the pruned network's median latency as a share of the original's.

    `feeds` are the network's input names, `fetches` its output values in `program`; `original` is the
    original network's predictor and `inputs` ({feed name: array}) what both are run on."""

    def __init__(self, program, scope, feeds, fetches, original, inputs, settings, criterion="l1_norm",
                 idx_selector="default_idx_selector", rounds=3, repeat=10):
        self.program, self.scope, self.feeds, self.fetches = program, scope, list(feeds), list(fetches)
        self.original, self.inputs, self.settings = original, inputs, settings
        self.criterion, self.idx_selector, self.rounds, self.repeat = criterion, idx_selector, rounds, repeat

    def __call__(self, ratios):
        copy = paddle.static.Scope()
        for name in persistable_names(self.program):
            var = self.scope.find_var(name)
            if var is not None and var.get_tensor()._is_initialized():
                copy.var(name).get_tensor().set(np.ascontiguousarray(read(var.get_tensor())), paddle.CPUPlace())
        pruner = Pruner(self.criterion, self.idx_selector)
        pruned, _, _ = pruner.prune(self.program, copy, list(ratios), list(ratios.values()))
        s = self.settings
        with tempfile.TemporaryDirectory(prefix="ppprune-latency-") as folder, paddle.static.scope_guard(copy):
            prefix = os.path.join(folder, "model")
            paddle.static.save_inference_model(prefix, feed_vars(pruned, self.feeds),
                                               [pruner.lookup(v) for v in self.fetches],
                                               paddle.static.Executor(paddle.CPUPlace()), program=pruned)
            predictor = deploy.create_predictor(prefix, s.backend, threads=s.threads, use_gpu=s.use_gpu,
                                                onednn=s.onednn)
            stats, _ = deploy.compare_latency({"original": self.original, "pruned": predictor}, self.inputs,
                                              rounds=self.rounds, repeat=self.repeat)
        return stats["pruned"]["median"] / stats["original"]["median"]
