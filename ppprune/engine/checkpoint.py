"""Checkpoints as `<prefix>.pdparams` (parameters) + `<prefix>.pdopt` (optimizer state), scope <-> disk.

Both are pickled `{name: numpy array}` dicts, the format of PaddleDetection's static `fluid.save`, so its
`.pdparams` load here. Both files are written to temp files first and only then renamed into place: a
failure mid-save leaves the previous checkpoint intact and never a partial file under a final name.
`.pdopt` also records the iteration and a hash of its `.pdparams`, so that a pair torn by a crash between
the two renames fails loudly on resume instead of mixing two saves.
"""
import hashlib
import os
import pickle

import numpy as np

from ..fsutil import write_files_atomically

META_KEY = "@meta"
URL_PREFIXES = ("http://", "https://", "ftp://", "s3://", "hdfs://")


class WeightsError(ValueError):
    pass


def _read_scope(scope, names):
    return {n: np.array(scope.find_var(n).get_tensor()) for n in names}


def save_checkpoint(prefix, scope, param_names, opt_names=(), meta=None):
    """Save the named scope tensors as `prefix.pdparams` + `prefix.pdopt`; returns `prefix`."""
    params = pickle.dumps(_read_scope(scope, param_names), protocol=4)
    opt = _read_scope(scope, opt_names)
    opt[META_KEY] = {**(meta or {}), "params_sha1": hashlib.sha1(params).hexdigest()}
    write_files_atomically({prefix + ".pdopt": pickle.dumps(opt, protocol=4), prefix + ".pdparams": params})
    return prefix


def resolve_weights(path):
    """A prefix or `.pdparams` path -> the `.pdparams` file; URLs are refused at once (no downloads here)."""
    if str(path).startswith(URL_PREFIXES):
        raise WeightsError(f"weights '{path}' is a URL: ppprune does not download files. Fetch it yourself and "
                           "pass the local path, e.g. -o pretrain_weights=/path/to/model.pdparams")
    candidates = [path] if str(path).endswith(".pdparams") else [path + ".pdparams", os.path.join(path, "model_final.pdparams")]
    for c in candidates:
        if os.path.isfile(c):
            return c
    raise WeightsError(f"no weights at '{path}' (looked for {', '.join(candidates)})")


