"""A named table of components, filled by decorator (`@REG.register`) or call (`REG.register(obj)`).

It depends on nothing: each registry names the error an unknown name raises (`PruneError` in the core,
`ConfigError` for what a config names), so importing the core never imports the config loader.
"""
import difflib
from types import MappingProxyType


class Registry:
    def __init__(self, kind, error=KeyError):
        self.kind = kind
        self.error = error  # what `get` raises for an unknown name (callers choose their error family)
        self._items = {}
        self.table = MappingProxyType(self._items)  # read-only live view, for lookups in hot loops

    def register(self, obj=None, name=None):
        """Register `obj` under `name` (default: its `__name__`); without `obj`, a decorator."""
        def add(o):
            self._add(name or o.__name__, o)
            return o

        return add if obj is None else add(obj)

    def under(self, *names):
        """A decorator registering one object under several names (a rule shared by several op types)."""
        def add(o):
            for n in names:
                self._add(n, o)
            return o

        return add

    def _add(self, key, o):
        if key in self._items and self._items[key] is not o:
            raise KeyError(f"{self.kind} '{key}' is already registered ({self._items[key]!r})")
        self._items[key] = o

    def get(self, name):
        if name not in self._items:
            near = difflib.get_close_matches(str(name), list(self._items), n=3)
            hint = f" Did you mean {', '.join(repr(n) for n in near)}?" if near else ""
            raise self.error(
                f"unknown {self.kind} '{name}'.{hint} Registered {self.kind}s: {', '.join(sorted(self._items))}"
            )
        return self._items[name]

    def build(self, name, *args, **kwargs):
        return self.get(name)(*args, **kwargs)

    def __contains__(self, name):
        return name in self._items

    def __iter__(self):
        return iter(self._items)

    def names(self):
        return sorted(self._items)
