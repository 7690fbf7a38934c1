"""Groups: a master conv weight and every (tensor, axis) whose channels are tied to its output channels.

`discover` walks the graph once from the master with all of its channels, calling the channel rules of
every forward op it meets. Each reached (tensor, axis) keeps a `ChannelMap` correspondence to the master, so
pruning any subset of master channels is a filter (`Group.removal`), not another walk.
"""
from collections import deque
from typing import NamedTuple

import numpy as np

from .channel_map import ChannelMap
from .convs import CONV_TYPES
from .disjoint import DisjointSets
from .errors import CannotFollow, PruneError
from .graph import FORWARD
from .rules import RULES


class Edit(NamedTuple):
    """Shrink, by `n`, attribute `name` of `op` (kind "attr") or entry `pos` of its constant input `name`
    (kind "const")."""

    kind: str
    op: object
    name: str
    pos: object
    n: int

    @property
    def place(self):
        return self.kind, self.op, self.name, self.pos


class Group:
    """The result of one walk from master conv weight `param` (value `key`, output channels on `axis`).
    `nodes[(key, axis)]` maps that axis's channels to master channels."""

    def __init__(self, param, key, axis, size):
        self.param, self.key, self.axis, self.size = param, key, axis, size
        self.nodes, self.tags = {}, {}
        self.attr_edits, self.const_edits = {}, {}  # (op, name[, pos]) -> (units ChannelMap, per)
        self.outputs = []
        self.output_reason = None  # why an output conv is left alone, when it is more than "reaches an output"
        self.renormalized = []  # ops normalizing over these channels: pruning is exact, zeroing is not
        self._ties = None  # DisjointSets of master channels, made when a rule first ties channels together
        self._partial = None
        self.aliased = False

    # -- what the walk found ----------------------------------------------------------------------
    def tagged(self, tag):
        return self.tags.get(tag, [])

    def partial_nodes(self):
        """Nodes that follow only some master channels (split pieces): the only ones a selection that
        keeps a master channel can empty."""
        if self._partial is None:
            self._partial = [n for n, ch in self.nodes.items() if len(np.unique(ch.master)) < self.size]
        return self._partial

    def atoms(self):
        """Master channels that must be pruned together, as a list of index arrays (ascending)."""
        if self._ties is None:
            return [np.array([i]) for i in range(self.size)]
        roots = np.array([self._ties.find(i) for i in range(self.size)])
        return [np.flatnonzero(roots == r) for r in np.unique(roots)]

    def bind(self, channels):
        """Master channels `channels` can only be pruned together."""
        if len(channels) < 2:
            return
        if self._ties is None:
            self._ties = DisjointSets(range(self.size))
        first = int(channels[0])
        for c in channels[1:]:
            self._ties.join(first, int(c))

    # -- what a selection removes -----------------------------------------------------------------
    def removal(self, pruned):
        """{(key, axis): local indices} removed when master channels `pruned` go."""
        mask = np.zeros(self.size, dtype=bool)
        mask[np.asarray(pruned, dtype=np.int64)] = True
        out = {}
        for node, ch in self.nodes.items():
            idx = ch.select(mask)
            if len(idx):
                out[node] = idx
        return out, self._edits(mask)

    def _edits(self, mask):
        edits = []
        for (op, name), (units, per) in self.attr_edits.items():
            n = len(units.select(mask)) * per
            if n:
                edits.append(Edit("attr", op, name, None, n))
        for (op, slot, pos), (units, per) in self.const_edits.items():
            n = len(units.select(mask)) * per
            if n:
                edits.append(Edit("const", op, slot, pos, n))
        return edits


class _OutputBound(Exception):
    """A rule cannot follow the channels, but only network outputs lie beyond that op."""


