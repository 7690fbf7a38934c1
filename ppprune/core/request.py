"""A pruning request checked once for every front end: ratios, (params, ratios) pairs and param names.

The Python APIs and the command-line tools call the same checks, so a bad ratio reads the same everywhere;
`what` names the argument or flag the value came from.
"""
import difflib
import numbers

from .errors import PruneError


def check_ratio(value, what="ratio", above_zero=False):
    """`value` as a float share of channels to remove, in [0, 1) (in (0, 1) with `above_zero`)."""
    real = not isinstance(value, bool) and isinstance(value, numbers.Real)
    if not real or not (0 < float(value) < 1 if above_zero else 0 <= float(value) < 1):
        interval = "(0, 1)" if above_zero else "[0, 1)"
        raise PruneError(f"{what} {value!r} is outside {interval}: a ratio is the share of channels to remove")
    return float(value)


def parse_ratios(texts, what, above_zero=False):
    """Ratios written as text (a command-line list), each checked by `check_ratio`."""
    ratios = []
    for text in texts:
        try:
            value = float(text)
        except ValueError:
            raise PruneError(f"{what}: '{text}' is not a number; give ratios like 0.1,0.2,0.3") from None
        ratios.append(check_ratio(value, f"{what}:", above_zero))
    return ratios


def check_request(params, ratios, params_word="params", ratios_word="ratios"):
    """`(params, ratios)` as two lists of the same length: one name may be a string and one ratio a number
    for all; names are strings listed once, ratios in [0, 1)."""
    if isinstance(params, str):
        params = [params]
    if isinstance(ratios, numbers.Number):
        ratios = [ratios] * len(params)
    params, ratios = list(params), list(ratios)
    if len(params) != len(ratios):
        raise PruneError(f"{len(params)} {params_word} but {len(ratios)} {ratios_word}: give one ratio per param "
                         "(or a single ratio for all)")
    for p in params:
        if not isinstance(p, str):
            raise PruneError(f"param names must be strings, got {p!r}")
    ratios = [check_ratio(r, f"ratio for '{p}':") for p, r in zip(params, ratios)]
    dup = sorted({p for p in params if params.count(p) > 1})
    if dup:
        raise PruneError(f"params listed more than once: {', '.join(dup)}")
    return params, ratios


def check_names(view, params):
    """Every name in `params` is a parameter of `view`; else the error suggests the closest names."""
    known = view.param_names()
    known_set = set(known)
    for p in params:
        if p not in known_set:
            near = difflib.get_close_matches(p, known, n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(repr(n) for n in near)}?" if near else " List them with --print_params."
            raise PruneError(f"unknown parameter '{p}'.{hint}")
