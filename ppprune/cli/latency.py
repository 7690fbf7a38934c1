"""`--target_latency` for the tools: the network as it deploys (its outputs before post-processing, at the
EvalReader's image size) timed in Paddle Inference with the tool's settings, ratios chosen on the latency
model measured on this machine (`prune.latency_ratios`), and the pruned network measured against the
original in interleaved rounds, so the report says what was asked and what was got."""
import os
import tempfile

import numpy as np

from . import flags, runner

# tolerance beyond which the report says the measured latency missed the target (the model predicts the
# convs only; what no conv covers is assumed unchanged)
MISSED = 0.05


def add_flags(p, what):
    p.add_argument("--target_latency", type=float, default=None,
                   help=f"share of the network's measured latency (Paddle Inference, EvalReader image size) to remove: "
                        f"{what}; block times are kept in $PPPRUNE_CACHE/latency (default ~/.cache/ppprune/latency)")
    p.add_argument("--threads", type=flags.positive_int, default=1,
                   help="CPU threads latency is measured with (as tools/export_model.py --threads)")
    p.add_argument("--no_onednn", action="store_true",
                   help="measure latency with Paddle Inference's plain CPU kernels (oneDNN off)")


def check_target(args):
    """A --target_latency outside (0, 1) is a usage error before anything is loaded."""
    t = args.target_latency
    if t is not None and not 0 < t < 1:
        raise runner.UsageError(f"--target_latency {t:g}: give the share of latency to remove, in (0, 1), e.g. 0.5")


def settings(cfg, args):
    """The latency model's settings: the tool's threads and kernels, the GPU when the config sets use_gpu
    and CUDA is there (as tools/export_model.py deploys)."""
    import paddle

    from ..deploy.latency_model import Settings

    return Settings(threads=args.threads, onednn=not args.no_onednn,
                    use_gpu=bool(cfg.get("use_gpu")) and paddle.is_compiled_with_cuda())


def network_inputs(cfg, spec, seed=0):
    """One noise input of the eval shape for the network's feeds (conv time does not depend on the values)."""
    from ..models.base import Detector

    c, h, w = cfg["EvalReader"]["image_shape"]
    image = np.random.RandomState(seed).rand(c, h, w).astype("float32")
    inputs = Detector.eval_inputs(image, (h, w))
    return {k: inputs[k] for k in spec.network_feeds}


