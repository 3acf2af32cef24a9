"""Fixtures for tests/: the same broker and ZooKeeper fixtures as compat-tests (support/fixtures.py).

Property tests draw the same examples on every run unless HYPOTHESIS_PROFILE=explore is set:
CI stays deterministic, and a developer who wants new examples asks for them.
"""

import os
import sys
from pathlib import Path

from hypothesis import settings

# compat-tests/ is not a package (its name has a dash), so its support code is found by path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "compat-tests"))

from support.fixtures import *  # noqa: E402, F403

settings.register_profile("kbroker", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "kbroker"))
