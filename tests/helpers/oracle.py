"""The exactness oracle: a structurally pruned program must compute what the original computes with the
same channels zeroed, record the shapes its tensors really have, and deploy with Paddle Inference."""
import contextlib
import os

import numpy as np
import paddle

from ppprune.prune import Pruner


def ir_guard(ir):
    return paddle.pir_utils.OldIrGuard() if ir == "legacy" else contextlib.nullcontext()


def build(net, input_shape, seed=0):
    paddle.seed(seed)
    main, startup = paddle.static.Program(), paddle.static.Program()
    # A fresh name generator: auto-named parameters get the same names every time a net is built.
    with paddle.static.program_guard(main, startup), paddle.utils.unique_name.guard():
        x = paddle.static.data("image", [None] + list(input_shape), "float32")
        out = net(x)
    return main, startup, x, out


def conv_weights(program):
    """Names of every conv filter of the program, in program order."""
    from ppprune.core.graph import view_of
    from ppprune.core.convs import conv_weights as names

    return names(view_of(program))


def init_scope(startup, program, seed=0):
    """Run startup, then give BN statistics and biases non-trivial values so zeroed channels matter."""
    scope = paddle.static.Scope()
    exe = paddle.static.Executor(paddle.CPUPlace())
    with paddle.static.scope_guard(scope):
        exe.run(startup)
    rng = np.random.RandomState(seed)
    from ppprune.core.graph import view_of

    positive = variance_names(program)
    for name in view_of(program).param_names():  # parameters only: optimizer state keeps its init
        var = scope.find_var(name)
        if var is None or not var.get_tensor()._is_initialized():
            continue
        arr = np.array(var.get_tensor())
        if arr.dtype != np.float32 or arr.size == 0:
            continue
        if name in positive:
            new = rng.uniform(0.5, 1.5, arr.shape)
        else:
            new = rng.uniform(-1, 1, arr.shape) * (1.0 if arr.ndim == 1 else max(np.abs(arr).max(), 0.1))
        var.get_tensor().set(new.astype(np.float32), paddle.CPUPlace())
    return scope, exe


def variance_names(program):
    from ppprune.core.graph import view_of

    view = view_of(program)
    return {view.persistable_name(k) for op in view.ops if op.type == "batch_norm" for k in op.ins("variance")}


def persistable_names(program):
    from ppprune.core.graph import view_of

    view = view_of(program)
    names = {view.persistable_name(k) for op in view.ops for ks in list(op.inputs.values()) + list(op.outputs.values()) for k in ks}
    return sorted(n for n in names if n and n not in ("feed", "fetch"))  # legacy feed/fetch holders are not tensors


def copy_scope(src, names):
    dst = paddle.static.Scope()
    for n in names:
        var = src.find_var(n)
        if var is not None and var.get_tensor()._is_initialized():
            dst.var(n).get_tensor().set(np.array(var.get_tensor()), paddle.CPUPlace())
    return dst


def run(exe, program, scope, feed, fetch):
    with paddle.static.scope_guard(scope):
        return exe.run(program, feed=feed, fetch_list=fetch)


