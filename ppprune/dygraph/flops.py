"""FLOPs of a dygraph Layer: the Layer is traced as the dygraph pruners trace it and counted with the
static counter (`ppprune.analysis.flops`), so both speak the same multiply-adds per sample."""
from ..analysis.flops import flops
from .trace import trace


def dygraph_flops(model, input_shape, only_conv=False, detail=False):
    """Multiply-adds of one sample through `model` for an input of `input_shape` (e.g. [1, 3, 224, 224]);
    see `ppprune.analysis.flops` for what counts."""
    return flops(trace(model, input_shape).program, detail=detail, only_conv=only_conv)
