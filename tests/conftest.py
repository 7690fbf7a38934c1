import os
import sys

import paddle
import pytest

from tests.helpers import ROOT

paddle.enable_static()


@pytest.fixture(autouse=True)
def _static_mode():
    """Most tests build static programs; a dygraph test switching modes must not leak into the next."""
    paddle.enable_static()
    yield
    paddle.enable_static()


@pytest.fixture
def dygraph():
    """Dygraph mode for one test (modules of dygraph tests use it for all: `pytestmark`)."""
    paddle.disable_static()
    yield
    paddle.enable_static()


@pytest.fixture(scope="session")
def tiny_cli(tmp_path_factory):
    """A tiny config over a tiny generated dataset, and a 'baseline' checkpoint trained by tools/train.py,
    shared by the CLI, bad-input and fault tests."""
    import subprocess

    from tests.helpers import tiny

    tmp = tmp_path_factory.mktemp("cli")
    cfg = tiny.write_config(tmp)
    env = dict(os.environ, PYTHONWARNINGS="ignore", GLOG_minloglevel="2")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train.py"), "-c", str(cfg)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    base = tmp / "out" / "tiny" / "model_final"
    assert os.path.isfile(str(base) + ".pdparams")
    return {"cfg": str(cfg), "base": str(base), "out": tmp / "out", "data": tmp / "demo", "tmp": tmp}


def pytest_collection_modifyitems(items):
    """Modules marked `heavy(seconds)` run first, longest first: with a module per test process, a long
    module started last would leave the other process idle at the end. `make test` passes
    --no-loadscope-reorder so that xdist keeps this order (its default puts modules with more tests first)."""
    def weight(item):
        mark = item.get_closest_marker("heavy")
        return -mark.args[0] if mark else 0

    items.sort(key=weight)  # stable: modules keep their order otherwise
