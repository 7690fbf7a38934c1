"""The main job end to end on generated data: see `python tools/demo.py --help`."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # run from a checkout
os.chdir(ROOT)  # the demo config's data and output paths are relative to the repo

from ppprune.cli import runner, demo  # noqa: E402

if __name__ == "__main__":
    sys.exit(runner.run(demo.main))
