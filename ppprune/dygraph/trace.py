"""Trace a dygraph Layer into a program the core can analyse, and map its names back to the Layer.

The core plans on programs; a Layer becomes one with `paddle.jit.to_static`. Parameters keep their
`param.name` (`conv2d_0.w_0`) in the traced program, so plans speak PaddleSlim's names; users may also
say the structured name (`features.0.weight`), which `Trace.resolve` maps to the same parameter.
"""
import difflib

import paddle
from paddle.static import InputSpec

from ..core.errors import PruneError
from ..core.graph import view_of


class Trace:
    """A Layer as a program: `program`, its `view`, and the Layer's tensors by program name."""

    def __init__(self, model, program):
        self.program = program
        self.view = view_of(program)
        self.view.from_layer = True
        self.tensors = {}  # program name -> Parameter or buffer
        self.paths = {}  # program name -> structured name
        self.owners = {}  # program name -> (structured layer name, attribute)
        for prefix, layer in model.named_sublayers(include_self=True):
            for attr, t in list(layer._parameters.items()) + list(layer._buffers.items()):
                if t is not None and t.name not in self.owners:
                    self.owners[t.name] = (prefix, attr)
                    self.tensors[t.name] = t
                    self.paths[t.name] = f"{prefix}.{attr}" if prefix else attr
        self._by_path = {p: n for n, p in self.paths.items()}

    def resolve(self, name):
        """The program name of a parameter given by program name or structured name."""
        if name in self.tensors:
            return name
        if name in self._by_path:
            return self._by_path[name]
        known = list(self.tensors) + list(self._by_path)
        near = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(n) for n in near)}?" if near else ""
        raise PruneError(f"the model has no parameter '{name}'.{hint}")

    def read_tensor(self, name):
        return self.tensors[name].numpy()


def signature(model):
    """What a trace depends on: every tensor's name and shape. A changed signature means re-trace."""
    return tuple((t.name, tuple(t.shape)) for t in model.parameters() + model.buffers())


def input_specs(inputs):
    """InputSpecs from a shape (`[1, 3, 224, 224]`), a list of shapes, tensors or InputSpecs.

    The batch dim is traced as unknown: the core tells the batch axis apart from channels by its
    unknown size, whereas a batch of 1 looks like any other size-1 axis to the reshape rules (a
    flatten after global pooling would then seem to fold channels into the batch).
    """
    if isinstance(inputs, (paddle.Tensor, InputSpec)) or (inputs and all(isinstance(d, int) for d in inputs)):
        inputs = [inputs]
    specs = []
    for x in inputs:
        if isinstance(x, InputSpec):
            specs.append(x)
        elif isinstance(x, paddle.Tensor):
            specs.append(InputSpec([None] + list(x.shape[1:]), x.dtype))
        else:
            specs.append(InputSpec([None] + [int(d) for d in x[1:]], "float32"))
    return specs


def trace(model, inputs):
    """Trace `model` in eval mode (its train/eval flags are put back) and return a `Trace`."""
    if not paddle.in_dynamic_mode():
        raise PruneError("dygraph pruners need dygraph mode: call paddle.disable_static() first")
    modes = [(layer, layer.training) for layer in model.sublayers(include_self=True)]
    for layer, _ in modes:  # not model.eval(): that also switches the global dygraph tracer to eval
        layer.training = False
    try:
        # Tracing the bound forward leaves `model` itself untouched (to_static(model) would wrap it).
        fn = paddle.jit.to_static(model.forward, input_spec=input_specs(inputs), full_graph=True)
        program = fn.concrete_program.main_program
    finally:
        for layer, mode in modes:
            layer.training = mode
    return Trace(model, program)
