"""Committed notebooks carry no outputs, and every lab is part of the book."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from support import LABS, REPO


def _toc_files() -> set[str]:
    toc = yaml.safe_load((REPO / "_toc.yml").read_text(encoding="utf-8"))
    found: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "file" in node:
                found.add(str(node["file"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    return found


def test_labs_exist() -> None:
    assert len(LABS) >= 5, f"expected at least five labs in labs/, found {[p.name for p in LABS]}"


@pytest.mark.parametrize("notebook", LABS, ids=lambda p: p.name)
def test_notebook_committed_without_outputs(notebook: Path) -> None:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        assert cell.get("outputs") == [], f"{notebook.name} cell {index} has outputs; strip them"
        assert cell.get("execution_count") is None, (
            f"{notebook.name} cell {index} has an execution count; strip outputs before committing"
        )


@pytest.mark.parametrize("notebook", LABS, ids=lambda p: p.name)
def test_notebook_uses_python3_kernel(notebook: Path) -> None:
    metadata = json.loads(notebook.read_text(encoding="utf-8"))["metadata"]
    assert metadata.get("kernelspec", {}).get("name") == "python3"


@pytest.mark.parametrize("notebook", LABS, ids=lambda p: p.name)
def test_lab_embedded_in_toc(notebook: Path) -> None:
    assert f"labs/{notebook.stem}" in _toc_files(), f"{notebook.name} is missing from _toc.yml"


@pytest.mark.parametrize("notebook", LABS, ids=lambda p: p.name)
def test_lab_avoids_asyncio_run(notebook: Path) -> None:
    # The kernel already runs an event loop, so asyncio.run() raises there.
    # Labs use top-level await instead.
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    for index, cell in enumerate(cells):
        if cell["cell_type"] == "code":
            assert "asyncio.run(" not in "".join(cell["source"]), f"{notebook.name} cell {index}"


def test_toc_files_exist() -> None:
    for entry in _toc_files():
        candidates = [REPO / f"{entry}{suffix}" for suffix in (".md", ".ipynb")]
        assert any(path.exists() for path in candidates), (
            f"_toc.yml names {entry}, which does not exist"
        )
