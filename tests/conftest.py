import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import paddle  # noqa: E402

paddle.enable_static()


@pytest.fixture(autouse=True)
def _static_mode():
    """Most tests build static programs; a dygraph test switching modes must not leak into the next."""
    paddle.enable_static()
    yield
    paddle.enable_static()