def _read(path):
    """(raw bytes, {name: array}) of a checkpoint file; anything else is a WeightsError naming the file."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        arrays = pickle.loads(data)
    except Exception as e:  # noqa: BLE001 - truncated or foreign files raise many types (EOF, Unpickling, ...)
        raise WeightsError(f"{path} is not a readable checkpoint ({e.__class__.__name__}: it is truncated or not a "
                           "pickle); point -o weights= at a complete .pdparams file, e.g. re-copy or re-save it") from None
    if not isinstance(arrays, dict) or not all(isinstance(k, str) for k in arrays):
        raise WeightsError(f"{path} holds a pickled {type(arrays).__name__}, not a {{name: array}} checkpoint; "
                           "point -o weights= at a .pdparams file saved by ppprune or PaddleDetection")
    return data, arrays


def read_meta(prefix):
    """The meta saved in `prefix.pdopt` (iteration, plan digest), or {} when there is no .pdopt."""
    if str(prefix).endswith(".pdparams"):
        prefix = prefix[: -len(".pdparams")]
    if os.path.isdir(prefix):
        prefix = os.path.join(prefix, "model_final")
    path = prefix + ".pdopt"
    if not os.path.isfile(path):
        return {}
    meta = _read(path)[1].get(META_KEY, {})
    return meta if isinstance(meta, dict) else {}


def check_plan(prefix, plan):
    """Refuse a checkpoint whose .pdopt records another plan than `plan` (an edited, replaced or missing
    plan.json). Checkpoints recording no plan digest (older ones, copied .pdparams alone) are not checked."""
    saved = read_meta(prefix).get("plan_sha1")
    if saved is None or (plan is not None and saved == plan.digest()):
        return
    what = "is missing" if plan is None else "is not the one it was saved with (edited or replaced)"
    raise WeightsError(f"checkpoint '{prefix}' was pruned by a plan, and the plan.json beside it {what}; restore "
                       "the plan.json written with this checkpoint, or use a checkpoint written with this plan")


def _write_scope(scope, place, arrays, names, source):
    """Copy `arrays[name]` into the scope for each name present; shapes must agree exactly."""
    for name in names:
        if name not in arrays:
            continue
        tensor = scope.find_var(name).get_tensor()
        have, got = tuple(tensor.shape()), tuple(np.shape(arrays[name]))
        if have != got:
            raise WeightsError(
                f"parameter '{name}': {source} has shape {list(got)}, the model has {list(have)}. Fix: load "
                "weights from the same model config (num_classes, anchors, width `scale`, base_channels); if "
                "they were saved after pruning, apply the same --pruned_params/--pruned_ratios before loading.")
        tensor.set(np.asarray(arrays[name]).astype(np.array(tensor).dtype, copy=False), place)


def load_weights(path, scope, place, param_names, partial=False):
    """Load parameters from `path` into `scope`; returns (missing, unused). The file must hold every
    parameter, unless `partial` (pretrain weights, e.g. a backbone trained on ImageNet: the rest keeps its
    initial values, listed), and then at least one. Tensors of the file the model lacks are listed."""
    file = resolve_weights(path)
    arrays = _read(file)[1]
    missing = [n for n in param_names if n not in arrays]
    unused = sorted(set(arrays) - set(param_names))
    if missing and (not partial or len(missing) == len(param_names)):
        cover = "none" if len(missing) == len(param_names) else f"{len(param_names) - len(missing)}"
        raise WeightsError(
            f"{file} holds {cover} of the model's {len(param_names)} parameters (missing: {', '.join(missing[:3])}"
            f"{' ...' if len(missing) > 3 else ''}; the file has {', '.join(unused[:3]) or 'nothing else'}"
            f"{' ...' if len(unused) > 3 else ''}): give weights of this config's model"
            + ("" if partial else ", or -o pretrain_weights= for weights that cover part of it (e.g. a backbone)"))
    _write_scope(scope, place, arrays, param_names, file)
    print(f"loaded {len(param_names) - len(missing)}/{len(param_names)} parameters from {file}")
    if missing:
        print(f"  {len(missing)} kept their initial values (not in the file): {', '.join(missing[:8])}"
              + (" ..." if len(missing) > 8 else ""))
    if unused:
        print(f"  {len(unused)} tensors in the file are not in the model: {', '.join(unused[:8])}"
              + (" ..." if len(unused) > 8 else ""))
    return missing, unused


def load_start_weights(cfg, scope, place, param_names, what):
    """Load the weights a run starts from: `weights` must cover the model, `pretrain_weights` may cover part
    of it (see `load_weights`). Neither is allowed, as in PaddleDetection (`what` starts from random
    parameters), and said in one line. Returns the path loaded, or None."""
    path = cfg.get("weights") or cfg.get("pretrain_weights")
    if not path:
        print(f"no weights given (-o weights= or pretrain_weights=): {what} starts from randomly initialised parameters")
        return None
    load_weights(path, scope, place, param_names, partial=not cfg.get("weights"))
    return path


def load_checkpoint(prefix, scope, place, param_names, opt_names):
    """Restore parameters and optimizer state for resuming, strictly; returns the saved meta (e.g. 'iter')."""
    if str(prefix).endswith(".pdparams"):
        prefix = prefix[: -len(".pdparams")]
    params_file, opt_file = resolve_weights(prefix), prefix + ".pdopt"
    if not os.path.isfile(opt_file):
        raise WeightsError(f"cannot resume from '{prefix}': {opt_file} is missing (optimizer state); "
                           "use -o weights=... to start a new run from these parameters instead")
    raw, params = _read(params_file)
    opt = _read(opt_file)[1]
    meta = opt.pop(META_KEY, {})
    if meta.get("params_sha1") != hashlib.sha1(raw).hexdigest():
        raise WeightsError(f"{params_file} and {opt_file} come from different saves; resume from another checkpoint")
    for arrays, names, file in ((params, param_names, params_file), (opt, opt_names, opt_file)):
        absent = [n for n in names if n not in arrays]
        if absent:
            raise WeightsError(f"cannot resume: {file} lacks {', '.join(absent[:8])}; was it saved from another model?")
        _write_scope(scope, place, arrays, names, file)
    return meta
