"""Crash tests run only when selected with ``-m crash``, because they take about a minute."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "crash" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="crash test: run it with `pytest -m crash tests/crash`")
    for item in items:
        if item.get_closest_marker("crash") is not None:
            item.add_marker(skip)
