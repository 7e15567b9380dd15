"""The library type-checks under mypy --strict and passes ruff."""

from __future__ import annotations

import subprocess
import sys

from support import REPO


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *command], cwd=REPO, capture_output=True, text=True, timeout=300
    )


def test_mypy_strict_on_library() -> None:
    result = _run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_on_library_tests_and_benchmarks() -> None:
    result = _run("ruff", "check", "lib", "tests", "benchmarks")
    assert result.returncode == 0, result.stdout + result.stderr
