"""The planner: from requested params and ratios to a finished `Plan` (plan.py).

`Listing` turns the listed conv weights into units (one member's group, or the merged group of members
whose groups overlap); `choose` scores and selects each unit's master channels; `build` lists, chooses,
collects the cuts and finishes the plan. Every refusal happens here, before anything is changed.
"""
import numpy as np

from .disjoint import DisjointSets
from .errors import CannotFollow, PruneError
from .groups import discover, followed_convs, master_axis
from .merged import Member, check_quota, member_pruned, merge, select_quota
from .merged import scores as merged_scores
from .plan import Entry, Plan, ProgramCuts
from .removal import extend_to_training, new_shapes, scope_changes
from .selectors import default_idx_selector


class _Ownership:
    """Which listed member owns each channel of each (tensor, axis): one int array per node."""

    def __init__(self):
        self.owner = {}
        self.members = []

    def overlaps(self, group):
        """(members whose channels `group` reaches, or the one member whose group it is). Branches meeting
        in a concat share a tensor but not its channels: no overlap."""
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
        if len(owners) == 1 and covered:
            index = next(iter(owners))
            if self.members[index].group.nodes.keys() == group.nodes.keys():
                return owners, index
        return owners, None

    def same(self, index, ratio, param):
        """`param` belongs to member `index`'s group, one for one: plan it once, or refuse another ratio."""
        other = self.members[index]
        if other.ratio == ratio:
            return
        raise PruneError(
            f"'{param}' (ratio {ratio}) must lose the same channels as '{other.param}' (ratio {other.ratio}): "
            f"they are coupled (e.g. by a residual add). Give them the same ratio or list only one of them."
        )

    def owning(self, view, param):
        """The member whose group holds every output channel of conv weight `param`, one for one, or None.
        Couplings are symmetric, so walking from `param` would find that group again: in a deep residual
        stage that second walk per conv is what would make planning quadratic in depth."""
        node = master_axis(view, param)
        owned = self.owner.get(node)
        if owned is None or len(owned) != view.shape(node[0])[node[1]] or owned.min() != owned.max() or owned[0] < 0:
            return None
        group = self.members[int(owned[0])].group
        ch = group.nodes[node]
        if len(ch) != group.size or len(owned) != group.size or len(np.unique(ch.master)) != group.size:
            return None
        return int(owned[0])

    def add(self, member):
        index = len(self.members)
        self.members.append(member)
        for node, ch in member.group.nodes.items():
            owned = self.owner.get(node)
            if owned is None:
                owned = self.owner[node] = np.full(int(ch.local.max()) + 1, -1)
            elif len(owned) <= ch.local.max():
                owned = self.owner[node] = np.concatenate([owned, np.full(int(ch.local.max()) + 1 - len(owned), -1)])
            owned[ch.local] = index
        return index


class Listing:
    """The listed conv weights of one plan as units: a unit is one member's group, or the merged group of
    members whose groups overlap (see merged.py). Weights whose group is a member's own are folded in,
    unless `fold=False` (sensitivity measures each of those with its own scores, as PaddleSlim does).
    `skip_blocked`: a weight whose channels reach an op they cannot pass is skipped with the reason, as an
    output conv is, instead of failing (what "every prunable conv" asks for)."""

    def __init__(self, view, fold=True, skip_blocked=False):
        self.view, self.fold, self.skip_blocked = view, fold, skip_blocked
        self.ownership = _Ownership()
        self._units = DisjointSets()  # member indices; a member overlapping earlier ones names their unit
        self.skipped = []  # dicts: param, reason

    def add(self, param, ratio, group=None):
        """List `param` at `ratio` (`group`: its walk, if already done)."""
        index = self.ownership.owning(self.view, param) if self.fold and group is None else None
        if index is not None:
            return self.ownership.same(index, ratio, param)
        if group is None:
            key, axis = master_axis(self.view, param)
            if self.view.shape(key)[axis] == 1:  # a 1-channel head (a segmentation map): no ratio removes anything
                self.skipped.append({"param": param, "reason": "it has one output channel: nothing to prune"})
                return
            try:
                group = discover(self.view, param)
            except CannotFollow as e:
                if not self.skip_blocked:
                    raise
                self.skipped.append({"param": param, "reason": e.reason})
                return
        if group.outputs:
            self.skipped.append({"param": param, "reason": group.skip_reason()})
            return
        owners, index = self.ownership.overlaps(group)
        if index is not None and self.fold:
            return self.ownership.same(index, ratio, param)
        index = self.ownership.add(Member(param, ratio, group))
        self._units.add(index)
        for o in owners:
            self._units.join(index, o)

    @property
    def members(self):
        return self.ownership.members

    def units(self):
        """[members] of each unit, in order of their first member (`unit_group` gives its group)."""
        by_root = {}
        for i, m in enumerate(self.members):
            by_root.setdefault(self._units.find(i), []).append(m)
        return list(by_root.values())


def unit_group(members):
    """The group a unit of `Listing.units` prunes: its member's, or their merged one."""
    return members[0].group if len(members) == 1 else merge(members)


