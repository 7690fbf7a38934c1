"""Graph view of a legacy ProgramDesc program (`FLAGS_enable_pir_api=0`, `OldIrGuard`, `.pdmodel` files)."""
import re

from .base import BACKWARD, FORWARD, OPTIMIZER, OTHER, GraphView, OpView, named_inputs as _named

# Legacy op type -> canonical (PIR) op type.
_TYPES = {
    "elementwise_add": "add",
    "elementwise_sub": "subtract",
    "elementwise_mul": "multiply",
    "elementwise_div": "divide",
    "matmul_v2": "matmul",
    "reshape2": "reshape",
    "flatten_contiguous_range": "flatten",
    "flatten2": "flatten",
    "transpose2": "transpose",
    "squeeze2": "squeeze",
    "unsqueeze2": "unsqueeze",
    "nearest_interp_v2": "nearest_interp",
    "bilinear_interp_v2": "bilinear_interp",
    "hard_swish": "hardswish",
    "hard_sigmoid": "hardsigmoid",
    "reduce_mean": "mean",
    "reduce_sum": "sum",
    "reduce_max": "max",
}
# Slots whose canonical names differ from the snake_case of the legacy name, per canonical op type.
_SLOTS = {
    "conv2d": {"Output": "out"},
    "depthwise_conv2d": {"Output": "out"},
    "conv2d_transpose": {"Output": "out"},
    "batch_norm": {"Y": "out"},
    "sync_batch_norm": {"Y": "out"},
    "nearest_interp": {"Out": "output"},
    "bilinear_interp": {"Out": "output"},
}
# Attribute renames: canonical name -> legacy name, per canonical op type.
_ATTRS = {
    "transpose": {"perm": "axis"},
    "mean": {"axis": "dim", "keepdim": "keep_dim"},
    "sum": {"axis": "dim", "keepdim": "keep_dim"},
    "max": {"axis": "dim", "keepdim": "keep_dim"},
    "squeeze": {"axis": "axes"},
    "matmul": {"transpose_x": "trans_x", "transpose_y": "trans_y"},
    "unsqueeze": {"axis": "axes"},
    "nearest_interp": {"data_format": "data_layout"},
    "bilinear_interp": {"data_format": "data_layout"},
}
_IO_OPS = {"feed", "fetch"}
_BLOCK_OPS = {"conditional_block", "conditional_block_infer", "while", "recurrent", "pylayer"}  # own a sub_block


def _flat_ops(program, block, where=None):
    """(op, where) for every op of `block` and, after each op that owns a sub-block (conditional_block,
    while), the ops of that block, recursively; `where` names the owning op for messages."""
    for i, raw in enumerate(block.ops):
        t = raw.type
        yield raw, t, where
        if t in _BLOCK_OPS:
            sub = program.block(raw._block_attr_id("sub_block"))
            yield from _flat_ops(program, sub, f"inside the block of '{t}' (#{i} of block {block.idx})")


def _snake(name):
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def _canonical_slot(op_type, slot):
    base, grad = (slot[: -len("@GRAD")], True) if slot.endswith("@GRAD") else (slot, False)
    fwd_type = op_type[: -len("_grad")] if op_type.endswith("_grad") else op_type
    name = _SLOTS.get(fwd_type, {}).get(base) or _snake(base)
    return name + "_grad" if grad else name


def grad_base(name):
    """`conv1.w@GRAD@RENAME@block0@0` -> `conv1.w`: the forward variable a gradient variable mirrors."""
    at = name.find("@GRAD")
    return name[:at] if at >= 0 else None


