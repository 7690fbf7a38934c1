"""Train a detection model in static mode.

    python tools/train.py -c configs/yolov3/yolov3_mobilenet_v1_demo.yml [--eval] [-r CKPT] [-o key=value ...]

Outputs go to `<save_dir>/<config name>/`: `<iter>.pdparams/.pdopt` snapshots, `model_final`, `best_model`
(with --eval) and the resolved `config.yml`.
"""
import os

from . import common


def parse_args(argv=None):
    p = common.parser(__doc__)
    common.add_train_flags(p)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import paddle

    from ..config import dump_config, load_config
    from ..engine import build_programs, distributed, load_checkpoint, load_weights

    cfg = load_config(args.config, args.opt)
    paddle.enable_static()
    place = distributed.setup(cfg.get("use_gpu", False))
    save_dir = common.save_dir(cfg, args.config)
    if distributed.is_main():
        dump_config(cfg, os.path.join(save_dir, "config.yml"))

    programs = build_programs(cfg, "train")
    exe, scope = paddle.static.Executor(place), paddle.static.Scope()
    exe.run(programs.startup, scope=scope)
    start_iter = 0
    if args.resume_checkpoint:
        start_iter = load_checkpoint(args.resume_checkpoint, scope, place, programs.param_names, programs.opt_names)["iter"]
        print(f"resumed from {args.resume_checkpoint} at iteration {start_iter}")
    elif cfg.get("weights") or cfg.get("pretrain_weights"):
        load_weights(cfg.get("weights") or cfg["pretrain_weights"], scope, place, programs.param_names)
    distributed.broadcast_scope(scope, programs.param_names + programs.opt_names, place)

    best = common.train(cfg, programs, exe, scope, save_dir, start_iter, args.eval)
    return {"best": best, "save_dir": save_dir}
