"""Cost of a static program (FLOPs, parameter count) and plots of sensitivity results."""
from .flops import flops, model_size
from .plot import plot_sensitivities

__all__ = ["flops", "model_size", "plot_sensitivities"]
from .dygraph_flops import dygraph_flops
