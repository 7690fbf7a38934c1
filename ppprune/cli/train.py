"""Train a detection model in static mode.

    python tools/train.py -c configs/yolov3/yolov3_mobilenet_v1_demo.yml [--eval] [-r CKPT] [-o key=value ...]

Outputs go to `<save_dir>/<config name>/`: `<iter>.pdparams/.pdopt` snapshots, `model_final`, `best_model`
(with --eval) and the resolved `config.yml`.
"""
import os

from . import driver, flags, paths, runner


def parse_args(argv=None):
    p = flags.parser(__doc__)
    flags.add_train_flags(p)
    return p.parse_args(argv)


def run(argv=None):
    """Train; returns the best eval result (None without --eval) and the output folder."""
    args = parse_args(argv)
    from ..config import dump_config, load_config
    from ..engine import distributed, load_checkpoint
    from ..engine.checkpoint import load_start_weights
    from ..engine.trainer import check_train_keys

    cfg = load_config(args.config, args.opt)
    check_train_keys(cfg)
    weights = None if args.resume_checkpoint else cfg.get("weights") or cfg.get("pretrain_weights")
    out = paths.output_dir(args, paths.save_dir(cfg, args.config), inputs=[weights],
                           own_inputs=[args.resume_checkpoint])

    programs, place, exe, scope = driver.setup(cfg, "train", parallel=True)
    start_iter = 0
    if args.resume_checkpoint:
        start_iter = load_checkpoint(args.resume_checkpoint, scope, place, programs.param_names, programs.opt_names)["iter"]
        print(f"resumed from {args.resume_checkpoint} at iteration {start_iter}")
    else:
        load_start_weights(cfg, scope, place, programs.param_names, "training", programs.head_names)
    distributed.broadcast_scope(scope, programs.param_names + programs.opt_names, place)
    data = driver.loaders(cfg, args.eval)

    if distributed.is_main():  # everything is validated: from here on rank 0 writes
        out.open()
        dump_config(cfg, os.path.join(out.path, "config.yml"))
    best = driver.train(cfg, programs, exe, scope, out.path, start_iter, data)
    return {"best": best, "save_dir": out.path}


main = runner.exit_zero(run)
