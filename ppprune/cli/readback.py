"""Read a saved inference model back and compare it with the scope it was saved from. Paddle writes model
files from C++ and does not report a full disk: the file is silently cut short (and a cut `.pdiparams` even
loads, with wrong values), so a staged model is checked before it becomes an output."""
import os


def check(prefix, scope):
    """Raise `OutputDirError` unless the model at `prefix` loads and holds exactly the weights in `scope`."""
    import numpy as np
    import paddle

    from ..core.graph import view_of
    from ..outdir import OutputDirError

    pir = os.path.exists(prefix + ".json")
    fresh = paddle.static.Scope()
    guard = paddle.pir_utils.IrGuard() if pir else paddle.pir_utils.OldIrGuard()
    try:
        with guard, paddle.static.scope_guard(fresh):
            program, _, _ = paddle.static.load_inference_model(prefix, paddle.static.Executor(paddle.CPUPlace()))
            view = view_of(program)
            names = {view.persistable_name(k) for op in view.ops for ks in [*op.inputs.values(), *op.outputs.values()]
                     for k in ks} - {None, "", "feed", "fetch"}
            for name in sorted(names):
                got, want = fresh.find_var(name), scope.find_var(name)
                if want is None or not want.get_tensor()._is_initialized():
                    continue
                if got is None or not got.get_tensor()._is_initialized() or \
                        not np.array_equal(np.array(got.get_tensor()), np.array(want.get_tensor())):
                    raise ValueError(f"'{name}' differs")
    except (RuntimeError, ValueError, OSError) as e:
        raise OutputDirError(f"the saved model '{prefix}' does not read back ({str(e).splitlines()[0][:120]}); is the "
                             "disk full? Nothing was written to the output folder") from None
