"""Shared fixtures; the repository paths live in ``support``."""

from __future__ import annotations

from pathlib import Path

import pytest

from support import REPO


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO
