"""Config values checked for type and range before anything is built or written: a wrong one is one line
naming the key and what it takes, never a traceback from deep inside the model or the reader."""
from .loader import ConfigValueError

_KINDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string (a name or a path)", dict: "a mapping like {a: 1}",
          list: "a list like [1, 2]"}


def _is(value, kind):
    if isinstance(value, bool):
        return kind is bool
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


def _fix(key):
    return f"(fix the config or -o {key.split('[')[0]}=...)"


def need(key, value, kind, low=None, high=None, above=None, optional=False):
    """`value` of config key `key` must be of `kind` (int, float = any number, bool, str, dict, list), at least
    `low`, more than `above`, at most `high`; `optional` lets None pass. Returns `value`."""
    if value is None and optional:
        return value
    ok = _is(value, kind) and (low is None or value >= low) and (above is None or value > above) \
        and (high is None or value <= high)
    if not ok:
        bounds = [f">= {low}" if low is not None else "", f"> {above}" if above is not None else "",
                  f"<= {high}" if high is not None else ""]
        what = " ".join([_KINDS[kind], " and ".join(b for b in bounds if b)]).strip()
        raise ConfigValueError(f"{key} is {value!r}; it must be {what} {_fix(key)}")
    return value


def need_list(key, value, kind, length=None, **bounds):
    """A non-empty list (or tuple) of `length` items (any number if None), each checked as by `need`."""
    if not isinstance(value, (list, tuple)) or not value or (length is not None and len(value) != length):
        size = f"{length} items" if length is not None else "items"
        raise ConfigValueError(f"{key} is {value!r}; it must be a list of {size} {_fix(key)}")
    for i, item in enumerate(value):
        need(f"{key}[{i}]", item, kind, **bounds)
    return value
