"""Cost of a static program (FLOPs, parameter count) and plots of sensitivity results; a dygraph Layer's FLOPs
are `ppprune.dygraph.dygraph_flops`."""
from .flops import flops, model_size
from .plot import plot_sensitivities

__all__ = ["flops", "model_size", "plot_sensitivities"]
