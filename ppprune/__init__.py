"""ppprune: channel pruning for PaddlePaddle static programs and dygraph Layers."""

__version__ = "0.1.0"
