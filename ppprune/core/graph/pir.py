"""Graph view of a PIR program (paddle 3.x default IR).

PIR values have no names: a value's key is its `.id`. Never compare values with `==` (that builds a
`pd_op.equal` op). Vector plumbing (`builtin.combine` / `builtin.split`) is folded away: an op reading a
combined vector sees the member values in its slot, an op whose vector result is split sees the pieces.
"""
import paddle

from .base import BACKWARD, FORWARD, OPTIMIZER, OTHER, GraphView, OpView, named_inputs as _named

_PLUMBING = {"builtin.combine", "builtin.split", "builtin.parameter", "builtin.slice"}
_OUTPUT_MARKERS = {"builtin.shadow_output", "pd_op.fetch"}
_CONSTANT_OPS = {"pd_op.full_int_array", "pd_op.full"}
_CONTROL_FLOW = {"pd_op.if", "pd_op.while"}


def _flat_ops(block, owner=None):
    """(op, owning control-flow op or None) for every op of `block` and, after each control-flow op, the
    ops of its blocks (recursively). Other ops with blocks (pylayer) keep theirs to themselves: channels
    reaching one meet an op without a channel rule."""
    for raw in block.ops:
        yield raw, owner
        if raw.name() in _CONTROL_FLOW:
            for sub in raw.blocks():
                yield from _flat_ops(sub, raw)


def _canonical_type(name):
    t = name.split(".", 1)[1] if "." in name else name
    return t[:-1] if t.endswith("_") else t


