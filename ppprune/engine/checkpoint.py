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
# paddle.save (PaddleDetection's checkpoints) adds this structured-name -> parameter-name table to a state dict
NAME_TABLE_KEY = "StructuredToParameterName@@"
SHAPE_FIX = ("Fix: load weights from the same model config (num_classes, anchors, width and depth); if they were "
             "saved after pruning, apply the same --pruned_params/--pruned_ratios before loading")


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
    arrays.pop(NAME_TABLE_KEY, None)
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
    bad = _wrong_shapes(scope, arrays, names)
    if bad:
        raise WeightsError(f"{source}: {_shape_list(bad, 'the file')}. {SHAPE_FIX}")
    for name in names:
        if name in arrays:
            _set(scope, place, name, arrays[name])


def _set(scope, place, name, array):
    tensor = scope.find_var(name).get_tensor()
    tensor.set(np.asarray(array).astype(np.array(tensor).dtype, copy=False), place)


def _wrong_shapes(scope, arrays, names):
    """[(name, file shape, model shape)] of the names in `arrays` whose shapes differ from the scope's."""
    shapes = ((n, list(np.shape(arrays[n])), list(scope.find_var(n).get_tensor().shape()))
              for n in names if n in arrays)
    return [(n, got, have) for n, got, have in shapes if got != have]


def _shape_list(bad, source):
    few = "; ".join(f"'{n}': {source} has shape {got}, the model has {have}" for n, got, have in bad[:3])
    return f"{len(bad)} parameter(s) of other shapes ({few}{' ...' if len(bad) > 3 else ''})"


def _few(names, n=3):
    return ", ".join(names[:n]) + (" ..." if len(names) > n else "")


def _by_suffix(arrays, param_names):
    """A backbone's own checkpoint names its tensors without the model's prefix (`stem.conv1.conv.weight`
    for `backbone.stem.conv1.conv.weight`): each file key no parameter has is given to the one parameter,
    if exactly one, that ends with `.<key>` and is not in the file itself."""
    names = set(param_names)
    renamed = {}
    for key, value in arrays.items():
        if key not in names:
            owners = [n for n in param_names if n.endswith("." + key) and n not in arrays and n not in renamed]
            if len(owners) == 1:
                key = owners[0]
        renamed[key] = value
    return renamed


def load_weights(path, scope, place, param_names, partial=False, flexible=()):
    """Load parameters from `path` into `scope`; returns (missing, unused). The file must hold exactly the
    model's parameters, unless `partial` (pretrain weights, e.g. a backbone trained on ImageNet, whose keys
    may lack the model's `backbone.` prefix: the rest keeps its initial values, listed), and then at least
    one. Tensors of `flexible` (a detection head for other classes) whose shapes differ keep their initial
    values, listed; any other mismatch is refused, one line naming the first few, before anything is set."""
    file = resolve_weights(path)
    arrays = _read(file)[1]
    if partial:
        arrays = _by_suffix(arrays, param_names)
    missing = [n for n in param_names if n not in arrays]
    unused = sorted(set(arrays) - set(param_names))
    aliases = _second_names(arrays, unused, param_names)
    unused = [k for k in unused if k not in aliases]
    if missing and (not partial or len(missing) == len(param_names)):
        cover = "none" if len(missing) == len(param_names) else f"{len(param_names) - len(missing)}"
        raise WeightsError(
            f"{file} holds {cover} of the model's {len(param_names)} parameters (missing: {_few(missing)}; the file "
            f"has {_few(unused) or 'nothing else'}): give weights of this config's model"
            + ("" if partial else ", or -o pretrain_weights= for weights that cover part of it (e.g. a backbone)"))
    if unused and not partial:
        raise WeightsError(
            f"{file} holds {len(unused)} tensor(s) the model lacks ({_few(unused)}): give weights of this config's "
            "model (same architecture, width and depth), or -o pretrain_weights= to load the tensors that match")
    bad = _wrong_shapes(scope, arrays, param_names)
    kept = [n for n, _, _ in bad if n in set(flexible)]
    bad = [b for b in bad if b[0] not in set(kept)]
    if bad:
        raise WeightsError(
            f"{file}: {_shape_list(bad, 'the file')}. {SHAPE_FIX}; for a head with another class count "
            "(fine-tuning on new classes) add -o ignore_head_shapes=true")
    for name in param_names:
        if name in arrays and name not in kept:
            _set(scope, place, name, arrays[name])
    print(f"loaded {len(param_names) - len(missing) - len(kept)}/{len(param_names)} parameters from {file}")
    if kept:
        print(f"  {len(kept)} head tensors of other shapes kept their initial values (ignore_head_shapes): "
              f"{_few(kept, 8)}")
    if missing:
        print(f"  {len(missing)} kept their initial values (not in the file): {_few(missing, 8)}")
    if unused:
        print(f"  {len(unused)} tensors in the file are not in the model: {_few(unused, 8)}")
    if aliases:
        print(f"  {len(aliases)} tensors in the file are second names of loaded ones: {_few(sorted(aliases), 4)}")
    return missing, unused


def _second_names(arrays, keys, param_names):
    """The `keys` whose array is, value for value, that of a parameter the file also holds: PaddleDetection
    registers some layers twice (PicoHeadV2's `head_cls0` is `head_cls_list.0`), so its state dicts hold
    one tensor under two keys."""
    def kind(k):  # shape and the tensor's own name (weight, bias, _mean, ...)
        return np.shape(arrays[k]), k.rsplit(".", 1)[-1]

    twins = {}
    for n in param_names:
        if n in arrays:
            twins.setdefault(kind(n), []).append(n)
    return {k for k in keys if any(np.array_equal(arrays[k], arrays[n]) for n in twins.get(kind(k), []))}


def load_start_weights(cfg, scope, place, param_names, what, head_names=()):
    """Load the weights a run starts from: `weights` must cover the model, `pretrain_weights` may cover part
    of it (see `load_weights`); with `ignore_head_shapes: true`, the tensors of `head_names` may differ in
    shape (a head for other classes). Neither is allowed, as in PaddleDetection (`what` starts from random
    parameters), and said in one line. Returns the path loaded, or None."""
    path = cfg.get("weights") or cfg.get("pretrain_weights")
    if not path:
        print(f"no weights given (-o weights= or pretrain_weights=): {what} starts from randomly initialised parameters")
        return None
    load_weights(path, scope, place, param_names, partial=not cfg.get("weights"),
                 flexible=head_names if cfg.get("ignore_head_shapes") else ())
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
