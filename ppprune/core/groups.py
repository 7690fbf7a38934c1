"""Groups: a master conv weight and every (tensor, axis) whose channels are tied to its output channels.

`discover` walks the graph once from the master with all of its channels, calling the channel rules of
every forward op it meets (`_traverse`; what a rule may call is `walk.Walk`). Each reached (tensor, axis) keeps a `ChannelMap` correspondence to the master, so
pruning any subset of master channels is a filter (`Group.removal`), not another walk.
"""
from typing import NamedTuple

import numpy as np

from .channel_map import ChannelMap
from .convs import CONV_TYPES
from .disjoint import DisjointSets
from .errors import CannotFollow, PruneError
from .graph import FORWARD
from .rules import RULES
from .walk import Refused, Walk


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

    def skip_reason(self):
        """Why an output conv is left alone (its channels reach a network output), or None if it is not one."""
        if not self.outputs:
            return None
        reason = "its channels reach a network output; pruning it would change the output shape"
        return reason + (f" ({self.output_reason})" if self.output_reason else "")

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


def _traverse(walk):
    """Visit every forward op next to what the walk has reached, calling its channel rule, until nothing
    new is reached. A refusal with only network outputs beyond its op makes the master an output conv."""
    view, group, rule_of = walk.view, walk.group, RULES.table.get
    while walk.queue:
        key, axis, ch, origin = walk.queue.popleft()
        for op in view.neighbours(key):
            if op.kind != FORWARD or op is origin:
                continue
            fn = rule_of(op.type)
            if fn is None:
                raise CannotFollow(group.param, op, "ppprune has no channel rule for this op type")
            walk.current = op
            try:
                fn(walk, op, key, axis, ch)
            except Refused as r:
                if r.anywhere or not _only_outputs_after(walk, r.op):
                    raise CannotFollow(group.param, r.op, r.why) from None
                outs = [k for ks in op.outputs.values() for k in ks]
                group.outputs.append(outs[0] if outs else key)
                group.output_reason = f"at '{r.op.type}' (op #{r.op.index}) {r.why}, on the way to a network output"


def _only_outputs_after(walk, op):
    """True if everything computed from `op`'s results is network output, through at most one weighted
    layer: channels the rule cannot follow there only shape an output (a detection head's
    [N, 68, H, W] -> [N, 4, 17, H*W], its softmax over the bins and the fixed projection that
    integrates them), and a conv whose channels reach an output is left alone anyway. A second
    weighted layer means the network goes on: a real refusal."""
    view, seen, reached = walk.view, set(), False
    todo = [(k, False) for ks in op.outputs.values() for k in ks]
    while todo:
        k, weighted = todo.pop()
        if (k, weighted) in seen:
            continue
        seen.add((k, weighted))
        users = walk.users(k)
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
    walk = Walk(view, group)
    walk.side(key, axis, ChannelMap.identity(size))
    _traverse(walk)
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
