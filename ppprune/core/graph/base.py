"""What both IR views share: the op wrapper and the op kinds."""

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


class ViewBase:
    """Indexing shared by both views: producers, consumers, parameters."""

    from_layer = False  # set on the trace of a dygraph Layer (see groups._Walk.from_layer)

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
