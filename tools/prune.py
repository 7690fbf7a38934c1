"""Prune a model: see `python tools/prune.py --help`."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from ppprune.cli import runner, prune  # noqa: E402

if __name__ == "__main__":
    sys.exit(runner.run(prune.main))
