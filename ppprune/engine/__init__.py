"""Static-mode engine: programs from a config, checkpoints, optimizer, train/eval loops."""
from .checkpoint import WeightsError, load_checkpoint, load_weights, save_checkpoint
from .place import get_place
from .programs import ProgramSpec, Programs, build_programs, persistable_names
from . import distributed
from .trainer import eval_loop, fit, train_loop

__all__ = ["ProgramSpec", "Programs", "WeightsError", "build_programs", "distributed", "eval_loop", "fit", "get_place",
           "load_checkpoint", "load_weights", "persistable_names", "save_checkpoint", "train_loop"]
