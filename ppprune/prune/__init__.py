"""The PaddleSlim-style static pruning API."""
from .pruner import Pruner
from .ratios import get_ratios_by_loss, ratios_for_flops
from .sensitive import (load_sensitivities, merge_sensitive, merged_provenance, save_sensitivities, sensitivity,
                        sensitivity_baseline, sensitivity_provenance)

__all__ = ["Pruner", "sensitivity", "merge_sensitive", "load_sensitivities", "get_ratios_by_loss", "ratios_for_flops",
           "save_sensitivities", "sensitivity_baseline", "sensitivity_provenance", "merged_provenance"]
