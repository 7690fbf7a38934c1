"""The pruning request a tool is given on the command line."""
from .flags import split_list
from .runner import UsageError


def pruned_request(args):
    """(params, ratios) from --pruned_params/--pruned_ratios, or (None, None) if neither is given."""
    params, texts = split_list(args.pruned_params), split_list(args.pruned_ratios)
    if not params and not texts:
        return None, None
    if not params:
        raise UsageError("--pruned_ratios given without --pruned_params: name the conv weights to prune")
    if not texts:
        raise UsageError("--pruned_params given without --pruned_ratios: give one ratio, or one per weight")
    check_round_to(args)
    from ..core.request import check_request, parse_ratios

    ratios = parse_ratios(texts, "--pruned_ratios")
    return check_request(params, ratios[0] if len(ratios) == 1 else ratios, "--pruned_params", "--pruned_ratios")


def check_round_to(args):
    if getattr(args, "round_to", 1) < 1:
        raise UsageError(f"--round_to {args.round_to}: give a positive channel multiple (1 = no rounding, e.g. 8)")
