"""Plans: which master channels each pruned weight loses, and everything that follows from it.

A plan is data: the list of (param, axis, ratio, pruned indices) entries is enough to replay it on any
program holding those weights (a train program and its eval clone, a reloaded checkpoint), because the
coupled tensors are re-derived by walking that program. `tensors` and `shapes` are kept for people and
for checking a checkpoint against the plan.
"""
import json
from collections import defaultdict

import numpy as np

from ..fsutil import atomic_write
from .errors import PruneError
from .groups import discover, master_axis


class Plan:
    def __init__(self, entries=(), skipped=(), criterion=None, idx_selector=None, tensors=None, shapes=None, meta=None):
        self.entries = list(entries)  # dicts: param, axis, ratio, size, pruned
        self.skipped = list(skipped)  # dicts: param, reason
        self.criterion, self.idx_selector = criterion, idx_selector
        self.tensors = tensors or {}  # persistable name -> {axis: [indices]}
        self.shapes = shapes or {}  # persistable name -> shape after pruning
        self.meta = dict(meta or {})  # free-form provenance (base weights, config) written by the tools

    def to_dict(self):
        return {
            "criterion": self.criterion,
            "idx_selector": self.idx_selector,
            "entries": [dict(e, pruned=[int(i) for i in e["pruned"]]) for e in self.entries],
            "skipped": self.skipped,
            "tensors": {n: {str(a): [int(i) for i in idx] for a, idx in axes.items()} for n, axes in self.tensors.items()},
            "shapes": {n: [int(d) for d in s] for n, s in self.shapes.items()},
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, d):
        tensors = {n: {int(a): idx for a, idx in axes.items()} for n, axes in d.get("tensors", {}).items()}
        return cls(d["entries"], d.get("skipped", []), d.get("criterion"), d.get("idx_selector"), tensors,
                   d.get("shapes", {}), d.get("meta"))

    def save(self, path):
        with atomic_write(path) as f:
            json.dump(self.to_dict(), f, indent=1)

    @classmethod
    def load(cls, path):
        with open(path) as f:
            return cls.from_dict(json.load(f))

    def __repr__(self):
        body = ", ".join(f"{e['param']}: -{len(e['pruned'])}/{e['size']}" for e in self.entries)
        return f"Plan({body})"


class Work:
    """A plan bound to one program's view: removed indices per (value, axis) and graph edits."""

    def __init__(self):
        self.removal = {}
        self.edits = defaultdict(int)  # (kind, op, name, pos) -> channels removed

    def add(self, removal, edits):
        for node, idx in removal.items():
            old = self.removal.get(node)
            self.removal[node] = idx if old is None else np.union1d(old, idx)
        for kind, op, name, pos, n in edits:
            self.edits[(kind, op, name, pos)] += n


class _Claims:
    """Which planned group owns each channel of each (tensor, axis): one int array per node."""

    def __init__(self):
        self.owner = {}
        self.groups = []

    def check(self, group, ratio, param):
        """True if `group` is new. Branches meeting in a concat share a tensor but not its channels,
        which is fine. The same group at the same ratio is planned once (residual blocks named conv by
        conv); any other overlap is ambiguous and refused."""
        owners, covered = set(), True
        for node, ch in group.nodes.items():
            owned = self.owner.get(node)
            if owned is None:
                covered = False
                continue
            # A later concat branch may reach past the channels claimed so far: those are unowned.
            hit = np.full(len(ch.local), -1)
            inside = ch.local < len(owned)
            hit[inside] = owned[ch.local[inside]]
            owners.update(np.unique(hit[hit >= 0]).tolist())
            covered = covered and bool((hit >= 0).all())
        if not owners:
            return True
        if len(owners) == 1:
            index = owners.pop()
            other = self.groups[index][0]
            if covered and other.nodes.keys() == group.nodes.keys():
                return self.same(index, ratio, param)
            owners = {index}
        names = ", ".join(sorted(f"'{self.groups[o][0].master}'" for o in owners))
        raise PruneError(
            f"'{param}' shares some channels with {names} (e.g. through a concat feeding an add); pruning both "
            f"would cut the same tensors twice. List only one of them."
        )

    def same(self, index, ratio, param):
        """`param` belongs to planned group `index`: plan it once (False), or refuse a different ratio."""
        other, other_ratio = self.groups[index]
        if other_ratio == ratio:
            return False
        raise PruneError(
            f"'{param}' (ratio {ratio}) must lose the same channels as '{other.master}' (ratio {other_ratio}): "
            f"they are coupled (e.g. by a residual add). Give them the same ratio or list only one of them."
        )

    def owning(self, view, param):
        """The planned group that already holds every output channel of conv weight `param`, one for one, or
        None. Couplings are symmetric, so walking from `param` would find that group again: in a deep
        residual stage that second walk per conv is what would make planning quadratic in depth."""
        node = master_axis(view, param)
        owned = self.owner.get(node)
        if owned is None or len(owned) != view.shape(node[0])[node[1]] or owned.min() != owned.max() or owned[0] < 0:
            return None
        group = self.groups[int(owned[0])][0]
        ch = group.nodes[node]
        if len(ch) != group.size or len(owned) != group.size or len(np.unique(ch.master)) != group.size:
            return None
        return int(owned[0])

    def add(self, group, ratio):
        index = len(self.groups)
        self.groups.append((group, ratio))
        for node, ch in group.nodes.items():
            owned = self.owner.get(node)
            if owned is None:
                owned = self.owner[node] = np.full(int(ch.local.max()) + 1, -1)
            elif len(owned) <= ch.local.max():
                owned = self.owner[node] = np.concatenate([owned, np.full(int(ch.local.max()) + 1 - len(owned), -1)])
            owned[ch.local] = index


