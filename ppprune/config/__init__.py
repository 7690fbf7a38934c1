"""Config loading (YAML + `_BASE_` + overrides) and config-driven construction of components."""
from .loader import ConfigError, ConfigValueError, apply_override, check_keys, create, deep_merge, dump_config, load_config

__all__ = ["ConfigError", "ConfigValueError", "apply_override", "check_keys", "create", "deep_merge", "dump_config", "load_config"]
