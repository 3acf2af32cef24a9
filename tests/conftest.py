"""Fixtures for tests/: the same broker and ZooKeeper fixtures as compat-tests (support/fixtures.py)."""

import sys
from pathlib import Path

# compat-tests/ is not a package (its name has a dash), so its support code is found by path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "compat-tests"))

from support.fixtures import *  # noqa: E402, F403
