"""Training programs: gradients and optimizer state follow the pruned weights, so training continues
exactly as the zeroed model would on the channels that remain."""
import numpy as np
import paddle
import pytest

from tests.helpers import nets, oracle
from ppprune.core.graph import view_of
from ppprune.prune import Pruner


def build_train(ir, optimizer):
    net, shape = nets.ARCHITECTURES["residual"]
    paddle.seed(0)  # the same initial weights whatever ran before
    main, startup = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(main, startup), paddle.utils.unique_name.guard():
        x = paddle.static.data("image", [None] + shape, "float32")
        label = paddle.static.data("label", [None, 1], "int64")
        logits = net(x)
        loss = paddle.nn.functional.cross_entropy(logits, label).mean()
        opt = {"momentum": lambda: paddle.optimizer.Momentum(0.01, momentum=0.9),
               "adam": lambda: paddle.optimizer.Adam(0.001),
               # weight decay adds scale/add ops after the backward pass (PIR gives them no role)
               "adam_l2": lambda: paddle.optimizer.Adam(0.001, weight_decay=paddle.regularizer.L2Decay(1e-3))}[optimizer]()
        opt.minimize(loss)
    return main, startup, loss, shape


def step(exe, program, scope, feed, loss):
    (value,) = oracle.run(exe, program, scope, feed, [loss])
    return float(np.asarray(value))


@pytest.mark.parametrize("ir", ["pir", "legacy"])
@pytest.mark.parametrize("optimizer", ["momentum", "adam", "adam_l2"])
def test_training_continues_like_the_zeroed_model(ir, optimizer):
    with oracle.ir_guard(ir):
        main, startup, loss, shape = build_train(ir, optimizer)
        scope, exe = paddle.static.Scope(), paddle.static.Executor(paddle.CPUPlace())
        with paddle.static.scope_guard(scope):
            exe.run(startup)
        rng = np.random.RandomState(0)
        feed = {"image": rng.rand(4, *shape).astype("float32"), "label": rng.randint(0, 10, (4, 1)).astype("int64")}
        step(exe, main, scope, feed, loss)  # optimizer state becomes non-zero
        names = oracle.persistable_names(main)
        params, ratios = ["conv4_weights", "conv6_weights"], [0.5, 0.25]

        lazy_scope = oracle.copy_scope(scope, names)
        lazy = Pruner()
        lazy_prog, _, _ = lazy.prune(main, lazy_scope, params, ratios, lazy=True)
        real_scope = oracle.copy_scope(scope, names)
        pruner = Pruner()
        pruned, _, shapes = pruner.prune(main, real_scope, params, ratios, param_shape_backup=True)

        accumulators = [n for n in pruner.plan.tensors if "velocity" in n or "moment" in n]
        assert any(n.startswith("conv4_weights") for n in accumulators), pruner.plan.tensors.keys()
        for _ in range(2):
            a = step(exe, lazy_prog, lazy_scope, feed, lazy.lookup(loss))
            b = step(exe, pruned, real_scope, feed, pruner.lookup(loss))
            assert a == pytest.approx(b, rel=1e-5, abs=1e-6)
        # Kept entries of every pruned tensor (weights, BN, velocity/moments) evolve identically.
        for name, axes in pruner.plan.tensors.items():
            zeroed = np.array(lazy_scope.find_var(name).get_tensor())
            kept = zeroed
            for axis, idx in axes.items():
                kept = np.delete(kept, idx, axis=axis)
            # summation order differs with fewer channels: tolerance relative to the tensor's scale
            atol = 1e-5 * max(1.0, float(np.abs(kept).max()))
            np.testing.assert_allclose(np.array(real_scope.find_var(name).get_tensor()), kept, rtol=1e-4, atol=atol, err_msg=name)
        # Recorded shapes of everything persistable (accumulators included) match the scope.
        view = view_of(pruned)
        for op in view.ops:
            for keys in list(op.inputs.values()) + list(op.outputs.values()):
                for k in keys:
                    name = view.persistable_name(k)
                    var = name and real_scope.find_var(name)
                    if var and var.get_tensor()._is_initialized() and view.shape(k):
                        assert list(view.shape(k)) == list(np.array(var.get_tensor()).shape), name


@pytest.mark.parametrize("ir", ["pir", "legacy"])
def test_pruned_startup_initialises_a_fresh_scope(ir):
    with oracle.ir_guard(ir):
        main, startup, loss, shape = build_train(ir, "momentum")
        scope, exe = paddle.static.Scope(), paddle.static.Executor(paddle.CPUPlace())
        with paddle.static.scope_guard(scope):
            exe.run(startup)
        pruner = Pruner()
        pruned, _, _ = pruner.prune(main, scope, ["conv4_weights", "conv6_weights"], [0.5, 0.25])
        new_startup = pruner.prune_startup(startup)
        fresh = paddle.static.Scope()
        with paddle.static.scope_guard(fresh):
            exe.run(new_startup)
        for name, new_shape in pruner.plan.shapes.items():
            assert list(np.array(fresh.find_var(name).get_tensor()).shape) == new_shape, name
        assert any("velocity" in n for n in pruner.plan.shapes)
        rng = np.random.RandomState(0)
        feed = {"image": rng.rand(4, *shape).astype("float32"), "label": rng.randint(0, 10, (4, 1)).astype("int64")}
        assert np.isfinite(step(exe, pruned, fresh, feed, pruner.lookup(loss)))