def check(net, input_shape, params, ratios, ir, criterion="l1_norm", selector="default_idx_selector",
          batch=2, infer_dir=None, atol=1e-4):
    """Prune lazily and structurally from the same weights; assert equal outputs, exact recorded shapes
    and (if infer_dir) an equal Paddle Inference run. Returns the structural pruner (its plan)."""
    with ir_guard(ir):
        main, startup, x, out = build(net, input_shape)
        scope, exe = init_scope(startup, main)
        names = persistable_names(main)
        feed = {"image": np.random.RandomState(1).rand(batch, *input_shape).astype("float32")}
        (orig,) = run(exe, main, copy_scope(scope, names), feed, [out])

        lazy_scope = copy_scope(scope, names)
        lazy = Pruner(criterion, selector)
        lazy_prog, _, _ = lazy.prune(main, lazy_scope, params, ratios, lazy=True)
        (zeroed,) = run(exe, lazy_prog, lazy_scope, feed, [lazy.lookup(out)])

        real_scope = copy_scope(scope, names)
        pruner = Pruner(criterion, selector)
        pruned, _, _ = pruner.prune(main, real_scope, params, ratios)
        (got,) = run(exe, pruned, real_scope, feed, [pruner.lookup(out)])

        assert [e.pruned for e in lazy.plan.entries] == [e.pruned for e in pruner.plan.entries]
        assert got.shape == zeroed.shape
        # float32 sums over fewer channels round differently: tolerance scales with the activations
        np.testing.assert_allclose(got, zeroed, rtol=1e-4, atol=atol * max(1.0, float(np.abs(zeroed).max())))
        if any(e.pruned for e in pruner.plan.entries):
            assert not np.allclose(orig, zeroed), "pruning removed channels but changed nothing"
        check_recorded_shapes(exe, pruned, real_scope, feed)
        if infer_dir is not None:
            check_inference(exe, pruned, real_scope, pruner.lookup(x), pruner.lookup(out), feed, got, infer_dir)
        return pruner


def check_recorded_shapes(exe, program, scope, feed):
    """Every value's recorded shape must equal the real tensor's (unknown dims excepted)."""
    from ppprune.core.graph import FORWARD, view_of

    view = view_of(program)
    keys, recorded = [], []
    for op in view.ops:
        if op.kind != FORWARD or op.where is not None:  # inside a block: a branch not taken leaves it empty
            continue
        for slot_keys in op.outputs.values():
            for k in slot_keys:
                shape = view.shape(k)
                if shape is None or k in keys or view.persistable_name(k) or not view.is_global(k):
                    continue
                keys.append(k)
                recorded.append(shape)
    if view.ir == "pir":
        fetch = [view.values[k] for k in keys]
    else:
        fetch = keys
    dtypes_ok = [i for i, k in enumerate(keys) if _fetchable(view, k)]
    arrays = run(exe, program, scope, feed, [fetch[i] for i in dtypes_ok])
    for i, arr in zip(dtypes_ok, arrays):
        rec = recorded[i]
        real = list(np.shape(arr))
        assert len(rec) == len(real) and all(r < 0 or r == a for r, a in zip(rec, real)), (
            f"recorded shape {rec} != real {real} for output of {view.producers[keys[i]][0]}")
    # parameters: recorded shapes equal the scope's tensors
    for name in view.param_names():
        var = scope.find_var(name)
        if var is not None and var.get_tensor()._is_initialized():
            assert list(view.shape(view.param_key(name))) == list(np.array(var.get_tensor()).shape), name


def _fetchable(view, key):
    op = view.producers[key][0]
    if op.type in ("batch_norm", "dropout") and key != op.outs("out")[0]:
        return False  # reserve_space, saved stats, eval-mode dropout masks: scratch the kernel may leave empty
    if view.ir == "legacy" and op.type in ("reshape", "flatten", "squeeze", "unsqueeze", "transpose") and key in op.outs("xshape"):
        return False
    return True


def check_inference(exe, program, scope, x, out, feed, expected, folder):
    """Save the pruned program as an inference model and run it in Paddle Inference with the default CPU
    config (oneDNN on; `ppprune.deploy` skips the oneDNN passes paddle 3.3.1 breaks on some models)."""
    from ppprune import deploy

    prefix = os.path.join(folder, "model")
    with paddle.static.scope_guard(scope):
        paddle.static.save_inference_model(prefix, [x], [out], exe, program=program)
    config = deploy.inference_config(prefix)
    assert config.mkldnn_enabled()
    predictor = deploy.PaddleInferencePredictor(config)
    (result,) = deploy.run(predictor, {predictor.input_names[0]: feed["image"]})
    np.testing.assert_allclose(result, expected, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(expected).max())))
