"""The dygraph applier: carry a core plan out on a Layer, its layer attributes and its optimizer.

Tensors are shrunk (or zeroed) by the core's scope applier through `TensorScope`, which presents the
Layer's parameters, buffers and optimizer accumulators under their names as a scope would; a Parameter
answers `get_tensor()` like a scope variable, and setting that tensor in place keeps the Parameter object
(and every optimizer holding it) valid. What the core cannot know is the Python side of the Layer:
the attributes that describe channel counts, fixed here from the new shapes and the plan's edits.
"""
import numpy as np
from paddle import nn

from ..core.errors import PruneError
from ..core.scope_write import apply_scope, restore_scope

# op type -> (input slot of the weight that identifies the layer, layer attribute of the op's `groups`)
_GROUP_ATTRS = {
    "conv2d": ("filter", "_groups"),
    "depthwise_conv2d": ("filter", "_groups"),
    "group_norm": ("scale", "_num_groups"),
}
_TRANSPOSED = (nn.Conv1DTranspose, nn.Conv2DTranspose, nn.Conv3DTranspose)


class TensorScope:
    """Named tensors behind the `find_var(name).get_tensor()` interface of a static Scope."""

    def __init__(self, tensors):
        self.tensors = tensors

    def find_var(self, name):
        return self.tensors.get(name)


class Backup:
    """What one application changed, to undo it exactly: tensors, optimizer state and layer attributes."""

    def __init__(self, tensors, attrs, opt):
        self.tensors = tensors  # name -> original array (parameters, buffers, accumulators)
        self.attrs = attrs  # structured layer name -> {attribute: original value}
        self.opt = opt

    def restore(self, model):
        named = {t.name: t for t in model.parameters() + model.buffers()}
        accs = _accumulators(self.opt)
        named.update({n: acc for n, (_, _, acc) in accs.items()})
        missing = sorted(n for n in self.tensors if n not in named)
        if missing:
            raise PruneError(f"cannot restore: the model has no tensors {', '.join(missing)}; pass the pruned model")
        # State the optimizer created after pruning has the pruned shape: it starts again from zeros.
        stale = [(n, p) for n, (_, p, acc) in accs.items()
                 if n not in self.tensors and p in self.tensors and acc.shape == named[p].shape]
        restore_scope(TensorScope(named), self.tensors)
        restore_scope(TensorScope(named), {n: np.zeros(named[p].shape, named[n].numpy().dtype) for n, p in stale})
        _drop_grads(named[n] for n in self.tensors)
        layers = dict(model.named_sublayers(include_self=True))
        for path, attrs in self.attrs.items():
            for attr, value in attrs.items():
                setattr(layers[path], attr, value)


def apply(model, trace, view, plan, opt=None, lazy=False):
    """Prune (or, lazily, zero) the Layer's tensors that `plan` (built on `view`, a view of the traced
    program) changes. Everything is checked before the first change. Returns a `Backup`."""
    changes = dict(plan.tensors)
    unknown = sorted(n for n in changes if n not in trace.tensors)
    if unknown:
        raise PruneError(f"the plan changes {', '.join(unknown)}, which the Layer holds neither as parameters "
                         f"nor as buffers")
    group_edits = [] if lazy else _group_edits(view, trace, plan.cuts.edits)
    tensors = dict(trace.tensors)
    for acc_name, (_, param, acc) in _accumulators(opt).items():
        # Optimizer state shaped like its parameter follows it (velocity, moments); scalars do not.
        if param in changes and list(acc.shape) == list(trace.tensors[param].shape):
            changes[acc_name] = changes[param]
            tensors[acc_name] = acc
    layers = dict(model.named_sublayers(include_self=True))
    touched = {trace.owners[n][0] for n in changes if n in trace.owners}
    attrs = {path: _attr_state(layers[path]) for path in touched}
    originals = apply_scope(TensorScope(tensors), changes, lazy=lazy)
    if not lazy:
        _drop_grads(tensors[n] for n in changes)
        for path, attr, n in group_edits:
            setattr(layers[path], attr, getattr(layers[path], attr) - n)
        for path in touched:
            _sync(layers[path])
    return Backup(originals, {p: a for p, a in attrs.items() if a}, opt)


def _accumulators(opt):
    """{accumulator name: (kind, parameter name, tensor)} of a dygraph optimizer (none before its first step)."""
    if opt is None:
        return {}
    return {acc.name: (kind, param, acc) for kind, per_param in opt._accumulators.items()
            for param, acc in per_param.items()}


def _drop_grads(tensors):
    """A gradient of the old shape cannot be accumulated into: free it (the next backward makes a new one)."""
    for t in tensors:
        if not t.stop_gradient and t.grad is not None:
            t.clear_gradient(False)


def refuse_code_edits(edits):
    """A plan that changes shape constants the Layer's code hard-codes (a reshape, split sections) would
    need that code changed: refuse it."""
    for e in edits:
        if e.kind == "const":
            raise PruneError(
                f"pruning would change the constant '{e.name}' of a {e.op.type} op in the model's forward "
                f"(e.g. a hard-coded reshape); a dygraph Layer's code cannot be edited. Use a shape of -1 "
                f"there, or leave the weights feeding it unpruned."
            )


def _group_edits(view, trace, edits):
    """[(layer path, attribute, decrement)] for the plan's attribute edits (constants are the Layer code's
    business: the pruner checks that they follow)."""
    out = []
    for e in edits:
        if e.kind != "attr":
            continue
        if e.op.type not in _GROUP_ATTRS or e.name != "groups":
            raise PruneError(f"ppprune does not know which layer attribute holds '{e.name}' of {e.op.type} ops")
        slot, attr = _GROUP_ATTRS[e.op.type]
        weight = view.persistable_name(e.op.ins(slot)[0])
        out.append((trace.owners[weight][0], attr, e.n))
    return out


def _attr_state(layer):
    keys = ("_in_channels", "_out_channels", "_groups", "_num_features", "_num_channels", "_num_groups",
            "_num_parameters", "_normalized_shape")
    return {k: getattr(layer, k) for k in keys if hasattr(layer, k)}


def _sync(layer):
    """Make a layer's channel attributes agree with its (new) parameter shapes: repr, summary and any
    code reading them (forward reads `_groups`) then describe the smaller layer."""
    if isinstance(layer, nn.layer.conv._ConvNd):
        w = layer.weight.shape
        if isinstance(layer, _TRANSPOSED):
            layer._in_channels, layer._out_channels = w[0], w[1] * layer._groups
        else:
            layer._in_channels, layer._out_channels = w[1] * layer._groups, w[0]
    elif hasattr(layer, "_num_features"):  # batch norms (affine or not) and instance norms
        held = (getattr(layer, name, None) for name in ("weight", "scale", "_mean"))
        layer._num_features = next(t for t in held if t is not None).shape[0]
    elif isinstance(layer, nn.GroupNorm) and layer.weight is not None:
        layer._num_channels = layer.weight.shape[0]
    elif isinstance(layer, nn.LayerNorm) and layer.weight is not None and len(layer._normalized_shape) == 1:
        layer._normalized_shape = [layer.weight.shape[0]]  # forward normalizes over this many channels
    elif isinstance(layer, nn.PReLU) and layer._num_parameters > 1:
        layer._num_parameters = layer._weight.shape[0]
