"""YAML configs: `_BASE_` inheritance, `-o key.sub=value` overrides, strict construction, resolved dumps.

A config is a plain nested dict. Components are built from it one-to-one: a section named after a
registered class holds that class's constructor arguments (PaddleDetection ppdet/core style).
"""
import copy
import difflib
import inspect
import os
import re

import yaml

from ..fsutil import atomic_write

BASE_KEY = "_BASE_"


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads `1e-3` as a float (YAML 1.1 insists on `1.0e-3`)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


class ConfigError(KeyError):
    """A config names something that does not exist; the message says what was meant."""

    def __str__(self):  # KeyError would repr() the message, quoting it
        return str(self.args[0])


class ConfigValueError(ValueError):
    """A config value of the wrong type or out of range; the message names the key and what is allowed."""


def suggest(key, candidates):
    near = difflib.get_close_matches(str(key), [str(c) for c in candidates], n=3, cutoff=0.5)
    return f" Did you mean {', '.join(repr(n) for n in near)}?" if near else ""


def deep_merge(base, override):
    """Return `base` updated by `override`; nested dicts merge, anything else is replaced."""
    out = copy.deepcopy(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _nearest_configs(path):
    """Existing .yml files whose names are closest to `path`'s (same folder, else anywhere under configs/)."""
    import glob

    folder = os.path.dirname(path)
    pool = glob.glob(os.path.join(folder, "*.yml")) if os.path.isdir(folder) else []
    pool = pool or glob.glob(os.path.join("configs", "**", "*.yml"), recursive=True)
    names = {os.path.basename(p): p for p in pool}
    near = difflib.get_close_matches(os.path.basename(path), list(names), n=2, cutoff=0.4)
    return [names[n] for n in near]


def _read_yaml(path):
    if not os.path.isfile(path):
        near = _nearest_configs(path)
        hint = f" Did you mean {', '.join(repr(n) for n in near)}?" if near else " Check the path of -c."
        raise ConfigError(f"config file '{path}' does not exist.{hint}")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.load(f, Loader=_Loader) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{path}: YAML syntax error{where} ({problem}); fix the file (indentation, ':' "
                          "after keys, matching brackets)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config '{path}' ({e}); check the path and that it is a text file") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping, got {type(data).__name__}")
    return data


def _load_file(path, seen):
    path = os.path.abspath(path)
    if path in seen:
        raise ConfigError(f"{path}: circular _BASE_ chain: {' -> '.join(seen + [path])}")
    data = _read_yaml(path)
    bases = data.pop(BASE_KEY, None) or []
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) and b for b in bases):
        raise ConfigValueError(f"{path}: {BASE_KEY} is {bases!r}; it must be a path or a list of paths (relative to "
                               f"this file), e.g. {BASE_KEY}: [../base.yml]")
    merged = {}
    for base in bases:  # later bases override earlier ones, the file itself overrides all
        merged = deep_merge(merged, _load_file(os.path.join(os.path.dirname(path), base), seen + [path]))
    return deep_merge(merged, data)


