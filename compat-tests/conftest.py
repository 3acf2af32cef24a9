"""Fixtures for the compat tests: real clients against real kbroker processes (kbroker.testing.pytest_plugin)."""

pytest_plugins = ["kbroker.testing.pytest_plugin"]