def build(view, read, params, ratios, criterion, selector, fixed=None):
    """Plan pruning `params` at `ratios` on `view`. `fixed` maps a param to pruned indices to use instead
    of selecting (replaying a saved plan). Raises PruneError before anything is changed."""
    plan, work = Plan(), Work()
    claims = _Claims()
    for param, ratio in zip(params, ratios):
        index = claims.owning(view, param)
        if index is not None:
            claims.same(index, ratio, param)
            continue
        node = master_axis(view, param)
        if view.shape(node[0])[node[1]] == 1:  # a 1-channel head (a segmentation map): no ratio removes anything
            plan.skipped.append({"param": param, "reason": "it has one output channel: nothing to prune"})
            continue
        group = discover(view, param)
        if group.outputs:
            reason = "its channels reach a network output; pruning it would change the output shape"
            plan.skipped.append({"param": param, "reason": reason + (f" ({group.output_reason})" if group.output_reason else "")})
            continue
        if not claims.check(group, ratio, param):
            continue
        claims.add(group, ratio)
        if fixed is not None:
            pruned = np.asarray(fixed[param], dtype=np.int64)
            if len(pruned) and (pruned.min() < 0 or pruned.max() >= group.size):
                raise PruneError(f"plan prunes channel {int(pruned.max())} of '{param}', which has {group.size}")
        elif ratio > 0:
            scores = criterion(group, read)
            pruned = _keep_every_tensor(view, group, selector(scores, ratio, group.atoms()), scores)
        else:
            pruned = np.zeros(0, dtype=np.int64)
        removal, edits = group.removal(pruned)
        work.add(removal, edits)
        plan.entries.append({"param": param, "axis": group.axis, "ratio": ratio, "size": group.size, "pruned": pruned.tolist()})
    for (key, axis), idx in work.removal.items():
        shape = view.shape(key)
        if shape and shape[axis] > 0 and len(idx) >= shape[axis]:
            raise PruneError(
                f"the plan would remove every channel of a tensor (axis {axis} of shape {shape}) reached by "
                f"{', '.join(e['param'] for e in plan.entries)}; lower their ratios or prune fewer of them together"
            )
    return plan, work


def _keep_every_tensor(view, group, pruned, scores):
    """A coupled tensor may see only part of the master's channels (a split piece); if the selection
    would empty one, keep its best-scored channel (with its atom) instead."""
    atoms = {int(m): atom for atom in group.atoms() for m in atom}
    pruned = set(int(i) for i in pruned)
    while True:
        mask = np.zeros(group.size, dtype=bool)
        mask[list(pruned)] = True
        for key, axis in group.partial_nodes():
            ch = group.nodes[(key, axis)]
            shape = view.shape(key)
            if shape and shape[axis] > 0 and len(ch.select(mask)) >= shape[axis]:
                keep = max(set(ch.master.tolist()) & pruned, key=lambda m: (scores[m], -m))
                pruned -= set(atoms[keep].tolist())
                break
        else:
            return np.array(sorted(pruned), dtype=np.int64)