class _Walk:
    """The API channel rules talk to (see rules.py)."""

    def __init__(self, view, group):
        self.view, self.group = view, group
        self.queue = deque()
        self.current = None

    def shape(self, key):
        return self.view.shape(key)

    @property
    def from_layer(self):
        """True for a traced dygraph Layer: its code recomputes sizes from shapes rather than reading the
        program's constants."""
        return self.view.from_layer

    def flow(self, key, axis, ch, tag=None):
        self._reach(key, axis, ch, "flow", tag)

    def side(self, key, axis, ch, tag=None):
        self._reach(key, axis, ch, "side", tag)

    def tie_blocks(self, ch, block):
        """Master channels reaching one block of `block` local indices go together (whole groups of a
        grouped conv, pixel-shuffle blocks)."""
        if block > 1:
            for b in np.unique(ch.local // block):
                self.group.bind(ch.master[ch.local // block == b])

    def tie(self, ch):
        """Master channels that reach the same local index go together (shuffled groups, chunks)."""
        order = np.argsort(ch.local, kind="stable")
        local, master = ch.local[order], ch.master[order]
        starts = np.flatnonzero(np.r_[True, local[1:] != local[:-1]])
        for lo, hi in zip(starts, np.r_[starts[1:], len(local)]):
            if hi - lo > 1:
                self.group.bind(master[lo:hi])

    def used(self, key):
        """Whether a tensor the network computes or returns is built from size value `key` (a shape
        vector or a scalar): sizes that only feed size arithmetic nothing reads (a shape query's unused
        slice) carry no channels. A value of rank > 1 made from it counts as used."""
        view, seen, todo = self.view, set(), [key]
        while todo:
            k = todo.pop()
            if k in seen:
                continue
            seen.add(k)
            shape = view.shape(k)
            if view.is_fetched(k) or shape is None or len(shape) > 1:
                return True
            for op in view.consumers.get(k, []):
                if op.kind != FORWARD:
                    continue
                outs = [o for ks in op.outputs.values() for o in ks]
                if not outs:
                    return True
                todo.extend(outs)
        return False

    def users(self, key):
        return [op for op in self.view.consumers.get(key, []) if op.kind == FORWARD]

    def shrink_attr(self, op, name, units, per=1):
        self._edit(self.group.attr_edits, (op, name), units, per)

    def shrink_const(self, op, slot, pos, units, per=1):
        self._edit(self.group.const_edits, (op, slot, pos), units, per)

    @staticmethod
    def _edit(table, where, units, per):
        old = table.get(where)
        table[where] = (units if old is None else old[0].union(units), per)

    def renormalizes(self, op):
        """`op` computes statistics over the group's channels (a layer norm over C): the pruned model is
        the smaller network, but zeroing the channels (lazy mode, sensitivity trials) is not the same."""
        where = f"'{op.type}' (op #{op.index})"
        if where not in self.group.renormalized:
            self.group.renormalized.append(where)

    def cannot(self, op, why, anywhere=False):
        """Refuse; unless `anywhere`, a refusal with only network outputs beyond `op` makes the master an
        output conv instead (left alone, with the reason)."""
        if not anywhere and op.type in RULES and self._only_outputs_after(op):
            raise _OutputBound(f"at '{op.type}' (op #{op.index}) {why}, on the way to a network output")
        raise CannotFollow(self.group.param, op, why)

    def _only_outputs_after(self, op):
        """True if everything computed from `op`'s results is network output, through at most one weighted
        layer: channels the rule cannot follow there only shape an output (a detection head's
        [N, 68, H, W] -> [N, 4, 17, H*W], its softmax over the bins and the fixed projection that
        integrates them), and a conv whose channels reach an output is left alone anyway. A second
        weighted layer means the network goes on: a real refusal."""
        view, seen, reached = self.view, set(), False
        todo = [(k, False) for ks in op.outputs.values() for k in ks]
        while todo:
            k, weighted = todo.pop()
            if (k, weighted) in seen:
                continue
            seen.add((k, weighted))
            users = self.users(k)
            if view.is_fetched(k) or not users:
                reached = True
            for user in users:
                if user.type == "condition":  # it decides a branch or a loop: the network goes on
                    return False
                layer = user.type in CONV_TYPES or (user.type in ("matmul", "mul") and any(
                    view.persistable_name(w) for w in user.ins("y")))
                if layer and weighted:
                    return False
                todo.extend((o, weighted or layer) for ks in user.outputs.values() for o in ks)
        return reached

    def _reach(self, key, axis, ch, kind, tag):
        if not len(ch):
            return
        g, node = self.group, (key, axis)
        old = g.nodes.get(node)
        if old is None:
            new = ch
            g.nodes[node] = ch
        elif len(ch) == len(old) and np.array_equal(ch.local, old.local) and np.array_equal(ch.master, old.master):
            return  # reached again with the same channels (legacy in-place outputs, diamonds): nothing new
        else:
            new = ch.minus(old)
            if not len(new):
                return
            if np.isin(new.local, old.local).any():
                g.aliased = True  # one index now follows several masters (halves of a split added together)
            g.nodes[node] = old.union(new)
        if tag is not None and node not in g.tags.get(tag, []):
            g.tags.setdefault(tag, []).append(node)
        if kind == "flow" and self._is_output(key) and key not in g.outputs:
            g.outputs.append(key)
        self.queue.append((key, axis, new, self.current))

    def _is_output(self, key):
        view = self.view
        if view.persistable_name(key) is not None:
            return False
        if view.is_fetched(key):
            return True
        return not any(op.kind == FORWARD for op in view.consumers.get(key, []))

    def run(self):
        while self.queue:
            key, axis, ch, origin = self.queue.popleft()
            for op in self.view.neighbours(key):
                if op.kind != FORWARD or op is origin:
                    continue
                fn = RULES.get(op.type)
                if fn is None:
                    self.cannot(op, "ppprune has no channel rule for this op type")
                self.current = op
                try:
                    fn(self, op, key, axis, ch)
                except _OutputBound as e:
                    outs = [k for ks in op.outputs.values() for k in ks]
                    self.group.outputs.append(outs[0] if outs else key)
                    self.group.output_reason = str(e)


def master_axis(view, param):
    """The output-channel axis of conv weight `param`, or a clear error if it is not one."""
    key = view.param_key(param)
    for op in view.consumers.get(key, []):
        if op.kind == FORWARD and op.type in CONV_TYPES and key in op.ins("filter"):
            return key, CONV_TYPES[op.type]
    users = sorted({op.type for op in view.consumers.get(key, []) if op.kind == FORWARD}) or ["nothing"]
    raise PruneError(
        f"'{param}' is not a convolution weight (it feeds {', '.join(users)}); only conv2d, "
        f"depthwise_conv2d and conv2d_transpose filters can be pruned. Name a conv weight instead."
    )


def discover(view, param):
    """Walk from conv weight `param` with all its output channels and return its Group."""
    key, axis = master_axis(view, param)
    size = view.shape(key)[axis]
    group = Group(param, key, axis, size)
    walk = _Walk(view, group)
    walk.side(key, axis, ChannelMap.identity(size))
    walk.run()
    if group.aliased:
        _tie_aliases(group)
    group.names = {k: view.persistable_name(k) for k, _ in group.nodes}
    return group


def _tie_aliases(group):
    """Masters that reach the same index of a tensor are one channel there: they can only go together."""
    for ch in group.nodes.values():
        order = np.lexsort((ch.master, ch.local))
        local, master = ch.local[order], ch.master[order]
        for i in np.flatnonzero(local[1:] == local[:-1]):
            group.bind([master[i], master[i + 1]])


def followed_convs(view, param):
    """Ungrouped conv weights whose filters a grouped/depthwise conv weight `param` is tied to (they lose
    the same channels); [] for an ungrouped conv."""
    key, _ = master_axis(view, param)
    conv = next(op for op in view.consumers[key] if op.type in CONV_TYPES)
    if (conv.attr("groups") or 1) == 1:
        return []
    group = discover(view, param)
    return [group.names[k] for k, axis in group.nodes
            if k != key and axis == 0 and group.names.get(k) and _is_plain_filter(view, k)]


def _is_plain_filter(view, key):
    return any(op.type in CONV_TYPES and key in op.ins("filter") and (op.attr("groups") or 1) == 1
               for op in view.consumers.get(key, []))