def parse_override(text):
    """'a.b=1' -> (['a', 'b'], 1); the value is typed by YAML, so '[1,2]', 'true', '0.1' work."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like key.sub=value")
    key, value = text.split("=", 1)
    return key.strip().split("."), yaml.load(value, Loader=_Loader) if value.strip() else None


def apply_override(cfg, keys, value):
    """Set cfg[k0][k1]... = value; every key must already exist (a typo must not add a silent new key)."""
    node = cfg
    for depth, k in enumerate(keys):
        if not isinstance(node, dict):
            raise ConfigError(f"override '{'.'.join(keys)}': '{'.'.join(keys[:depth])}' is not a section")
        if k not in node:
            where = ".".join(keys[:depth]) or "the top level"
            raise ConfigError(f"unknown config key '{'.'.join(keys[:depth + 1])}'.{suggest(k, node)} "
                              f"Keys under {where}: {', '.join(map(str, node))}")
        if depth == len(keys) - 1:
            node[k] = _typed_like(node[k], value, ".".join(keys))
        node = node[k]
    return cfg


def _typed_like(base, value, key):
    """`value` for a key whose config value is `base`: same kind of value (an int stays an int, a number
    stays a number, a list a list...), so a typo fails here and not at the first iteration."""
    if base is None or value is None:
        return value
    if isinstance(base, str):
        return value if isinstance(value, str) else str(value) if not isinstance(value, (list, dict)) else _bad(key, base, value)
    if isinstance(base, bool):
        return value if isinstance(value, bool) else _bad(key, base, value)
    if isinstance(base, int):
        return value if isinstance(value, int) and not isinstance(value, bool) else _bad(key, base, value)
    if isinstance(base, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return float(value) if ok else _bad(key, base, value)
    if isinstance(base, (list, dict)):
        return value if isinstance(value, type(base)) else _bad(key, base, value)
    return value


def _bad(key, base, value):
    kinds = {bool: "true or false", int: "an integer", float: "a number", list: "a list like [1, 2]",
             dict: "a mapping like {a: 1}", str: "a single value"}
    raise ConfigValueError(f"override '{key}={value}': {key} takes {kinds[type(base)]} (the config has "
                           f"{base!r}); fix the value after '{key}='")


def load_config(path, overrides=()):
    """Load `path` with its `_BASE_` chain, then apply `overrides` ('key.sub=value' strings)."""
    cfg = _load_file(path, [])
    for text in overrides:
        apply_override(cfg, *parse_override(text))
    cfg["filename"] = os.path.abspath(path)
    return cfg


def dump_config(cfg, path):
    """Write the resolved config atomically (temp file + rename), so a reader never sees half of it."""
    with atomic_write(path, encoding="utf-8") as f:
        yaml.safe_dump(cfg, f, sort_keys=False, allow_unicode=True)
    return path


def check_keys(section, allowed, where):
    """Raise on the first key of `section` not in `allowed`, suggesting the nearest allowed key."""
    for k in section:
        if k not in allowed:
            raise ConfigError(f"unknown key '{k}' in {where}.{suggest(k, allowed)} "
                              f"Allowed: {', '.join(sorted(map(str, allowed)))}")


def create(registry, spec, cfg=None, **wiring):
    """Build a registered component from its config.

    `spec` is a class name whose kwargs live in `cfg[name]`, or a dict `{'name': Name, **kwargs}`.
    Config kwargs are checked against the constructor (or a `from_config(cfg, ...)` classmethod, used by
    components that build sub-components); `__shared__ = ['num_classes']` fills missing args from the top
    level of `cfg`. `wiring` passes arguments known only in code (e.g. a backbone's output channels).
    """
    cfg = cfg or {}
    if isinstance(spec, dict):
        kwargs = dict(spec)
        name = kwargs.pop("name", None)
        if name is None:
            raise ConfigError(f"component spec {spec} needs a 'name' key naming a registered {registry.kind}")
    elif isinstance(spec, str):
        section = cfg.get(spec) or {}
        if not isinstance(section, dict):
            raise ConfigValueError(f"config section '{spec}' is {section!r}; it must be a mapping of {spec}'s "
                                   f"arguments, e.g. {spec}: {{}}")
        name, kwargs = spec, dict(section)
    else:
        raise ConfigValueError(f"{spec!r} does not name a {registry.kind}: give its registered name or a mapping "
                               f"{{name: <{registry.kind}>, ...}}")
    cls = registry.get(name)
    factory = getattr(cls, "from_config", None)
    params = inspect.signature(factory or cls).parameters
    if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
        check_keys(kwargs, [p for p in params if p not in ("cfg", *wiring)], f"the config of {name}")
    for arg in getattr(cls, "__shared__", ()):
        if arg not in kwargs and arg in cfg:
            kwargs[arg] = cfg[arg]
    return factory(cfg, **kwargs, **wiring) if factory else cls(**kwargs, **wiring)
