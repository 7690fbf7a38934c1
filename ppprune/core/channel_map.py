"""Channel maps: which channels of one tensor axis stand for which channels of the master weight.

Walking a group with *all* master channels once gives every coupled (tensor, axis) a `ChannelMap`; pruning any
subset of the master's channels is then a filter over those arrays, with no second walk.
"""
import numpy as np


class ChannelMap:
    """`local[i]` (an index on this tensor axis) follows `master[i]` (a channel of the master weight)."""

    __slots__ = ("local", "master")

    def __init__(self, local, master):
        self.local = np.asarray(local, dtype=np.int64)
        self.master = np.asarray(master, dtype=np.int64)

    @classmethod
    def identity(cls, n):
        idx = np.arange(n, dtype=np.int64)
        return cls(idx, idx)

    def __len__(self):
        return len(self.local)

    def shift(self, offset):
        return ChannelMap(self.local + offset, self.master)

    def window(self, lo, hi):
        """The entries that fall in [lo, hi), re-based to start at 0 (a concat input, a split output)."""
        keep = (self.local >= lo) & (self.local < hi)
        return ChannelMap(self.local[keep] - lo, self.master[keep])

    def expand(self, k):
        """Each channel becomes k consecutive ones (flatten before fc, conv groups with k outputs)."""
        if k == 1:
            return self
        local = (self.local[:, None] * k + np.arange(k)).reshape(-1)
        return ChannelMap(local, np.repeat(self.master, k))

    def blocks(self, k):
        """One entry per block of k consecutive channels, represented by the block's first master."""
        if k == 1:
            return self
        ids, first = np.unique(self.local // k, return_index=True)
        return ChannelMap(ids, self.master[first])

    def modulo(self, m):
        """Channel c becomes c % m: its position inside a group of m (a channel split into [g, m])."""
        return ChannelMap(self.local % m, self.master)

    def tile(self, m, g):
        """Each position i < m becomes i, i + m, ..., i + (g-1)*m: the same position in all g groups."""
        local = (self.local[:, None] + np.arange(g) * m).reshape(-1)
        return ChannelMap(local, np.repeat(self.master, g))

    def union(self, other):
        # (local, master) pairs as one int64 each: a 1-D unique, far cheaper than unique over columns
        width = int(max(self.master.max(initial=0), other.master.max(initial=0))) + 1
        codes = np.unique(np.concatenate([self.local * width + self.master, other.local * width + other.master]))
        return ChannelMap(codes // width, codes % width)

    def minus(self, other):
        """Entries of self whose (local, master) pair is not in other."""
        width = int(max(self.master.max(initial=0), other.master.max(initial=0))) + 1
        keep = ~np.isin(self.local * width + self.master, other.local * width + other.master)
        return ChannelMap(self.local[keep], self.master[keep])

    def select(self, master_mask):
        """The distinct local indices that follow the selected master channels (a boolean mask)."""
        return np.unique(self.local[master_mask[self.master]])
