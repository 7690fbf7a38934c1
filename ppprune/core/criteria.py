"""Criteria: a score per master channel; lower scores are pruned first.

Each criterion is `fn(group, read_tensor) -> np.ndarray[size]` where `read_tensor(name)` returns a tensor of
the scope as a read-only numpy view (no copy, valid while the scope is unchanged: return new arrays). Criteria look
only at the master weight, except `bn_scale` which reads the batch norm that follows it, and the group-wide
scores of `group_criterion`, which read every conv and fc weight that loses the channels.
"""
import numpy as np

from .registry import Registry
from .errors import PruneError

CRITERIA = Registry("criterion", error=PruneError)
GROUP_REDUCTIONS = ("sum", "mean", "max")


def _rows(w, axis):
    """Slices of `w` along `axis` as rows, in the tensor's own dtype (sums accumulate in float64)."""
    return np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)


def _l1_rows(rows):
    return np.abs(rows).sum(axis=1, dtype=np.float64)


def _l2_rows(rows):
    return np.sqrt(np.einsum("ij,ij->i", rows, rows, dtype=np.float64))


def _fpgm_rows(rows):
    """FPGM: a row close to all others (near the geometric median) is the most replaceable."""
    f = rows.astype(np.float64)
    sq = (f**2).sum(axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * f @ f.T, 0.0)
    return np.sqrt(d2).sum(axis=1)


def _row_criterion(name, row_score):
    """Register the criterion `name` scoring each master filter by `row_score` of the rows; the row score
    stays reachable (`.row_score`) for the group-wide scores of `group_criterion`."""
    def score(group, read_tensor):
        return row_score(_rows(read_tensor(group.param), group.axis))

    score.__name__, score.row_score = name, row_score
    return CRITERIA.register(score, name=name)


l1_norm = _row_criterion("l1_norm", _l1_rows)
l2_norm = _row_criterion("l2_norm", _l2_rows)
geometry_median = _row_criterion("geometry_median", _fpgm_rows)


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


def group_criterion(name, reduction):
    """Score a channel from every weight of its group, as Torch-Pruning's group importance does: the
    criterion `name` scores the slices of each conv and fc weight the group reaches (the master's filters,
    followers' filters, consumers' input slices), each mapped to the master channels it holds, and the
    per-weight scores are combined by `reduction` ('sum', 'mean' or 'max')."""
    if reduction not in GROUP_REDUCTIONS:
        raise PruneError(f"group_reduction={reduction!r}: give one of {', '.join(GROUP_REDUCTIONS)} (or None to "
                         "score the master weight alone)")
    rows = [n for n in CRITERIA.names() if hasattr(CRITERIA.get(n), "row_score")]
    if name not in rows:
        raise PruneError(f"group_reduction works with {', '.join(rows)}; criterion {name!r} scores one "
                         "tensor. Drop group_reduction or choose one of those.")
    row_score = CRITERIA.get(name).row_score

    def score(group, read_tensor):
        per_weight = []
        for (key, axis), ch in group.nodes.items():
            tensor = group.names.get(key)
            w = read_tensor(tensor) if tensor else None
            if w is None or w.ndim < 2:  # biases and norm statistics carry no filter
                continue
            values = np.zeros(group.size)
            np.add.at(values, ch.master, row_score(_rows(w, axis))[ch.local])  # a channel held twice counts twice
            reached = np.zeros(group.size, dtype=bool)
            reached[ch.master] = True
            per_weight.append(np.where(reached, values, np.nan))
        stacked = np.vstack(per_weight)
        return {"sum": np.nansum, "mean": np.nanmean, "max": np.nanmax}[reduction](stacked, axis=0)

    score.__name__ = f"{name}, group {reduction}"
    return score


def get_criterion(name, group_reduction=None):
    """A criterion function from its registered `name` (or a callable as is); with `group_reduction`,
    its group-wide score (`group_criterion`)."""
    if group_reduction is not None:
        if callable(name):
            raise PruneError("group_reduction needs a criterion by name (l1_norm, l2_norm, geometry_median)")
        return group_criterion(name, group_reduction)
    if callable(name):
        return name
    return CRITERIA.get(name)
