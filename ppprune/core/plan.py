"""Plans as data: which master channels each pruned weight loses, and the file they are saved in.

A plan is data: the list of (param, axis, ratio, pruned indices) entries is enough to replay it on any
program holding those weights (a train program and its eval clone, a reloaded checkpoint), because the
coupled tensors are re-derived by walking that program. `tensors` and `shapes` are kept for people and
for checking a checkpoint against the plan. The planner (`planner.build`) returns a finished plan: its
entries, the tensors and shapes of the scope it changes, and (`cuts`) what it cuts from the program it was
built on.
"""
import hashlib
import json
import warnings
from dataclasses import dataclass

import numpy as np

from ..fsutil import atomic_write
from .errors import PruneError


@dataclass
class Entry:
    """One pruned conv weight: `pruned` of the `size` channels on `axis`, asked at `ratio`. `renormalizes`:
    the ops normalizing over those channels (zeroing them is not pruning them); `path` and `follows` (the
    convs a grouped conv's channels are those of) only in plans of a traced Layer."""

    param: str
    axis: int
    ratio: float
    size: int
    pruned: list
    renormalizes: list | None = None
    path: str | None = None
    follows: list | None = None

    def to_dict(self):
        d = {"param": self.param, "axis": self.axis, "ratio": self.ratio, "size": self.size,
             "pruned": [int(i) for i in self.pruned]}
        for key in ("renormalizes", "path", "follows"):  # written only when set, as plan files always had them
            if getattr(self, key) is not None:
                d[key] = getattr(self, key)
        return d


class Plan:
    def __init__(self, entries=(), skipped=(), criterion=None, idx_selector=None, tensors=None, shapes=None, meta=None):
        self.entries = list(entries)  # Entry
        self.skipped = list(skipped)  # dicts: param, reason
        self.criterion, self.idx_selector = criterion, idx_selector
        self.tensors = tensors or {}  # persistable name -> {axis: [indices]}
        self.shapes = shapes or {}  # persistable name -> shape after pruning
        self.meta = dict(meta or {})  # free-form provenance (base weights, config) written by the tools
        self.cuts = None  # ProgramCuts on the program `build` planned on (None for a loaded plan)

    def to_dict(self):
        return {
            "criterion": self.criterion,
            "idx_selector": self.idx_selector,
            "entries": [e.to_dict() for e in self.entries],
            "skipped": self.skipped,
            "tensors": {n: {str(a): [int(i) for i in idx] for a, idx in axes.items()} for n, axes in self.tensors.items()},
            "shapes": {n: [int(d) for d in s] for n, s in self.shapes.items()},
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, d):
        tensors = {n: {int(a): idx for a, idx in axes.items()} for n, axes in d.get("tensors", {}).items()}
        return cls([Entry(**e) for e in d["entries"]], d.get("skipped", []), d.get("criterion"),
                   d.get("idx_selector"), tensors, d.get("shapes", {}), d.get("meta"))

    def save(self, path):
        with atomic_write(path) as f:
            json.dump(self.to_dict(), f, indent=1)

    @classmethod
    def load(cls, path):
        try:
            with open(path) as f:
                return cls.from_dict(json.load(f))
        except (ValueError, KeyError, TypeError, AttributeError) as e:  # truncated, not JSON, or not a plan
            raise PruneError(f"{path} is not a readable plan ({e.__class__.__name__}: truncated or edited); restore "
                             "the plan.json written with the checkpoint beside it, or prune again") from None

    def digest(self):
        """sha1 of what the plan prunes (not its meta): checkpoints record it to be checked against their plan."""
        d = self.to_dict()
        body = json.dumps({k: d[k] for k in ("entries", "tensors", "shapes")}, sort_keys=True, default=int)
        return hashlib.sha1(body.encode()).hexdigest()

    def __repr__(self):
        body = ", ".join(f"{e.param}: -{len(e.pruned)}/{e.size}" for e in self.entries)
        return f"Plan({body})"


class ProgramCuts:
    """What a plan cuts from one program's view: removed indices per (value, axis), the graph edits
    (`groups.Edit`, one per edited place) and, once the plan is finished, every value's new shape."""

    def __init__(self):
        self.removal = {}
        self._edits = {}  # (kind, op, name, pos) -> Edit, its channels summed over the groups editing it
        self.shapes = {}  # key -> shape after pruning

    @property
    def edits(self):
        return list(self._edits.values())

    def add(self, removal, edits):
        for node, idx in removal.items():
            old = self.removal.get(node)
            self.removal[node] = idx if old is None else np.union1d(old, idx)
        for e in edits:
            old = self._edits.get(e.place)
            self._edits[e.place] = e if old is None else e._replace(n=old.n + e.n)


def warn_if_zeroing_differs(plan):
    """Lazy pruning zeroes channels; through a layer norm over them, that is not what pruning computes."""
    renormalized = [e.param for e in plan.entries if e.renormalizes]
    if renormalized:
        warnings.warn(f"lazy pruning zeroes the channels of {', '.join(renormalized)}, but a layer norm takes its "
                      f"statistics over them: the zeroed model computes something else than the pruned one")
