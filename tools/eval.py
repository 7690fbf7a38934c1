"""Evaluate a (pruned) model: see `python tools/eval.py --help`."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from ppprune.cli import runner, eval as evaluate  # noqa: E402

if __name__ == "__main__":
    sys.exit(runner.run(evaluate.main))
