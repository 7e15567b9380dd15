"""Shared test settings: where the repository and its labs are."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LABS = sorted((REPO / "labs").glob("*.ipynb"))


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO
