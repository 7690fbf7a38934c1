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
    if getattr(args, "round_to", 1) < 1:
        raise UsageError(f"--round_to {args.round_to}: give a positive channel multiple (1 = no rounding, e.g. 8)")
    ratios = []
    for t in texts:
        try:
            r = float(t)
        except ValueError:
            raise UsageError(f"--pruned_ratios: '{t}' is not a number") from None
        if not 0 <= r < 1:
            raise UsageError(f"--pruned_ratios: {t} is outside [0, 1); a ratio is the share of channels to remove")
        ratios.append(r)
    if len(ratios) == 1:
        ratios *= len(params)
    if len(ratios) != len(params):
        raise UsageError(f"{len(params)} --pruned_params but {len(ratios)} --pruned_ratios: give one ratio per weight "
                         "(or a single ratio for all)")
    return params, ratios
