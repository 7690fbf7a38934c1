"""ppprune: channel pruning for PaddlePaddle static programs and dygraph Layers."""

__version__ = "0.1.0"

_DYGRAPH = ("L1NormFilterPruner", "L2NormFilterPruner", "FPGMFilterPruner")


def __getattr__(name):
    # Imported on first use so that `import ppprune` does not import paddle.
    if name in _DYGRAPH:
        from . import dygraph

        return getattr(dygraph, name)
    raise AttributeError(f"module 'ppprune' has no attribute '{name}'")
