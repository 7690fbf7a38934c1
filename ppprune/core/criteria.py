"""Criteria: a score per master channel; lower scores are pruned first.

Each criterion is `fn(group, read_tensor) -> np.ndarray[size]` where `read_tensor(name)` returns a tensor of
the scope as a read-only numpy view (no copy, valid while the scope is unchanged: return new arrays). Criteria look
only at the master weight, except `bn_scale` which reads the batch norm that follows it.
"""
import numpy as np

from ..registry import Registry
from .errors import PruneError

CRITERIA = Registry("criterion", error=PruneError)


def _filters(group, read_tensor):
    """The master's filters as rows, in the tensor's own dtype (sums accumulate in float64)."""
    w = read_tensor(group.param)
    return np.moveaxis(w, group.axis, 0).reshape(w.shape[group.axis], -1)


@CRITERIA.register(name="l1_norm")
def l1_norm(group, read_tensor):
    return np.abs(_filters(group, read_tensor)).sum(axis=1, dtype=np.float64)


@CRITERIA.register(name="l2_norm")
def l2_norm(group, read_tensor):
    f = _filters(group, read_tensor)
    return np.sqrt(np.einsum("ij,ij->i", f, f, dtype=np.float64))


@CRITERIA.register(name="geometry_median")
def geometry_median(group, read_tensor):
    """FPGM: a filter close to all others (near the geometric median) is the most replaceable."""
    f = _filters(group, read_tensor).astype(np.float64)
    sq = (f**2).sum(axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * f @ f.T, 0.0)
    return np.sqrt(d2).sum(axis=1)


@CRITERIA.register(name="bn_scale")
def bn_scale(group, read_tensor):
    """|gamma| of the first batch norm the master's channels reach (network slimming)."""
    for key, axis in group.tagged("bn_scale"):
        ch = group.nodes[(key, axis)]
        name = group.names.get(key)
        if name is None:
            continue
        gamma = np.abs(read_tensor(name).astype(np.float64))
        scores = np.full(group.size, np.inf)
        scores[ch.master] = gamma[ch.local]
        if np.isfinite(scores).all():
            return scores
    raise PruneError(
        f"criterion 'bn_scale' needs a batch_norm after '{group.param}', and none follows it. "
        f"Use 'l1_norm' for this weight."
    )


def get_criterion(name):
    if callable(name):
        return name
    return CRITERIA.get(name)
