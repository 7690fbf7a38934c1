"""Where a run reads its weights and writes its outputs."""
import os

from .runner import UsageError


def save_dir(cfg, config_path, suffix=""):
    """`<save_dir>/<config name><suffix>`; nothing is created here (see `output_dir`)."""
    name = os.path.splitext(os.path.basename(config_path))[0] + suffix
    return os.path.join(str(cfg.get("save_dir") or "output"), name)


def output_dir(args, path, inputs=(), own_inputs=(), flag="-o save_dir=<another folder>"):
    """The checked (not yet opened) output folder of a run: see `ppprune.outdir.OutputDir`."""
    from ..outdir import OutputDir

    return OutputDir(path, inputs, own_inputs, overwrite=getattr(args, "overwrite", False), flag=flag)


def weights_prefix(cfg, key="weights"):
    path = cfg.get(key)
    if not path:
        raise UsageError(f"no weights to load: pass -o {key}=<checkpoint prefix>, e.g. -o {key}=output/<config>/model_final")
    return path[: -len(".pdparams")] if str(path).endswith(".pdparams") else str(path)
