"""The book builds with warnings as errors, and a failing lab fails the build."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support import REPO

pytestmark = pytest.mark.slow

JUPYTER_BOOK = str(Path(sys.executable).with_name("jupyter-book"))
BUILD_TIMEOUT_S = 1800


def _build(source: Path, output: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [JUPYTER_BOOK, "build", str(source), "--path-output", str(output)]
        + ["-W", "-n", "--keep-going"],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
    )


@pytest.mark.timeout(BUILD_TIMEOUT_S)
def test_book_builds_without_warnings(tmp_path: Path) -> None:
    result = _build(REPO, tmp_path)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-6000:]
    html = tmp_path / "_build" / "html"
    for page in ("index.html", "labs/03-tcp-framing.html", "bibliography.html"):
        assert (html / page).exists(), f"{page} missing from the built site"


def test_failing_notebook_fails_build(tmp_path: Path) -> None:
    book = tmp_path / "book"
    book.mkdir()
    shutil.copy(REPO / "_config.yml", book / "_config.yml")
    shutil.copy(REPO / "references.bib", book / "references.bib")
    (book / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: broken\n")
    (book / "intro.md").write_text("# Intro\n\nA page.\n")
    broken = {
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": ["# Broken\n"]},
            {
                "cell_type": "code",
                "execution_count": None,
                "metadata": {},
                "outputs": [],
                "source": ["raise RuntimeError('a lab error must fail the build')"],
            },
        ],
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (book / "broken.ipynb").write_text(json.dumps(broken))
    result = _build(book, tmp_path / "out")
    assert result.returncode != 0, "a notebook that raises must fail the build"
