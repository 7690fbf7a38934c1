"""Overlapping groups merged into one: a conv whose output channels are a concat of other convs' channels,
meeting them in an add (CSP stages, PAN necks), couples to *part* of each of their groups.

Each listed conv's group is walked as usual; groups that reach the same channel of the same tensor are
one group. `merge` builds it: a master channel of one member and a master channel of another are the same
merged channel when they reach the same (tensor, axis, index), so every coupled index follows exactly one
merged channel and pruning a set of merged channels is a filter again (`Group.removal`).

Selection is done once over the union. Each member keeps its own ratio as a count of its own channels
(`quotas`); `select_quota` takes merged channels lowest score first, smallest members first, while no
member exceeds its count; `check_quota` refuses ratios whose counts cannot all hold, saying what each
member asks and would lose.
"""
from collections import defaultdict

import numpy as np

from .channel_map import ChannelMap
from .errors import PruneError
from .groups import Group


class Member:
    """A listed conv weight of a merged group: its own walk and where its master channels landed."""

    __slots__ = ("param", "ratio", "group", "classes")

    def __init__(self, param, ratio, group):
        self.param, self.ratio, self.group = param, ratio, group
        self.classes = np.arange(group.size)  # master channel -> merged channel (identity until merged)


def merge(members):
    """One Group over the union of `members`' groups; sets each member's `classes`."""
    offsets = np.cumsum([0] + [m.group.size for m in members])
    parts = defaultdict(list)  # node -> [(local, global master)]
    for m, off in zip(members, offsets):
        for node, ch in m.group.nodes.items():
            parts[node].append((ch.local, ch.master + off))
    labels = np.arange(offsets[-1])
    a, b = [], []
    for pieces in parts.values():
        local = np.concatenate([p[0] for p in pieces])
        gid = np.concatenate([p[1] for p in pieces])
        order = np.lexsort((gid, local))
        local, gid = local[order], gid[order]
        same = local[1:] == local[:-1]  # one index reached from two masters: they are one channel
        a.append(gid[:-1][same])
        b.append(gid[1:][same])
    labels = _components(labels, np.concatenate(a), np.concatenate(b))
    _, first, classes = np.unique(labels, return_index=True, return_inverse=True)
    renumber = np.argsort(np.argsort(first))  # merged channels numbered in order of first appearance
    classes = renumber[classes]
    head = members[0].group
    group = Group(head.param, head.key, head.axis, int(classes.max()) + 1)
    for m, off in zip(members, offsets):
        m.classes = classes[off:off + m.group.size]
        _absorb(group, m)
    group.names = {k: n for m in members for k, n in m.group.names.items()}
    return group


def _components(labels, a, b):
    """Connected components of edges (a, b) over `labels` (initially arange): each gets its smallest id."""
    while len(a):
        low = np.minimum(labels[a], labels[b])
        before = labels.copy()
        np.minimum.at(labels, a, low)
        np.minimum.at(labels, b, low)
        labels = labels[labels]  # pointer jumping: chains collapse in log steps
        if np.array_equal(labels, before):
            break
    return labels


def _absorb(group, m):
    src, cls = m.group, m.classes
    for node, ch in src.nodes.items():
        mapped = ChannelMap(ch.local, cls[ch.master])
        old = group.nodes.get(node)
        group.nodes[node] = mapped if old is None else old.union(mapped)
    for tag, nodes in src.tags.items():
        have = group.tags.setdefault(tag, [])
        have.extend(n for n in nodes if n not in have)
    for table, mine in ((group.attr_edits, src.attr_edits), (group.const_edits, src.const_edits)):
        for where, (units, per) in mine.items():
            mapped = ChannelMap(units.local, cls[units.master])
            old = table.get(where)
            table[where] = (mapped if old is None else old[0].union(mapped), per)
    for atom in src.atoms():
        group.bind(cls[atom])
    group.renormalized.extend(w for w in src.renormalized if w not in group.renormalized)


def scores(members, size, criterion, read_tensor):
    """A merged channel scores the mean of its members' scores for it."""
    total, seen = np.zeros(size), np.zeros(size)
    for m in members:
        np.add.at(total, m.classes, criterion(m.group, read_tensor))
        np.add.at(seen, m.classes, 1)
    return total / seen


