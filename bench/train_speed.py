"""Training throughput, 1 process against N data-parallel ranks (`paddle.distributed.launch`, gloo on CPU).

Runs `tools/train.py` on the demo config (YOLOv3-MobileNetV1 x0.25, 192-256 px multi-scale) for a few
iterations per setting and reads the `throughput:` line the trainer prints (images/s of all ranks over
the iterations after the first). Run: `python bench/train_speed.py [--iters 20] [--ranks 2]`.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "yolov3", "yolov3_mobilenet_v1_demo.yml")


def run(ranks, batch_size, iters, out):
    tool = [os.path.join(ROOT, "tools", "train.py"), "-c", CONFIG, "-o", f"max_iters={iters}",
            f"snapshot_iter={iters}", f"TrainReader.batch_size={batch_size}", f"save_dir={out}"]
    launch = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", str(ranks),
              "--log_dir", os.path.join(out, "log")] if ranks > 1 else [sys.executable]
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONWARNINGS="ignore", GLOG_minloglevel="2")
    proc = subprocess.run(launch + tool, capture_output=True, text=True, env=env, cwd=ROOT)
    text = proc.stdout + proc.stderr
    if ranks > 1 and os.path.exists(os.path.join(out, "log", "workerlog.0")):
        text += open(os.path.join(out, "log", "workerlog.0")).read()
    found = re.search(r"throughput: ([\d.]+) images/s", text)
    if proc.returncode or not found:
        raise SystemExit(f"run with {ranks} rank(s) failed:\n{text[-3000:]}")
    return float(found.group(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--batch_size", type=int, default=16, help="per rank")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as out:
        rows = [(1, args.batch_size), (args.ranks, args.batch_size), (args.ranks, args.batch_size // args.ranks)]
        for ranks, bs in rows:
            speed = run(ranks, bs, args.iters, os.path.join(out, f"{ranks}x{bs}"))
            print(f"{ranks} process(es) x batch {bs} (global {ranks * bs}): {speed:.1f} images/s")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
