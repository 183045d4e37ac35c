"""Test-wide hook: lets fixtures see whether their test failed (to print server logs on failure)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Generator[None, Any, Any]:
    """Store each phase's report on the item (``item.rep_call``) so teardown can print server logs on failure."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
