import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

import paddle  # noqa: E402

paddle.enable_static()