class PirView(GraphView):
    ir = "pir"

    @staticmethod
    def clone(program):
        mapping = paddle.pir.IrMapping()
        copy = program.clone(mapping)
        return copy, mapping.look_up

    @staticmethod
    def feed_vars(program, names):
        # pd_op.feed: a legacy model translated to PIR
        found = {op.str_attr("name"): op.result(0) for op in program.global_block().ops
                 if op.name() in ("pd_op.data", "pd_op.feed")}
        return _named(found, names)

    @staticmethod
    def persistable_names(program):
        return sorted({r.name for op in program.global_block().ops for r in op.results()
                       if r.persistable and r.has_name})

    def __init__(self, program):
        self.program = program
        self.block = program.global_block()
        self.values = {}  # key -> Value
        self._names = {}  # key -> persistable name
        self._vector_of = {}  # member key -> (vector Value, index) for type refreshes
        self._params = {}
        self._markers = set()
        self._aliases = {}  # parameter key -> keys of the same parameter inside sub-blocks
        self._alias_of = {}  # and back: ops inside a block read the parameter under its main-block key
        self._block_index = {}  # control-flow op id -> index of its first view op, for messages
        self._inner = set()  # keys of values defined inside sub-blocks (not fetchable from the program)
        self.ops = []
        raw_ops = list(_flat_ops(self.block))
        split_of = {}
        for raw, _ in raw_ops:
            name = raw.name()
            if name == "builtin.parameter":
                v = raw.result(0)
                pname = raw.str_attr("parameter_name")
                if pname in self._params:  # a sub-block reads the parameter through its own op
                    self._aliases.setdefault(self._params[pname], []).append(self._key(v))
                    self._alias_of[v.id] = self._params[pname]
                else:
                    self._params[pname] = self._key(v)
                self._names[self._key(v)] = pname
            elif name == "builtin.split":
                split_of[self._key(raw.operand_source(0))] = list(raw.results())
            elif name == "pd_op.data" and raw.result(0).persistable:
                self._names[self._key(raw.result(0))] = raw.str_attr("name")
        after_backward = False
        for raw, parent in raw_ops:
            name = raw.name()
            if name in _PLUMBING:
                continue
            if name in _OUTPUT_MARKERS:
                self._markers.update(self._key(v) for v in raw.operands_source())
            if name in _CONTROL_FLOW:
                self._control_flow(raw)
                continue
            if name.startswith("cf."):
                continue  # yields are read by the control-flow op that owns the block
            ins, outs = self._slots(raw, split_of)
            if parent is not None:
                self._inner.update(k for ks in outs.values() for k in ks)
            canon = _canonical_type(name)
            kind = self._kind(name, canon, ins, outs)
            if kind == BACKWARD:
                after_backward = True
            elif kind == FORWARD and after_backward:
                # PIR records no op roles; ops appended after the first grad op (weight decay's scale/add,
                # gradient clipping) compute updates, not the network's outputs
                kind = BACKWARD
            self.ops.append(OpView(raw, canon, kind, ins, outs, len(self.ops), self._read_attr))
            if parent is not None:
                self.ops[-1].where = f"inside the block of '{_canonical_type(parent.name())}' (op #{self._block_index[id(parent)]})"
        self._index()

    def _control_flow(self, raw):
        """`pd_op.if` / `pd_op.while` as the ops the channel rules see: each result of an if joins what its
        branches yield; each loop-carried value joins its initial value, the body's argument, what the body
        yields and the loop's result (one shape for all). The condition is not data."""
        index = self._block_index[id(raw)] = len(self.ops)
        body = next(iter(raw.blocks()))
        conds = [self._key(raw.operand_source(0))]
        if raw.name() == "pd_op.while":
            conds.append(self._key(list(body.ops)[-1].operand_source(0)))
        self._add_flow_op(raw, "condition", {"x": conds}, {}, f"deciding '{_canonical_type(raw.name())}' (op #{index})")
        if raw.name() == "pd_op.if":
            ifop = raw.as_if_op()
            branches = [list(b.ops)[-1].operands_source() for b in (ifop.true_block(), ifop.false_block())]
            for i, r in enumerate(raw.results()):
                ins = {"x": [self._key(br[i]) for br in branches if i < len(br)]}
                self._add_flow_op(raw, "if", ins, {"out": [self._key(r)]}, f"result {i} of 'if' (op #{index})")
            return
        args = list(body.args())
        yields = list(list(body.ops)[-1].operands_source())[1:]  # the first is the next condition
        inputs = list(raw.operands_source())[1:]
        for j, r in enumerate(raw.results()):
            self._inner.add(self._key(args[j]))
            ins = {"x": [self._key(inputs[j]), self._key(yields[j])]}
            outs = {"out": [self._key(r)], "arg": [self._key(args[j])]}
            self._add_flow_op(raw, "while", ins, outs, f"loop-carried value {j} of 'while' (op #{index})")

    def _add_flow_op(self, raw, type_, ins, outs, where):
        op = OpView(raw, type_, FORWARD, ins, outs, len(self.ops), self._read_attr)
        op.where = where
        self.ops.append(op)

    def is_global(self, key):
        """Whether the value is defined in the global block (and can be fetched)."""
        return key not in self._inner

    def _key(self, value):
        k = value.id
        self.values[k] = value
        return k

    def _slots(self, raw, split_of):
        in_names = out_names = None
        if raw.name().startswith("pd_op.") and raw.num_regions() == 0:  # ops with blocks have no slot names
            in_names, out_names = raw.get_input_names(), raw.get_output_names()
        ins = {}
        for slot, v in _by_slot(raw.operands_source(), in_names, "operand"):
            if v is None:
                ins[slot] = []
                continue
            src = v.get_defining_op()
            if src is not None and src.name() == "builtin.combine":
                members = list(src.operands_source())
                for j, m in enumerate(members):
                    self._vector_of[self._key(m)] = (v, j)
                ins[slot] = [self._key(m) for m in members]
            else:
                k = self._key(v)
                ins[slot] = [self._alias_of.get(k, k)]
        outs = {}
        for slot, r in _by_slot(raw.results(), out_names, "result"):
            if r is None:
                outs[slot] = []
                continue
            pieces = split_of.get(r.id)
            if pieces is not None:
                for j, p in enumerate(pieces):
                    self._vector_of[self._key(p)] = (r, j)
                outs[slot] = [self._key(p) for p in pieces]
            else:
                outs[slot] = [self._key(r)]
        return ins, outs

    @staticmethod
    def _kind(name, canon, ins, outs):
        if not name.startswith("pd_op.") or canon in ("data", "feed", "fetch"):
            return OTHER
        if "param" in ins and "param_out" in outs:
            return OPTIMIZER
        if canon.endswith("_grad"):
            return BACKWARD
        return FORWARD

    def _read_attr(self, op, name):
        raw = op.raw
        if raw.name().startswith("pd_op.") and raw.has_attr(name):
            return raw.attrs()[name]
        keys = op.inputs.get(name)
        if keys and len(keys) == 1:
            src = self.values[keys[0]].get_defining_op()
            if src is not None and src.name() in _CONSTANT_OPS:
                value = src.attrs()["value"]
                # `full` stores integral constants (concat/split axis) as floats
                return int(value) if isinstance(value, float) and value.is_integer() else value
        return None

    # -- values ---------------------------------------------------------------------------------
    def shape(self, key):
        v = self.values.get(key)
        if v is None or not v.is_dense_tensor_type():
            return None
        return list(v.shape)

    def set_shape(self, key, shape):
        for k in [key] + self._aliases.get(key, []):
            v = self.values[k]
            v.set_type(paddle.pir.create_shaped_type(v.type(), [int(d) for d in shape]))
        vec = self._vector_of.get(key)
        if vec is not None:
            self._refresh_vector(vec[0])

    def _refresh_vector(self, vector):
        from paddle.base.libpaddle.pir import create_vec_type

        src = vector.get_defining_op()
        if src is not None and src.name() == "builtin.combine":
            members = list(src.operands_source())
        else:  # a vector result taken apart by builtin.split
            members = list(next(op for op in vector.all_used_ops() if op.name() == "builtin.split").results())
        vector.set_type(create_vec_type([m.type() for m in members]))

    def persistable_name(self, key):
        return self._names.get(key)

    def param_names(self):
        return list(self._params)

    def param_key(self, name):
        return self._params.get(name)

    def is_fetched(self, key):
        return key in self._markers

    def grad_mirror(self):
        """{gradient key: forward key}: a `<slot>_grad` output of a grad op mirrors its `<slot>` input."""
        mirror = {}
        for op in self.ops:
            if op.kind != BACKWARD:
                continue
            for slot, keys in op.outputs.items():
                if not slot.endswith("_grad"):
                    continue
                fwd = op.ins(slot[: -len("_grad")])
                for g, f in zip(keys, fwd):
                    mirror[g] = f
        # Gradients summed over several uses (add_n) mirror what their summands mirror.
        for op in self.ops:
            if op.type == "add_n":
                srcs = [mirror[k] for k in op.ins("inputs") if k in mirror]
                if srcs:
                    for k in op.outs("out"):
                        mirror[k] = srcs[0]
        return mirror

    # -- edits ----------------------------------------------------------------------------------
    def set_attr(self, op, name, value):
        if isinstance(value, bool):
            op.raw.set_bool_attr(name, value)
        elif isinstance(value, int):
            op.raw.set_int_attr(name, value)
        else:
            raise NotImplementedError(f"cannot set attribute {name}={value!r} on {op.type} in PIR")
        op.forget_attr(name)

    def resize_init(self, name, shape):
        """In a startup program: make the op that initialises persistable `name` produce `shape`."""
        for raw in self.block.ops:
            if raw.name() == "builtin.set_parameter" and raw.str_attr("parameter_name") == name:
                break
            if raw.name() == "builtin.shadow_output" and raw.str_attr("output_name") == name:
                break
        else:
            return False
        value = raw.operand_source(0)
        init = value.get_defining_op()
        op = next((o for o in self.ops if o.raw is init), None)
        if init.name() == "pd_op.full":  # shape is an attribute: rebuild the op (in-place edits crash)
            attrs = init.attrs()
            point = paddle.pir.get_current_insertion_point()
            paddle.pir.set_insertion_point(init)
            try:
                new = paddle._C_ops.full([int(d) for d in shape], attrs["value"], attrs["dtype"], attrs["place"])
            finally:
                paddle.pir.set_insertion_point(point) if point is not None else paddle.pir.reset_insertion_point_to_end()
            new.persistable = True
            value.replace_all_uses_with(new)
            init.erase()
        elif op is not None and op.ins("shape"):
            self.set_const(op, "shape", shape)
            value.set_type(paddle.pir.create_shaped_type(value.type(), [int(d) for d in shape]))
        else:
            raise NotImplementedError(f"cannot resize the initializer '{init.name()}' of '{name}' in the startup program")
        return True

    def set_const(self, op, slot, values):
        """Give `op` a new constant for `slot`. The `full_int_array` op is replaced, not edited: editing
        its `value` attribute in place crashes at run time in paddle 3.3.1."""
        (key,) = op.ins(slot)
        old_value = self.values[key]
        src = old_value.get_defining_op()
        if src is None or src.name() != "pd_op.full_int_array":
            raise NotImplementedError(f"{op.type} reads its {slot} from a computed tensor, not a constant")
        attrs = src.attrs()
        point = paddle.pir.get_current_insertion_point()
        paddle.pir.set_insertion_point(src)
        try:
            new = paddle._C_ops.full_int_array([int(v) for v in values], attrs["dtype"], attrs["place"])
        finally:
            paddle.pir.set_insertion_point(point) if point is not None else paddle.pir.reset_insertion_point_to_end()
        old_value.replace_all_uses_with(new)
        src.erase()
        new_key = self._key(new)
        for user in self.consumers.pop(key, []):
            for s, ks in user.inputs.items():
                user.inputs[s] = [new_key if k == key else k for k in ks]
            user.forget_attr(slot)
            self.consumers.setdefault(new_key, []).append(user)


def _by_slot(values, names, prefix):
    """(slot, value) for an op's operands or results, slots named as the op's YAML names them (else
    `prefix` + position); a value left out (an optional input) is None."""
    for i, v in enumerate(values):
        yield (names[i] if names and i < len(names) else f"{prefix}{i}"), (v if v.initialized() else None)