class LegacyView(GraphView):
    ir = "legacy"

    @staticmethod
    def clone(program):
        copy = program.clone()
        return copy, lambda var: copy.global_block().var(var if isinstance(var, str) else var.name)

    @staticmethod
    def feed_vars(program, names):
        block = program.global_block()
        return _named({n: block.var(n) for n in names if block.has_var(n)}, names)

    @staticmethod
    def persistable_names(program):
        from paddle.base.core import VarDesc

        skip = (VarDesc.VarType.FEED_MINIBATCH, VarDesc.VarType.FETCH_LIST)
        return sorted({v.name for v in program.list_vars() if v.persistable and v.type not in skip})

    def __init__(self, program):
        self.program = program
        self.block = program.global_block()
        self._vars = {}
        self._inner = {}  # var name -> block of a var declared inside a sub-block
        for sub in program.blocks[1:]:
            for name in sub.vars:
                self._inner.setdefault(name, sub)
        self.ops = []
        for raw, t, where in _flat_ops(program, self.block):
            grad = t.endswith("_grad")
            fwd = _TYPES.get(t[:-5] if grad else t, t[:-5] if grad else t)
            canon = fwd + "_grad" if grad else fwd
            ins = {_canonical_slot(canon, s): list(raw.input(s)) for s in raw.input_names}
            outs = {_canonical_slot(canon, s): list(raw.output(s)) for s in raw.output_names}
            self.ops.append(OpView(raw, canon, self._kind(raw, canon, ins, outs), ins, outs, len(self.ops), _read_attr))
            self.ops[-1].where = where
            cond = ins.get("cond", []) + ins.get("condition", [])
            if t in _BLOCK_OPS and cond:  # what decides the branch or the next iteration
                self.ops.append(OpView(raw, "condition", FORWARD, {"x": cond}, {}, len(self.ops), _read_attr))
                self.ops[-1].where = f"deciding '{t}' (op #{len(self.ops) - 2})"
        self._index()

    @staticmethod
    def _kind(raw, canon, ins, outs):
        if canon in _IO_OPS or canon in _BLOCK_OPS:  # a block's own ops are in the view
            return OTHER
        role = raw.attr("op_role") if raw.has_attr("op_role") else 0
        if "param" in ins and "param_out" in outs:
            return OPTIMIZER
        if role & 0x0001 or canon.endswith("_grad"):
            return BACKWARD
        if role & 0x0002 or role & 0x0010:
            return OTHER
        return FORWARD

    # -- values ---------------------------------------------------------------------------------
    def _var(self, key):
        var = self._vars.get(key)
        if var is None:
            var = self.block._find_var_recursive(key)
            if var is None and key in self._inner:
                var = self._inner[key]._find_var_recursive(key)
            self._vars[key] = var
        return var

    def is_global(self, key):
        """Whether the variable lives in the global block (and can be fetched)."""
        return self.block.has_var(key)

    def shape(self, key):
        var = self._var(key)
        return list(var.shape) if var is not None else None

    def set_shape(self, key, shape):
        self._var(key).desc.set_shape([int(d) for d in shape])

    def persistable_name(self, key):
        var = self._var(key)
        return key if var is not None and var.persistable else None

    def param_names(self):
        """Parameters, plus persistable op inputs: programs from load_inference_model have no Parameter
        objects, only persistable variables."""
        names = {p.name: None for p in self.block.all_parameters()}
        for op in self.ops:
            if op.kind == OTHER:
                continue
            for keys in op.inputs.values():
                for k in keys:
                    if k not in names and self.persistable_name(k):
                        names[k] = None
        return list(names)

    def param_key(self, name):
        var = self._var(name)
        return name if var is not None and var.persistable else None

    def is_fetched(self, key):
        return any(op.raw.type == "fetch" for op in self.consumers.get(key, []))

    def grad_mirror(self):
        """{gradient key: forward key} for every gradient variable of the block."""
        mirror = {}
        for op in self.ops:
            if op.kind != BACKWARD:
                continue
            for keys in op.outputs.values():
                for k in keys:
                    base = grad_base(k)
                    if base is not None:
                        mirror[k] = base
            for keys in op.inputs.values():
                for k in keys:
                    base = grad_base(k)
                    if base is not None:
                        mirror.setdefault(k, base)
        return mirror

    # -- edits ----------------------------------------------------------------------------------
    def set_attr(self, op, name, value):
        op.raw._set_attr(_ATTRS.get(op.type, {}).get(name, name), value)
        op.forget_attr(name)

    def resize_init(self, name, shape):
        """In a startup program: make the op that initialises persistable `name` produce `shape`."""
        var = self._var(name)
        if var is None:
            return False
        for op in self.producers.get(name, []):
            if op.raw.has_attr("shape"):
                op.raw._set_attr("shape", [int(d) for d in shape])
            else:
                raise NotImplementedError(f"cannot resize the initializer '{op.type}' of '{name}' in the startup program")
        var.desc.set_shape([int(d) for d in shape])
        return True

    def set_const(self, op, slot, values):
        """Rewrite the constant an op reads for `slot` (legacy: always an attribute)."""
        if op.ins("shape") or op.ins("shape_tensor"):  # legacy reshape2 can read its shape from tensors
            raise NotImplementedError(f"{op.type} reads its {slot} from a tensor, not a constant")
        self.set_attr(op, slot, [int(v) for v in values])


def _read_attr(op, name):
    raw = op.raw
    legacy_name = _ATTRS.get(op.type[:-5] if op.type.endswith("_grad") else op.type, {}).get(name, name)
    return raw.attr(legacy_name) if raw.has_attr(legacy_name) else None
