"""Exported inference models in either format, opened in either IR.

PaddleDetection 2.x and PaddleOCR export legacy ProgramDesc models (`model.pdmodel`); Paddle 3.x exports
PIR ones (`model.json`). Under PIR, `paddle.static.load_inference_model` cannot parse a `.pdmodel`, so
`load` reads it as a legacy program and translates it (`paddle.pir.translate_to_pir`). A PIR `.json`
model is always opened as a PIR program: Paddle has no translation back to ProgramDesc.

    model = load("inference/model")             # PIR program (the default IR), any format
    model = load("inference/model", ir="legacy")  # a .pdmodel as a legacy Program
    pruned, _, _ = Pruner().prune(model.program, model.scope, params, ratios)
    save(model, pruned, "pruned/model", lookup=pruner.lookup)
"""
import os
import shutil
import tempfile

from ..core.errors import PruneError
from .paddle_inference import model_files


class InferenceModel:
    """`program` (PIR or legacy), its `scope` holding the weights, `feed_names`, `fetch_targets` (values
    or variables of `program`), the `ir` it is in and the `model_file` it came from."""

    def __init__(self, program, scope, feed_names, fetch_targets, ir, model_file):
        self.program, self.scope = program, scope
        self.feed_names, self.fetch_targets = list(feed_names), list(fetch_targets)
        self.ir, self.model_file = ir, model_file


def _current_ir():
    import paddle

    return "pir" if paddle.framework.use_pir_api() else "legacy"


def load(prefix, ir=None, place=None):
    """Open the inference model saved at `prefix` (`prefix.json` or `prefix.pdmodel` + `.pdiparams`; a
    folder holding `model.*` works too) as a program of `ir` ('pir' or 'legacy'; default: the IR the
    process is in)."""
    import paddle

    if os.path.isdir(prefix):
        prefix = os.path.join(prefix, "model")
    model_file, params_file = model_files(prefix)
    if not os.path.exists(params_file):
        raise FileNotFoundError(f"'{model_file}' has no weights beside it (expected '{params_file}')")
    ir = ir or _current_ir()
    if ir not in ("pir", "legacy"):
        raise PruneError(f"ir must be 'pir' or 'legacy', got {ir!r}")
    legacy_file = model_file.endswith(".pdmodel")
    if not legacy_file and ir == "legacy":
        raise PruneError(f"'{model_file}' is a PIR model and Paddle cannot turn PIR back into a legacy program: "
                         f"open it with ir='pir' (the default IR)")
    _check_model_file(model_file)
    paddle.enable_static()
    scope = paddle.static.Scope()
    exe = paddle.static.Executor(place or paddle.CPUPlace())
    guard = paddle.pir_utils.OldIrGuard() if legacy_file else paddle.pir_utils.IrGuard()
    try:
        with guard, paddle.static.scope_guard(scope):
            program, feed_names, fetch_targets = paddle.static.load_inference_model(prefix, exe)
    except Exception as e:  # noqa: BLE001 - Paddle reports a damaged file as ValueError, RuntimeError, IndexError...
        lines = [line.strip() for line in str(e).splitlines() if line.strip()] or [type(e).__name__]
        # Paddle's summary line: "(InvalidArgument) ..." (PIR) or "InvalidArgumentError: ..." after a stack (legacy)
        cause = next((line for line in lines if line.startswith("(") or "Error: " in line), lines[0])[:160]
        raise PruneError(f"cannot load the inference model '{model_file}' with '{params_file}' ({cause}): one of them "
                         "is truncated or not a Paddle inference model; export it again or copy both files again") from None
    _check_params_size(program, scope, params_file)
    if legacy_file and ir == "pir":
        if program.num_blocks > 1:
            raise PruneError(f"'{model_file}' has control-flow blocks, which paddle.pir.translate_to_pir cannot "
                             f"translate: open it with ir='legacy'")
        program = paddle.pir.translate_to_pir(program.desc)
        fetch_targets = [op.operand_source(0) for op in program.global_block().ops if op.name() == "pd_op.fetch"]
    return InferenceModel(program, scope, feed_names, fetch_targets, ir, model_file)


def _check_model_file(model_file):
    """A PIR model is JSON, a legacy one a protobuf: refuse an empty file or broken JSON naming the file (Paddle
    would report a parse error without it)."""
    import json

    problem = "is empty" if os.path.getsize(model_file) == 0 else None
    if problem is None and model_file.endswith(".json"):
        try:
            with open(model_file, "rb") as f:
                json.load(f)
        except (ValueError, UnicodeDecodeError) as e:
            problem = f"is not valid JSON ({str(e)[:80]})"
    if problem:
        raise PruneError(f"'{model_file}' {problem}: it is truncated or not a Paddle inference model; export it "
                         "again or copy it again")


def _varint_size(value):
    return 1 + (value.bit_length() - 1) // 7 if value > 0 else 1


def _check_params_size(program, scope, params_file):
    """Paddle reads a truncated `.pdiparams` without complaint, filling the last tensor with whatever is left:
    its size must be at least what the loaded tensors take (per tensor two version words, the LoD level, the
    desc size, the desc (dtype and dims) and the data)."""
    import numpy as np

    from ..core.graph import persistable_names

    need = 0
    for name in persistable_names(program):
        var = scope.find_var(name)
        if var is None or not var.get_tensor()._is_initialized():
            continue
        array = np.array(var.get_tensor())
        need += 4 + 8 + 4 + 4 + 2 + sum(1 + _varint_size(d) for d in array.shape) + array.nbytes
    have = os.path.getsize(params_file)
    if have < need:
        raise PruneError(f"'{params_file}' is truncated ({have} bytes, its tensors need {need}); export the model "
                         "again or copy the file again")


def save(model, program, prefix, lookup=None, scope=None):
    """Save `program` (e.g. `model.program` pruned) with the weights in `scope` (default `model.scope`) as
    an inference model at `prefix`, in the format of its IR. `lookup` (a Pruner's) finds the model's fetch
    targets in a copied program. Files appear under their final names only once all are written."""
    import paddle

    from ..core.graph import feed_vars

    lookup = lookup or (lambda v: v)
    folder = os.path.dirname(os.path.abspath(prefix))
    os.makedirs(folder, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".tmp-save-", dir=folder)
    pir = isinstance(program, paddle.pir.Program)
    try:
        guard = paddle.pir_utils.IrGuard() if pir else paddle.pir_utils.OldIrGuard()
        with guard, paddle.static.scope_guard(scope or model.scope):
            exe = paddle.static.Executor(paddle.CPUPlace())
            feeds = feed_vars(program, model.feed_names) if pir else [program.global_block().var(n) for n in model.feed_names]
            fetches = [lookup(t) for t in model.fetch_targets]
            paddle.static.save_inference_model(os.path.join(staging, "model"), feeds, fetches, exe, program=program)
        for name in sorted(os.listdir(staging)):
            os.replace(os.path.join(staging, name), prefix + name[len("model"):])
    finally:
        shutil.rmtree(staging, ignore_errors=True)
