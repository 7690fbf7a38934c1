"""What tools/prune.py reports: what was asked (ratios, or a FLOPs or latency target) and what was got
(FLOPs, parameters and, for a latency target, predicted and measured latency), printed and kept as
`prune_report.json` beside plan.json."""
import json

from . import table

FILE = "prune_report.json"


def build(args, before, after, plan, latency=None):
    """The report as a dict; `latency` is `LatencyTarget.check`'s section (None without --target_latency)."""
    asked = {k: getattr(args, k) for k in ("pruned_params", "pruned_ratios", "target_flops", "target_latency",
                                           "sensitivities_file", "round_to")}
    report = {"asked": {k: v for k, v in asked.items() if v is not None},
              "flops": _cost(before["flops"], after["flops"]), "params": _cost(before["params"], after["params"]),
              "entries": [{"param": e.param, "channels": e.size, "kept": e.size - len(e.pruned), "ratio": e.ratio}
                          for e in plan.entries]}
    if latency is not None:
        report["latency"] = latency
    return report


def _cost(before, after):
    return {"before": before, "after": after, "removed": 1 - after / before if before else 0.0}


def print_report(report):
    from .latency import print_report as print_latency

    rows = [("FLOPs (MACs)", f"{report['flops']['before'] / 1e6:.2f}M", f"{report['flops']['after'] / 1e6:.2f}M",
             f"{report['flops']['removed']:.1%}"),
            ("parameters", f"{report['params']['before'] / 1e6:.3f}M", f"{report['params']['after'] / 1e6:.3f}M",
             f"{report['params']['removed']:.1%}")]
    table.print_table("pruning:", ("", "before", "after", "removed"), rows)
    for e in report["entries"]:
        print(f"  {e['param']}: {e['channels']} -> {e['kept']} channels (ratio {e['ratio']:g})")
    if "latency" in report:
        print_latency(report["latency"])


def save(path, report):
    from ..fsutil import atomic_write

    with atomic_write(path) as f:
        json.dump(report, f, indent=1)
