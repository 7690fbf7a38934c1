"""Cost of a static program or a dygraph Layer (FLOPs, parameter count) and plots of sensitivity results."""
from .dygraph_flops import dygraph_flops
from .flops import flops, model_size
from .plot import plot_sensitivities

__all__ = ["dygraph_flops", "flops", "model_size", "plot_sensitivities"]
