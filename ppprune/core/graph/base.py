"""What both IR views share: the op wrapper, the op kinds and the `GraphView` protocol."""

FORWARD, BACKWARD, OPTIMIZER, OTHER = "forward", "backward", "optimizer", "other"


class OpView:
    """One op: canonical `type`, `kind`, slot -> value keys for inputs and outputs, and attributes."""

    __slots__ = ("raw", "type", "kind", "inputs", "outputs", "index", "where", "_read_attr", "_attrs")

    def __init__(self, raw, type_, kind, inputs, outputs, index, read_attr):
        self.raw = raw
        self.type = type_
        self.kind = kind
        self.inputs = inputs  # {slot: [key, ...]}
        self.outputs = outputs
        self.index = index
        self.where = None  # for ops inside or standing for a control-flow block: which block, for errors
        # Attributes are read lazily: most ops are never asked, and reading them is slow in both IRs.
        self._read_attr = read_attr
        self._attrs = {}

    def ins(self, slot):
        return self.inputs.get(slot, [])

    def outs(self, slot):
        return self.outputs.get(slot, [])

    def attr(self, name, default=None):
        """A canonical attribute; in PIR, constant operands (`axis`, `shape`, ...) read as attributes too."""
        if name not in self._attrs:
            self._attrs[name] = self._read_attr(self, name)
        value = self._attrs[name]
        return default if value is None else value

    def forget_attr(self, name):
        self._attrs.pop(name, None)

    def __repr__(self):
        return f"{self.type}#{self.index}"


def named_inputs(found, names):
    """`found[n]` for each of `names`: a KeyError names the inputs the program lacks."""
    missing = [n for n in names if n not in found]
    if missing:
        raise KeyError(f"the program has no input named {', '.join(missing)}")
    return [found[n] for n in names]


class GraphView:
    """The protocol both IR views implement (`PirView`, `LegacyView`); rules, groups and appliers use only
    this. Keys are hashable value ids (PIR) or variable names (legacy).

    Attributes: `ir` ("pir" or "legacy"), `program`, `ops` (OpView list in program order, sub-blocks
    flattened after their owner), `producers` / `consumers` ({key: [OpView]}), `from_layer`."""

    ir = None
    from_layer = False  # set on the trace of a dygraph Layer (see walk.Walk.from_layer)

    # -- program-level operations, before a view exists --------------------------------------------------
    @staticmethod
    def clone(program):
        """(copy of `program`, lookup): lookup(v) finds a value/variable of the original in the copy."""
        raise NotImplementedError

    @staticmethod
    def feed_vars(program, names):
        """The input values/variables of `program` called `names` (KeyError naming the missing ones)."""
        raise NotImplementedError

    @staticmethod
    def persistable_names(program):
        """Sorted names of the persistable tensors `program` reads or writes."""
        raise NotImplementedError

    # -- reading ----------------------------------------------------------------------------------------
    def shape(self, key):
        """The recorded shape of `key` as a list, or None if it is not a dense tensor."""
        raise NotImplementedError

    def is_global(self, key):
        """Whether `key` is defined in the global block (and can be fetched)."""
        raise NotImplementedError

    def persistable_name(self, key):
        """The scope name of a persistable `key` (a parameter, a BN statistic), else None."""
        raise NotImplementedError

    def param_names(self):
        """Names of the program's parameters."""
        raise NotImplementedError

    def param_key(self, name):
        """The key of parameter `name`, or None."""
        raise NotImplementedError

    def is_fetched(self, key):
        """Whether `key` is fetched (a network output)."""
        raise NotImplementedError

    def grad_mirror(self):
        """{gradient key: forward key} of a training program."""
        raise NotImplementedError

    # -- editing ----------------------------------------------------------------------------------------
    def set_shape(self, key, shape):
        """Record a new shape for `key`."""
        raise NotImplementedError

    def set_attr(self, op, name, value):
        """Set attribute `name` of `op`."""
        raise NotImplementedError

    def set_const(self, op, slot, values):
        """Give `op` new constant integer `values` for input `slot` (a shape, split sections)."""
        raise NotImplementedError

    def resize_init(self, name, shape):
        """In a startup program: make the op that initialises persistable `name` produce `shape`."""
        raise NotImplementedError

    # -- shared indexing --------------------------------------------------------------------------------
    def _index(self):
        self.producers, self.consumers = {}, {}
        for op in self.ops:
            for keys in op.inputs.values():
                for k in keys:
                    self.consumers.setdefault(k, []).append(op)
            for keys in op.outputs.values():
                for k in keys:
                    self.producers.setdefault(k, []).append(op)

    def neighbours(self, key):
        """Every op that reads or writes `key`, once each."""
        seen, out = set(), []
        for op in self.producers.get(key, []) + self.consumers.get(key, []):
            if op.index not in seen:
                seen.add(op.index)
                out.append(op)
        return out
