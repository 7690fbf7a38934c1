"""Latency of any `deploy.predictor.Predictor`, measured so that a change in the machine's load does not
pass for a difference between models."""
import os
import time

import numpy as np


def latency_ms(predictor, inputs, warmup=3, repeat=10):
    """Median milliseconds per run after warm-up."""
    for _ in range(warmup):
        predictor.run(inputs)
    return float(np.median(_timed_runs(predictor, inputs, repeat)))


def _timed_runs(predictor, inputs, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        predictor.run(inputs)
        times.append(1000 * (time.perf_counter() - start))
    return times


def compare_latency(predictors, inputs, rounds=5, repeat=10, warmup=3, rewarm=2):
    """Time several predictors in interleaved rounds (A B A B ...), so a change in the machine's load
    hits every model alike. Each model's timed runs follow `rewarm` untimed ones: with many models in a
    round, the previous ones have evicted its weights and buffers from the caches, while a deployed model
    runs warm. {label: predictor} -> ({label: {"min", "median", "max"}} of the per-round median
    milliseconds, (load average before, after))."""
    load_before = _load_average()
    for predictor in predictors.values():
        for _ in range(warmup):
            predictor.run(inputs)
    medians = {label: [] for label in predictors}
    for _ in range(rounds):
        for label, predictor in predictors.items():
            for _ in range(rewarm):
                predictor.run(inputs)
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
    """The 1-minute load average, NaN where the platform does not report it."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")
