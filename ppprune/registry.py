"""Name -> class registries, so configs can name components (`architecture: YOLOv3`)."""
import difflib

from .config.loader import ConfigError  # a config naming an unknown component is a config error


class Registry:
    """A named table of callables, filled by decorator (`@REG.register`) or call (`REG.register(cls)`)."""

    def __init__(self, kind, error=KeyError):
        self.kind = kind
        self.error = error  # what `get` raises for an unknown name (callers choose their error family)
        self._items = {}

    def register(self, obj=None, name=None):
        def add(o):
            key = name or o.__name__
            if key in self._items and self._items[key] is not o:
                raise KeyError(f"{self.kind} '{key}' is already registered ({self._items[key]!r})")
            self._items[key] = o
            return o

        return add if obj is None else add(obj)

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

    def names(self):
        return sorted(self._items)


ARCHITECTURES = Registry("architecture", error=ConfigError)
BACKBONES = Registry("backbone", error=ConfigError)
HEADS = Registry("head", error=ConfigError)
NECKS = Registry("neck", error=ConfigError)
DATASETS = Registry("dataset", error=ConfigError)
TRANSFORMS = Registry("transform", error=ConfigError)
OPTIMIZERS = Registry("optimizer", error=ConfigError)
LR_SCHEDULES = Registry("lr schedule", error=ConfigError)