def quotas(m, keep_one=True):
    """(low, target, high) atoms member `m` may lose at its ratio: default_idx_selector's count, with the
    rounding either way allowed (a concat of two 8-channel convs at 0.3 loses 2 + 2, not the 5 a 16-channel
    conv alone would); `keep_one` keeps at least one atom, as the selector does."""
    n_atoms = len(m.group.atoms())
    exact = n_atoms * m.ratio
    most = n_atoms - 1 if keep_one else n_atoms
    return tuple(min(c, most) for c in (int(np.floor(exact)), int(round(exact)), int(np.ceil(exact))))


def _member_atoms(m, atom_of, n):
    """How many of member `m`'s own atoms each merged atom holds (merged atoms are unions of them)."""
    firsts = np.array([a[0] for a in m.group.atoms()])
    return np.bincount(atom_of[m.classes[firsts]], minlength=n)


def select_quota(view, group, members, score, keep_tensors=True):
    """Merged channels to prune: lowest score first, each member held to its quota and (`keep_tensors`)
    no coupled tensor emptied: a concat input or split piece that sees only some merged channels keeps
    one, even if a member then loses fewer than its ratio asks (as a single group does)."""
    atoms = group.atoms()
    atom_of = np.empty(group.size, dtype=np.int64)
    for i, atom in enumerate(atoms):
        atom_of[atom] = i
    columns = [_member_atoms(m, atom_of, len(atoms)) for m in members]
    bounds = [quotas(m, keep_tensors) for m in members]
    for key, axis in group.partial_nodes() if keep_tensors else ():
        ch, shape = group.nodes[(key, axis)], view.shape(key)
        local, first = np.unique(ch.local, return_index=True)
        if shape and 0 < shape[axis] <= len(local):  # every index of the tensor follows a merged channel
            columns.append(np.bincount(atom_of[ch.master[first]], minlength=len(atoms)))
            bounds.append((0, shape[axis] - 1, shape[axis] - 1))
    adds = np.stack(columns, axis=1)  # what each atom takes from each member (atoms) and tensor (indices)
    low, target, high = (np.array(q) for q in zip(*bounds))
    first = np.array([a[0] for a in atoms])
    atom_scores = np.array([score[a].mean() for a in atoms])
    order = np.lexsort((first, atom_scores))
    taken = np.zeros(len(bounds), dtype=np.int64)
    chosen = np.zeros(len(atoms), dtype=bool)
    # Smallest members first: a conv whose channels are part of a wider one's fills its own quota before
    # the wider one tops up from what is left (laminar CSP families always succeed this way). Then, for
    # members still short, rounding the other way is allowed.
    by_size = sorted(range(len(members)), key=lambda j: (len(members[j].group.atoms()), j))
    for cap, goal in ((target, target), (high, low)):
        for j in by_size:
            for i in order:
                if taken[j] >= goal[j]:
                    break
                if not chosen[i] and adds[i, j] and (taken + adds[i] <= cap).all():
                    chosen[i] = True
                    taken += adds[i]
    return np.sort(np.concatenate([atoms[i] for i in np.flatnonzero(chosen)] or [np.zeros(0, np.int64)]))


def check_quota(group, members, pruned):
    """Refuse a selection (made with `keep_tensors=False`: emptied tensors are not the ratios' fault) that
    leaves some member outside its quota, naming what each member would lose."""
    atoms = group.atoms()
    atom_of = np.empty(group.size, dtype=np.int64)
    for i, atom in enumerate(atoms):
        atom_of[atom] = i
    hit = np.zeros(len(atoms), dtype=bool)
    hit[atom_of[pruned]] = True
    lost = [int(_member_atoms(m, atom_of, len(atoms))[hit].sum()) for m in members]
    bounds = [quotas(m, keep_one=False) for m in members]
    if all(lo <= n <= hi for n, (lo, _, hi) in zip(lost, bounds)):
        return

    def unit(m):
        n = len(m.group.atoms())
        return f"{n} channels" if n == m.group.size else f"{n} channel groups"

    detail = "; ".join(f"'{m.param}' asks {m.ratio:g} ({t} of {unit(m)}) and would lose {n} (ratio {n / len(m.group.atoms()):.3g})"
                       for m, n, (_, t, _) in zip(members, lost, bounds))
    raise PruneError(
        f"{', '.join(repr(m.param) for m in members)} share channels (e.g. through a concat feeding an add) and "
        f"are pruned as one group, but their ratios contradict each other: {detail}. Give each the ratio it "
        f"would lose, or one ratio to all of them.")


def member_pruned(member, pruned, size):
    """The member's own master channels that merged channels `pruned` remove."""
    mask = np.zeros(size, dtype=bool)
    mask[pruned] = True
    return np.flatnonzero(mask[member.classes])
