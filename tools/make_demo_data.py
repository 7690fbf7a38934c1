"""Generate (or reuse) the demo VOC dataset: `python tools/make_demo_data.py --out dataset/demo_voc`."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from ppprune.cli import flags, runner  # noqa: E402
from ppprune.data.demo import DEFAULTS, ensure_demo_voc  # noqa: E402


def run(argv=None):
    """Write (or reuse) the dataset; returns its summary."""
    p = flags.OneLineParser(description=__doc__)
    p.add_argument("--out", default="dataset/demo_voc", help="output directory (default: %(default)s)")
    p.add_argument("--num_train", type=int, default=DEFAULTS["num_train"])
    p.add_argument("--num_val", type=int, default=DEFAULTS["num_val"])
    p.add_argument("--size", type=int, default=DEFAULTS["image_size"], help="image side in pixels")
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    p.add_argument("--source", default=DEFAULTS["source"], choices=["auto", "fashion_mnist", "digits"],
                   help="object source; auto = Fashion-MNIST if installed, else scikit-learn digits")
    p.add_argument("--force", action="store_true", help="regenerate even if matching data exists")
    args = p.parse_args(argv)
    start = time.time()
    s = ensure_demo_voc(args.out, force=args.force, num_train=args.num_train, num_val=args.num_val,
                        image_size=args.size, seed=args.seed, source=args.source)
    verb = "reused existing" if s["reused"] else f"wrote in {time.time() - start:.1f}s"
    print(f"{verb} demo VOC dataset at {s['root']} ({s['params']['source']}, {s['params']['image_size']}px, "
          f"seed {s['params']['seed']})")
    print(f"classes: {', '.join(s['class_names'])}")
    for split in ("train", "val"):
        info = s[split]
        objs = ", ".join(f"{k} {v}" for k, v in info["objects"].items())
        print(f"{split}.txt: {info['images']} images; objects: {objs}; difficult: {info['difficult']}")
    return s


main = runner.exit_zero(run)


if __name__ == "__main__":
    sys.exit(runner.run(main))
