"""Train a detection model in static mode.

    python tools/train.py -c configs/yolov3/yolov3_mobilenet_v1_demo.yml [--eval] [-r CKPT] [-o key=value ...]

Outputs go to `<save_dir>/<config name>/`: `<iter>.pdparams/.pdopt` snapshots, `model_final`, `best_model`
(with --eval) and the resolved `config.yml`.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

import paddle  # noqa: E402

from ppprune.config import dump_config, load_config  # noqa: E402
from ppprune.engine import build_programs, fit, get_place, load_checkpoint, load_weights  # noqa: E402
from ppprune.engine.evaluators import build_evaluator  # noqa: E402
from ppprune.engine.readers import build_reader  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", required=True, help="YAML config file")
    p.add_argument("-o", "--opt", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override config entries, e.g. -o max_iters=100 LearningRate.base_lr=0.01")
    p.add_argument("--eval", action="store_true", help="evaluate at every snapshot and keep best_model")
    p.add_argument("-r", "--resume_checkpoint", default=None, help="checkpoint prefix to resume from")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.opt)
    paddle.enable_static()
    place = get_place(cfg.get("use_gpu", False))
    save_dir = os.path.join(cfg.get("save_dir", "output"), os.path.splitext(os.path.basename(args.config))[0])
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


if __name__ == "__main__":
    main()
