"""Fixtures for the compat tests: real clients against real kbroker processes (see support/fixtures.py)."""

from support.fixtures import *  # noqa: F403
