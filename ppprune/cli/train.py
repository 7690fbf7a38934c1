"""Train a detection model in static mode.

    python tools/train.py -c configs/yolov3/yolov3_mobilenet_v1_demo.yml [--eval] [-r CKPT] [-o key=value ...]

Outputs go to `<save_dir>/<config name>/`: `<iter>.pdparams/.pdopt` snapshots, `model_final`, `best_model`
(with --eval) and the resolved `config.yml`.
"""
import os
import time

from . import common


def parse_args(argv=None):
    p = common.parser(__doc__)
    common.add_train_flags(p)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import paddle

    from ..config import dump_config, load_config
    from ..engine import build_programs, fit, get_place, load_checkpoint, load_weights
    from ..engine.evaluators import build_evaluator
    from ..engine.readers import build_reader

    cfg = load_config(args.config, args.opt)
    paddle.enable_static()
    place = get_place(cfg.get("use_gpu", False))
    save_dir = common.save_dir(cfg, args.config)
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

    _, train_loader = build_reader(cfg, "TrainReader")
    eval_loader = evaluator = None
    if args.eval:
        eval_set, eval_loader = build_reader(cfg, "EvalReader")
        evaluator = build_evaluator(cfg, eval_set)

    tic = time.time()
    best = fit(programs, exe, scope, train_loader, save_dir, cfg["max_iters"], cfg["snapshot_iter"],
               start_iter=start_iter, eval_loader=eval_loader, evaluator=evaluator)
    print(f"training done in {(time.time() - tic) / 60:.1f} min; checkpoints in {save_dir}")
    if best is not None:
        print(f"best {evaluator.key}: {best[evaluator.key]:.4f}\n{best.get('per_class', '')}")
    return {"best": best, "save_dir": save_dir}
