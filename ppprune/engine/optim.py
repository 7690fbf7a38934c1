"""Optimizer and learning-rate schedule from config.

    LearningRate:
      base_lr: 0.001
      schedulers:                 # applied in order, each wrapping the previous one
        PiecewiseDecay: {gamma: 0.1, milestones: [400, 550]}   # or values: [0.001, 0.0001, 0.00001]
        LinearWarmup: {start_factor: 0.0, steps: 50}
    Optimizer: {name: Momentum, momentum: 0.9, l2_decay: 0.0005}   # or {name: Adam} (no decay)
"""
import paddle
from paddle.regularizer import L2Decay

from ..config import ConfigValueError, create
from ..config.checks import need
from ..registry import LR_SCHEDULES, OPTIMIZERS


PIECEWISE = "LearningRate.schedulers.PiecewiseDecay"


@LR_SCHEDULES.register
def PiecewiseDecay(base_lr, inner, gamma=0.1, milestones=None, values=None):  # noqa: N802 - a class-like name
    """base_lr, then times gamma after each milestone (iterations); `values` (one more than the milestones)
    gives every interval's rate instead. Must come first: it replaces `inner`."""
    if not isinstance(inner, float):
        raise ConfigValueError("PiecewiseDecay must be the first entry of LearningRate.schedulers (the others wrap "
                               "the rate it sets); move it up")
    milestones = _milestones(milestones)
    if values is None:
        need(f"{PIECEWISE}.gamma", gamma, float, above=0)
        values = [base_lr * gamma ** i for i in range(len(milestones) + 1)]
    elif not isinstance(values, list) or len(values) != len(milestones) + 1:
        raise ConfigValueError(f"{PIECEWISE}.values is {values!r}; give {len(milestones) + 1} learning rates for "
                               f"{len(milestones)} milestones (one before the first milestone and one after each)")
    for i, value in enumerate(values):
        need(f"{PIECEWISE}.values[{i}]", value, float, low=0)
    return paddle.optimizer.lr.PiecewiseDecay(milestones, values)


def _milestones(milestones):
    """Iterations in increasing order: paddle takes unordered ones and silently skips a rate."""
    milestones = need(f"{PIECEWISE}.milestones", milestones, list, optional=True) or []
    for i, step in enumerate(milestones):
        need(f"{PIECEWISE}.milestones[{i}]", step, int, low=0)
    if any(later <= earlier for earlier, later in zip(milestones, milestones[1:])):
        raise ConfigValueError(f"{PIECEWISE}.milestones is {milestones}; they must be increasing iteration numbers "
                               f"(fix the config or -o {PIECEWISE}.milestones=...)")
    return milestones


class _Warmup(paddle.optimizer.lr.LinearWarmup):
    # Paddle's LinearWarmup shifts the inner schedule by the warmup length; milestones here are absolute.
    def get_lr(self):
        if self.last_epoch < self.warmup_steps or not isinstance(self.learning_rate, paddle.optimizer.lr.LRScheduler):
            return super().get_lr()
        self.learning_rate.step(self.last_epoch)
        return self.learning_rate()


@LR_SCHEDULES.register
def LinearWarmup(base_lr, inner, start_factor=0.0, steps=0):  # noqa: N802
    """Ramp linearly from base_lr * start_factor to base_lr over `steps`, then follow `inner`."""
    return _Warmup(inner, steps, base_lr * start_factor, base_lr)


@OPTIMIZERS.register
def Momentum(learning_rate, momentum=0.9, l2_decay=0.0):  # noqa: N802
    """SGD with momentum; `l2_decay` applies to every parameter whose ParamAttr sets no regularizer."""
    return paddle.optimizer.Momentum(learning_rate, momentum=momentum,
                                     weight_decay=L2Decay(l2_decay) if l2_decay else None)


class _Adam(paddle.optimizer.Adam):
    """paddle's Adam minus the no-op ops of zero-coefficient L2Decay regularizers.

    The models give BN scale/offset and output biases `L2Decay(0.0)`. Momentum fuses an L2Decay into its
    update op, but Adam appends `scale` + `add` ops on those gradients; they do nothing, and the pruning core
    would read their results as network outputs fed by the pruned channels (and refuse to prune)."""

    def _create_regularization_of_grad(self, param, grad, regularization=None):
        reg = getattr(param, "regularizer", None) or regularization  # a ParamAttr's regularizer wins
        if isinstance(reg, L2Decay) and not reg._coeff:
            return grad
        return super()._create_regularization_of_grad(param, grad, regularization)


@OPTIMIZERS.register
def Adam(learning_rate, beta1=0.9, beta2=0.999, epsilon=1e-8):  # noqa: N802
    """Adam without weight decay. Its per-parameter step sizes suit training from scratch, where a BN
    MobileNet's first layers get gradients ~1000x those of its last ones (see docs/detection.md)."""
    return _Adam(learning_rate, beta1=beta1, beta2=beta2, epsilon=epsilon)


def build_lr(cfg):
    """-> a paddle LRScheduler (the trainer steps it once per iteration)."""
    section = cfg["LearningRate"]
    base_lr = float(section["base_lr"])
    lr = base_lr
    for name, kwargs in (section.get("schedulers") or {}).items():
        lr = create(LR_SCHEDULES, {"name": name, **(kwargs or {})}, cfg, base_lr=base_lr, inner=lr)
    return lr if isinstance(lr, paddle.optimizer.lr.LRScheduler) else paddle.optimizer.lr.LambdaDecay(lr, lambda _: 1.0)


def build_optimizer(cfg, lr):
    return create(OPTIMIZERS, cfg["Optimizer"], cfg, learning_rate=lr)
