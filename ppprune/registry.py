"""The pipeline's registries, so configs can name components (`architecture: YOLOv3`, `metric: VOC`).

The core's own registries (criteria, selectors, channel rules) live with the core; all share the
dependency-free `core.registry.Registry`.
"""
from .config.loader import ConfigError  # a config naming an unknown component is a config error
from .core.registry import Registry

ARCHITECTURES = Registry("architecture", error=ConfigError)
BACKBONES = Registry("backbone", error=ConfigError)
HEADS = Registry("head", error=ConfigError)
NECKS = Registry("neck", error=ConfigError)
DATASETS = Registry("dataset", error=ConfigError)
TRANSFORMS = Registry("transform", error=ConfigError)
OPTIMIZERS = Registry("optimizer", error=ConfigError)
LR_SCHEDULES = Registry("lr schedule", error=ConfigError)
EVALUATORS = Registry("metric", error=ConfigError)  # the config's `metric:` names one
