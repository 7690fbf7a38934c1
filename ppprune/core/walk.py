"""The walk as a channel rule sees it: THE API a rule may use, and nothing else.

A rule is `rule(walk, op, key, axis, ch)`: channels `ch` (a `ChannelMap` to the master's channels) of
`key`, one of `op`'s inputs or outputs, along `axis` are pruned. It answers through these methods:

- reading the graph: `shape(key)`, `from_layer`, `users(key)`, `used(key)`;
- what follows: `flow(key, axis, ch, tag)` for data the walk goes on from, `side(...)` for weights and
  statistics that only lose the same entries (`tag` names a role criteria and reports look up:
  "filter_in", "filter_out", "bn_scale", "fc_in", ...);
- what must go together: `tie_blocks(ch, block)`, `tie(ch)`;
- what shrinks with the channels: `shrink_attr(op, name, units, per)`, `shrink_const(op, slot, pos, units,
  per)`;
- `renormalizes(op)`: the op takes statistics over the channels (pruning stays exact, zeroing does not);
- `cannot(op, why, anywhere=False)`: refuse. The traversal (`groups.py`) decides what a refusal means:
  with only network outputs beyond `op` the master becomes an output conv (skipped, with the reason)
  unless `anywhere=True`; otherwise pruning the master fails with `CannotFollow`.

The traversal engine (the queue, which ops are visited, output-bound refusals) is `groups.py`'s.
"""
from collections import deque

import numpy as np

from .graph import FORWARD


class Refused(Exception):
    """Raised by `Walk.cannot`; the traversal turns it into an output conv or a `CannotFollow`."""

    def __init__(self, op, why, anywhere):
        super().__init__(why)
        self.op, self.why, self.anywhere = op, why, anywhere


class Walk:
    """One walk from a master over `view`, filling `group` (see `groups.Group`). `current` is the op whose
    rule is running: the walk does not go back through it from what that rule reaches."""

    def __init__(self, view, group):
        self.view, self.group = view, group
        self.queue = deque()  # (key, axis, new channels, op that reached them), for the traversal
        self.current = None

    # -- reading the graph --------------------------------------------------------------------------
    def shape(self, key):
        return self.view.shape(key)

    @property
    def from_layer(self):
        """True for a traced dygraph Layer: its code recomputes sizes from shapes rather than reading the
        program's constants."""
        return self.view.from_layer

    def users(self, key):
        return [op for op in self.view.consumers.get(key, []) if op.kind == FORWARD]

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

    # -- what follows the channels ------------------------------------------------------------------
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

    def shrink_attr(self, op, name, units, per=1):
        """Attribute `name` of `op` loses `per` for each master channel of `units` pruned."""
        self._edit(self.group.attr_edits, (op, name), units, per)

    def shrink_const(self, op, slot, pos, units, per=1):
        """Entry `pos` of constant input `slot` of `op` loses `per` for each master channel of `units` pruned."""
        self._edit(self.group.const_edits, (op, slot, pos), units, per)

    def renormalizes(self, op):
        """`op` computes statistics over the group's channels (a layer norm over C): the pruned model is
        the smaller network, but zeroing the channels (lazy mode, sensitivity trials) is not the same."""
        where = f"'{op.type}' (op #{op.index})"
        if where not in self.group.renormalized:
            self.group.renormalized.append(where)

    def cannot(self, op, why, anywhere=False):
        """Refuse to carry the channels through `op` (see the module doc for what follows)."""
        raise Refused(op, why, anywhere)

    # -- recording ----------------------------------------------------------------------------------
    @staticmethod
    def _edit(table, where, units, per):
        old = table.get(where)
        table[where] = (units if old is None else old[0].union(units), per)

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
