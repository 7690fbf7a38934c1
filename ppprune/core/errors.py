"""Errors the core raises. Each names the problem and the way out."""


class PruneError(ValueError):
    """Bad input or a program the core cannot prune; nothing was changed."""


class CannotFollow(PruneError):
    """A channel rule cannot carry pruned channels through an op."""

    def __init__(self, param, op, why):
        self.param, self.op_type, self.why = param, op.type, why
        self.reason = f"its channels reach '{op.type}' (op #{op.index}) and {why}"  # why it is skipped, when it may be
        super().__init__(
            f"cannot prune '{param}': its channels reach op '{op.type}' (op #{op.index}"
            f"{', ' + op.where if getattr(op, 'where', None) else ''}) and {why}. "
            f"Leave '{param}' out of the pruned params, or add a channel rule for '{op.type}' in "
            f"ppprune/core/rules.py."
        )


class MissingDependency(ImportError):
    """An optional package a feature needs is not installed; the message names the extra to install."""
