"""Fixtures for the relay's in-process tests (the helpers live in relay_fixtures.py)."""

from relay_fixtures import relay  # noqa: F401  (re-exported as a fixture)
