"""Fixtures for tests/: the broker and ZooKeeper fixtures of kbroker.testing.pytest_plugin, shared
with compat-tests.

Property tests draw the same examples on every run unless HYPOTHESIS_PROFILE=explore is set:
CI stays deterministic, and a developer who wants new examples asks for them.
"""

import os

from hypothesis import settings

pytest_plugins = ["kbroker.testing.pytest_plugin"]

settings.register_profile("kbroker", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "kbroker"))
