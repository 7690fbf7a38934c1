"""Networks, oracles and tiny configs the tests share; import as `from tests.helpers import nets, oracle`."""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
