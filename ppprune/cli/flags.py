"""Command-line flags the tools share, and the one way they split lists."""
import argparse
import re
import sys


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line with the fix, like every other error of the tools."""

    def error(self, message):
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def parser(doc):
    p = OneLineParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", required=True, help="YAML config file")
    p.add_argument("-o", "--opt", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="override config entries, e.g. -o weights=output/x/model_final max_iters=100")
    add_overwrite_flag(p)
    return p


def add_overwrite_flag(p):
    p.add_argument("--overwrite", action="store_true",
                   help="write into an output folder holding files ppprune did not write (they may be replaced)")


def add_train_flags(p):
    p.add_argument("--eval", action="store_true", help="evaluate at every snapshot and keep best_model")
    p.add_argument("-r", "--resume_checkpoint", default=None, help="checkpoint prefix to resume from")


def add_prune_flags(p):
    p.add_argument("-p", "--pruned_params", default=None,
                   help="conv weights to prune, comma or space separated (see --print_params)")
    p.add_argument("--pruned_ratios", default=None,
                   help="share of channels to remove per weight, in [0, 1): one ratio, or one per weight")
    from ..core.criteria import CRITERIA, GROUP_REDUCTIONS
    from ..core.selectors import SELECTORS

    p.add_argument("--prune_criterion", default="l1_norm", choices=CRITERIA.names())
    p.add_argument("--group_reduction", default=None, choices=GROUP_REDUCTIONS,
                   help="score each channel from every conv/fc weight of its group, combined this way (default: "
                        "the pruned weight alone, as PaddleSlim)")
    p.add_argument("--idx_selector", default="default_idx_selector", choices=SELECTORS.names())
    p.add_argument("--round_to", type=int, default=1, help="keep remaining channel counts multiples of N")


def add_flops_target_flags(p, what):
    p.add_argument("--target_flops", type=float, default=None, help=f"share of FLOPs to remove: {what}")
    p.add_argument("--flops_tolerance", type=share, default=0.01,
                   help="how far the planned FLOPs may land from --target_flops (default 0.01); small models with "
                        "few channels per conv may need more")


def share(text):
    """argparse `type` of a share in [0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid float value: {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{value:g} is not a share in [0, 1) (e.g. 0.02)")
    return value


def positive_int(text):
    """argparse `type` of a count that must be at least 1 (threads, rounds, repeats)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer (give 1 or more)")
    return value


def split_list(text):
    """'a,b c' -> ['a', 'b', 'c']: commas and spaces both separate, in every tool."""
    return [t for t in re.split(r"[,\s]+", text.strip()) if t] if text else []
