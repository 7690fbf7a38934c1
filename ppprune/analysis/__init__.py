"""Cost of a static program (FLOPs, parameter count) and plots of sensitivity and recipe results; a dygraph Layer's FLOPs
are `ppprune.dygraph.dygraph_flops`."""
from .flops import flops, model_size
from .plot import plot_recipes, plot_sensitivities

__all__ = ["flops", "model_size", "plot_recipes", "plot_sensitivities"]