class LatencyTarget:
    """The original network of an eval `spec`, exported into a private temp folder, opened and timed; then
    `ratios` for the target and `check` of the pruned network. `close()` removes the folder."""

    def __init__(self, cfg, args, spec, exe, scope):
        from ..deploy.latency_model import steady_ms

        if not spec.network:
            raise runner.UsageError(f"--target_latency: architecture '{cfg['architecture']}' names no network outputs "
                                    "to time (its predict returns none); prune it with --target_flops or ratios")
        self.target, self.settings, self.spec = args.target_latency, settings(cfg, args), spec
        self.inputs = network_inputs(cfg, spec)
        self.tmp = tempfile.TemporaryDirectory(prefix="ppprune-latency-")
        try:
            self.original = self._open(spec, exe, scope, "original")
            self.base_ms = steady_ms(lambda: self.original.run(self.inputs), rounds=5)
        except BaseException:
            self.close()
            raise
        print(f"network latency {self.base_ms:.2f} ms ({self._where()}); target {self.target:.0%} less: "
              f"{self.base_ms * (1 - self.target):.2f} ms")

    def _where(self):
        s = self.settings
        return "Paddle Inference, GPU" if s.use_gpu else \
            f"Paddle Inference, CPU, {s.threads} thread(s), {'oneDNN' if s.onednn else 'oneDNN off'}"

    def _open(self, spec, exe, scope, label):
        from .. import deploy
        from ..engine.programs import ProgramSpec
        from .export_model import export

        net = ProgramSpec(spec.program, spec.network_feeds, {f"network.{i}": v for i, v in enumerate(spec.network)})
        folder = os.path.join(self.tmp.name, label)
        os.makedirs(folder)
        s = self.settings
        return deploy.create_predictor(export(net, exe, scope, folder), s.backend, threads=s.threads,
                                       use_gpu=s.use_gpu, onednn=s.onednn)

    def ratios(self, program, scope, args, params, sensitivities=None):
        """(params, ratios) predicted to reach the target; PruneError (nothing chosen) when they cannot."""
        from ..core.criteria import get_criterion
        from ..prune.latency_ratios import ratios_for_latency
        from ..prune.report import prunable_params

        if sensitivities is None:
            params = params or [row["name"] for row in prunable_params(program)[0]]
        else:
            params = [p for p in sensitivities if not params or p in params]
        from ..prune.latency_check import PrunedTimer

        # tools/sensitive.py has no criterion flags: its sensitivities were measured with the defaults
        criterion = get_criterion(getattr(args, "prune_criterion", "l1_norm"), getattr(args, "group_reduction", None))
        selector = getattr(args, "idx_selector", "default_idx_selector")
        timer = PrunedTimer(program, scope, self.spec.network_feeds, self.spec.network, self.original, self.inputs,
                            self.settings, criterion, selector)
        ratios, self.predicted_ms, self.model = ratios_for_latency(
            program, params, self.target, self.base_ms, self.settings, sensitivities=sensitivities, scope=scope,
            time_pruned=timer, criterion=criterion, idx_selector=selector, round_to=getattr(args, "round_to", 1))
        for i, r in enumerate(self.model.rounds):
            print(f"round {i + 1}: asked the model for {r['asked']:.1%} less, predicted {r['predicted_removed']:.1%}, "
                  f"measured {r['measured_removed']:.1%}")
        print(f"ratios for {self.target:.0%} less latency ({'sensitivities' if sensitivities else 'fewest channels'}; "
              f"predicted {self.predicted_ms:.2f} ms, {1 - self.predicted_ms / self.base_ms:.1%} less; "
              f"{self.model.measured} block time(s) measured, the rest from {self.model.table}): "
              + ", ".join(f"{p}={r:.3f}" for p, r in ratios.items()))
        return list(ratios), list(ratios.values())

    def check(self, spec, exe, scope, rounds=5, repeat=10):
        """The pruned network of `spec` (its weights in `scope`) timed against the original in interleaved
        rounds: the report's latency section (ms: min / median / max of the rounds' medians)."""
        from .. import deploy
        from ..core.graph import view_of

        pruned = self._open(spec, exe, scope, "pruned")
        predicted = self.model.predict(view_of(spec.program))  # the plan as carried out on the eval program
        stats, load = deploy.compare_latency({"original": self.original, "pruned": pruned}, self.inputs,
                                             rounds=rounds, repeat=repeat)
        measured = stats["pruned"]["median"] / stats["original"]["median"]
        # both as shares of an original timed alike, so a change of load between the two timings cancels
        error = (predicted / self.base_ms) / measured - 1
        s = self.settings
        return {"target": self.target, "settings": s.key(), "device": s.device, "threads": s.threads,
                "onednn": s.onednn, "table": self.model.table, "table_measured": self.model.measured,
                "search_rounds": self.model.rounds,
                "original_ms": self.base_ms, "predicted_ms": predicted,
                "predicted_removed": 1 - predicted / self.base_ms,
                "measured_ms": stats, "measured_removed": 1 - measured, "prediction_error": error,
                "rounds": rounds, "repeat": repeat, "load_average": list(load),
                "spread_warning": deploy.spread_warning(stats, "original", "pruned")}

    def close(self):
        self.tmp.cleanup()


def print_report(latency):
    """The latency lines of the prune report."""
    from . import table

    fmt = "{min:.2f} / {median:.2f} / {max:.2f}".format
    m = latency["measured_ms"]
    where = "GPU" if latency["device"] == "gpu" else \
        f"CPU, {latency['threads']} thread(s), {'oneDNN' if latency['onednn'] else 'oneDNN off'}"
    load = latency["load_average"]
    table.print_table(f"latency (Paddle Inference, {where}; network ms min / median / max over {latency['rounds']} "
                      f"interleaved rounds of {latency['repeat']} runs; load average {load[0]:.2f} -> {load[1]:.2f}):",
                      ("", "original", "pruned", "removed"),
                      [("measured", fmt(**m["original"]), fmt(**m["pruned"]), f"{latency['measured_removed']:.1%}"),
                       ("predicted", f"{latency['original_ms']:.2f}", f"{latency['predicted_ms']:.2f}",
                        f"{latency['predicted_removed']:.1%}")])
    print(f"target: {latency['target']:.0%} less latency; measured {_less(latency['measured_removed'])}, predicted "
          f"{_less(latency['predicted_removed'])} (prediction error {latency['prediction_error']:+.1%} of the pruned "
          "latency)")
    if abs(latency["measured_removed"] - latency["target"]) > MISSED:
        print(f"note: the measured latency misses the target by more than {MISSED:.0%}: the latency model predicts the "
              "convs only (concats, upsampling and post-processing are assumed unchanged), and this machine's load "
              "moves timings; rerun on a quiet machine or adjust --target_latency")
    if latency["spread_warning"]:
        print(latency["spread_warning"])


def _less(share):
    return f"{share:.1%} less" if share >= 0 else f"{-share:.1%} more"
