"""Paths shared by the tests: the repository root and its labs.

Tests import these from here, not from ``conftest``: pytest loads every
``conftest.py`` under the same module name, so ``from conftest import ...``
picks up whichever one was imported first (``tests/crash/conftest.py`` has
none of these names).
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LABS = sorted((REPO / "labs").glob("*.ipynb"))
