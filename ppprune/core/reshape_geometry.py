"""Where the channel axis of a reshape's input lands in its output: pure shape arithmetic, no graph.

Shapes are lists of ints, -1 for an unknown dim. Each function answers one question about a reshape from
`in_shape` to `out_shape`; the reshape rule (rules.py) turns the answers into channel maps.
"""
import numpy as np

# Stands in for an unknown (-1) dim when comparing products of shapes: a large prime that no real
# product of dims matches by accident, so a batch dim only ever matches a batch dim.
UNKNOWN = 1_000_003


def known(shape):
    return [UNKNOWN if d < 0 else d for d in shape]


def _around(shape, axis):
    """(product of the dims before `axis`, its size, product of the dims after it)."""
    return int(np.prod(shape[:axis])), shape[axis], int(np.prod(shape[axis + 1:]))


def regroup(in_shape, out_shape, axis):
    """Where axis `axis` of a tensor lands after a reshape: (out_axis, k) where input channel c becomes
    output entries c*k .. c*k+k-1, or None when the reshape mixes that axis with others."""
    ins, outs = known(in_shape), known(out_shape)
    pre, size, post = _around(ins, axis)
    acc = 1
    for b, d in enumerate(outs):
        if acc == pre and d % size == 0 and post % (d // size) == 0 and int(np.prod(outs[b + 1:])) == post // (d // size):
            return b, d // size
        if acc > pre:
            return None
        acc *= d  # unit dims keep acc == pre: the channel axis may still come ([1,C,1,1] -> [1,C])
    return None


def split_axis(in_shape, out_shape, axis):
    """(b, g, m) if a reshape splits axis `axis` into out axes b, b+1 of sizes g, m (a channel shuffle's
    [N, C, H, W] -> [N, g, C/g, H, W]): channel c becomes (c // m, c % m). Else None."""
    ins, outs = known(in_shape), known(out_shape)
    pre, size, post = _around(ins, axis)
    for b in range(len(outs) - 1):
        g, m = outs[b], outs[b + 1]
        if g > 1 and m > 1 and g * m == size and int(np.prod(outs[:b])) == pre and int(np.prod(outs[b + 2:])) == post:
            return b, g, m
    return None


def split_source(in_shape, out_shape, out_axis):
    """(in_axis, (b, g, m)) if out axis `out_axis` is the inner part m of a split input axis."""
    for a in range(len(in_shape)):
        split = split_axis(in_shape, out_shape, a)
        if split is not None and split[0] + 1 == out_axis:
            return a, split
    return None


def merged_into(in_shape, out_shape, out_axis):
    """(in_axis, k) if out axis `out_axis` merges in axis `in_axis` with k trailing entries per channel."""
    for a in range(len(in_shape)):
        where = regroup(in_shape, out_shape, a)
        if where is not None and where[0] == out_axis and where[1] > 1 and known(in_shape)[a] > 1:
            return a, where[1]
    return None
