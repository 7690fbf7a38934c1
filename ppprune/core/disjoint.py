"""Disjoint sets (union-find): channels that must go together, params that lose the same channels."""


class DisjointSets:
    """Sets of hashable items; `find(x)` names x's set by one of its items, `join(x, y)` merges y's set
    into x's (named by x's representative, so the first item joined keeps naming the set)."""

    def __init__(self, items=()):
        self.parent = {x: x for x in items}

    def add(self, x):
        self.parent.setdefault(x, x)

    def find(self, x):
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]  # path halving: later finds are short
            x = parent[x]
        return x

    def join(self, x, y):
        root, other = self.find(x), self.find(y)
        if root != other:
            self.parent[other] = root
