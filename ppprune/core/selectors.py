"""Selectors: from scores and a ratio, the master channels to prune.

`fn(scores, ratio, atoms) -> np.ndarray` of pruned master indices (sorted). `atoms` lists channels that
must go together (whole groups of grouped convs); each atom is scored by the mean of its channels. Ties
are broken by the lower channel index so results never depend on sort stability.
"""
import numpy as np

from .registry import Registry
from .errors import PruneError

SELECTORS = Registry("idx_selector", error=PruneError)


def _atom_scores(scores, atoms):
    if len(atoms) == len(scores):  # every atom is one channel
        return np.asarray(scores, dtype=np.float64)
    return np.array([scores[a].mean() for a in atoms])


def _ranked(scores, atoms):
    first = np.array([a[0] for a in atoms])
    return np.lexsort((first, _atom_scores(scores, atoms)))  # ascending score, then ascending index


def _channels_of_first(atoms, order, count):
    """The channels of the first `count` atoms in `order`, sorted."""
    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    return np.sort(np.concatenate([atoms[i] for i in order[:count]]))


@SELECTORS.register(name="default_idx_selector")
def default_idx_selector(scores, ratio, atoms):
    """Prune round(n * ratio) lowest-scored channels (half to even), keeping at least one."""
    n = len(atoms)
    count = min(int(round(n * ratio)), n - 1)
    return _channels_of_first(atoms, _ranked(scores, atoms), count)


@SELECTORS.register(name="optimal_threshold")
def optimal_threshold(scores, ratio, atoms):
    """`ratio` is a share of the summed squared scores: find where the ascending cumulative share reaches
    it and prune every channel scored below the midpoint of the two scores around that point."""
    atom_scores = _atom_scores(scores, atoms)
    ordered = np.sort(atom_scores)
    share = np.cumsum(ordered**2) / max((ordered**2).sum(), np.finfo(float).tiny)
    pivot = int(np.searchsorted(share, ratio))
    if pivot == 0:
        return np.zeros(0, dtype=np.int64)
    pivot = min(pivot, len(ordered) - 1)
    threshold = (ordered[pivot - 1] + ordered[pivot]) / 2
    below = np.flatnonzero(atom_scores < threshold)
    order = _ranked(scores, atoms)
    order = [i for i in order if i in set(below.tolist())]
    return _channels_of_first(atoms, order, min(len(order), len(atoms) - 1))


def get_selector(name):
    if callable(name):
        return name
    return SELECTORS.get(name)
