"""The PaddleSlim-style static pruning API."""
from .pruner import Pruner
from .sensitive import (get_ratios_by_loss, load_sensitivities, merge_sensitive, ratios_for_flops, save_sensitivities,
                        sensitivity, sensitivity_baseline)

__all__ = ["Pruner", "sensitivity", "merge_sensitive", "load_sensitivities", "get_ratios_by_loss", "ratios_for_flops",
           "save_sensitivities", "sensitivity_baseline"]