def one_group(members):
    """True if the members of a unit of `Listing.units` all reached the same nodes: one group reached from
    each conv (a residual add), not overlapping groups to be merged (a concat feeding an add)."""
    return all(m.group.nodes.keys() == members[0].group.nodes.keys() for m in members)


def choose(view, group, members, read_tensor, criterion, selector):
    """Master channels of `group` (a unit of `Listing.units`) to prune at its members' ratios."""
    if len(members) == 1:
        ratio = members[0].ratio
        if ratio <= 0:
            return np.zeros(0, dtype=np.int64)
        score = criterion(group, read_tensor)
        return _keep_every_tensor(view, group, selector(score, ratio, group.atoms()), score)
    score = merged_scores(members, group.size, criterion, read_tensor)
    if selector is default_idx_selector:
        # Ratios that contradict each other are refused; a tensor that must keep a channel only takes less.
        check_quota(group, members, select_quota(view, group, members, score, keep_tensors=False))
        return select_quota(view, group, members, score)
    ratios = sorted({m.ratio for m in members})
    if len(ratios) > 1:
        raise PruneError(
            f"{', '.join(repr(m.param) for m in members)} share channels (e.g. through a concat feeding an add) "
            f"and are pruned as one group; a selector other than default_idx_selector selects over the group at "
            f"one ratio, and they ask {', '.join(map(str, ratios))}. Give them one ratio.")
    if ratios[0] <= 0:
        return np.zeros(0, dtype=np.int64)
    return _keep_every_tensor(view, group, selector(score, ratios[0], group.atoms()), score)


def _replayed(group, members, replay):
    """Merged channels a replayed plan prunes; every member's saved indices must agree with the others'."""
    pruned = []
    for m in members:
        idx = np.asarray(replay[m.param], dtype=np.int64)
        if len(idx) and (idx.min() < 0 or idx.max() >= m.group.size):
            raise PruneError(f"plan prunes channel {int(idx.max())} of '{m.param}', which has {m.group.size}")
        pruned.append(m.classes[idx])
    pruned = np.unique(np.concatenate(pruned)) if pruned else np.zeros(0, dtype=np.int64)
    for m in members:
        if not np.array_equal(member_pruned(m, pruned, group.size), np.unique(replay[m.param])):
            raise PruneError(f"the plan prunes channels of '{m.param}' that disagree with the channels it prunes "
                             f"of the weights sharing them ({', '.join(n.param for n in members if n is not m)})")
    return pruned


def build(view, read_tensor, params, ratios, criterion, selector, replay=None, names=(None, None),
          layer_paths=None, skip_blocked=False):
    """The finished plan pruning `params` at `ratios` on `view`. `replay` maps a param to pruned indices to
    use instead of selecting (replaying a saved plan); `names`: the (criterion, selector) names it records;
    `layer_paths` ({param: structured name}, a traced Layer's) gives entries their path and the convs they
    follow; `skip_blocked` (see `Listing`) skips the params whose channels cannot be followed. Raises
    PruneError before anything is changed."""
    cuts, listing = ProgramCuts(), Listing(view, skip_blocked=skip_blocked)
    for param, ratio in zip(params, ratios):
        listing.add(param, ratio)
    chosen, renormalized = {}, {}
    for members in listing.units():
        group = unit_group(members)
        if replay is not None:
            pruned = _replayed(group, members, replay)
        else:
            pruned = choose(view, group, members, read_tensor, criterion, selector)
        cuts.add(*group.removal(pruned))
        for m in members:
            chosen[m.param] = pruned if len(members) == 1 else member_pruned(m, pruned, group.size)
            if group.renormalized and len(pruned):
                renormalized[m.param] = list(group.renormalized)
    entries = []
    for m in listing.members:
        pruned = np.asarray(chosen[m.param], dtype=np.int64).tolist()
        entry = Entry(m.param, m.group.axis, m.ratio, m.group.size, pruned, renormalizes=renormalized.get(m.param))
        if layer_paths is not None:
            entry.path, entry.follows = layer_paths[m.param], followed_convs(view, m.param) or None
        entries.append(entry)
    _check_no_tensor_emptied(view, cuts, entries)
    return _finish(view, Plan(entries, listing.skipped, *names), cuts)


def _check_no_tensor_emptied(view, cuts, entries):
    for (key, axis), idx in cuts.removal.items():
        shape = view.shape(key)
        if shape and shape[axis] > 0 and len(idx) >= shape[axis]:
            raise PruneError(
                f"the plan would remove every channel of a tensor (axis {axis} of shape {shape}) reached by "
                f"{', '.join(e.param for e in entries)}; lower their ratios or prune fewer of them together"
            )


def _finish(view, plan, cuts):
    """The removal the plan implies: its cuts extended to the training state (gradients, optimizer
    moments), every value's new shape, and the scope tensors and shapes it changes, by persistable name."""
    cuts.removal = extend_to_training(view, cuts.removal)
    cuts.shapes = new_shapes(view, cuts.removal)
    plan.tensors = {n: {a: idx.tolist() for a, idx in axes.items()} for n, axes in scope_changes(view, cuts.removal).items()}
    plan.shapes = {view.persistable_name(k): s for k, s in cuts.shapes.items() if view.persistable_name(k)}
    plan.cuts = cuts
    return plan


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
