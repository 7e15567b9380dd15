"""Each lab runs twice in one kernel and leaves no thread, child process or socket behind.

A learner re-runs cells all the time. A lab that leaves a port bound or a
thread running fails the second time, or slowly fills the kernel with
leftovers. This test runs every lab top to bottom twice in the same kernel,
with a probe cell before the first run and after each run. The probe
compares the kernel's threads, child processes and inet sockets with the
snapshot taken before the lab started.
"""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from support import LABS

pytestmark = pytest.mark.slow

CELL_TIMEOUT_S = 180

SNAPSHOT = """\
import gc as _probe_gc, threading as _probe_threading, psutil as _probe_psutil
_probe_process = _probe_psutil.Process()
def _probe_state():
    _probe_gc.collect()
    # pyzmq starts GarbageCollectorThread the first time the kernel sends a large
    # output without copying it; that thread belongs to the kernel, not to the lab.
    threads = {
        t.ident: t.name
        for t in _probe_threading.enumerate()
        if type(t).__name__ != "GarbageCollectorThread"
    }
    children = {p.pid: " ".join(p.cmdline()[:3]) for p in _probe_process.children(recursive=True)}
    sockets = sorted(
        f"{c.type.name} {c.laddr} -> {c.raddr or '-'} {c.status}"
        for c in _probe_process.net_connections(kind="inet")
    )
    return threads, children, sockets
_probe_before = _probe_state()
"""

CHECK = """\
import time as _probe_time
_probe_deadline = _probe_time.monotonic() + 5.0
while True:
    _probe_after = _probe_state()
    _probe_threads = {i: n for i, n in _probe_after[0].items() if i not in _probe_before[0]}
    _probe_children = {p: c for p, c in _probe_after[1].items() if p not in _probe_before[1]}
    _probe_sockets = list(_probe_after[2])
    for _probe_socket in _probe_before[2]:
        if _probe_socket in _probe_sockets:
            _probe_sockets.remove(_probe_socket)
    if not (_probe_threads or _probe_children or _probe_sockets):
        break
    if _probe_time.monotonic() > _probe_deadline:
        break
    _probe_time.sleep(0.05)
assert not _probe_threads, f"threads left running after {RUN}: {sorted(_probe_threads.values())}"
assert not _probe_children, f"child processes left after {RUN}: {_probe_children}"
assert not _probe_sockets, f"sockets left open after {RUN}: {_probe_sockets}"
"""


def _code_cell(source: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_code_cell(source)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("lab", LABS, ids=lambda p: p.name)
def test_lab_reruns_without_leaks(lab: Path) -> None:
    original = nbformat.read(lab, as_version=4)
    lab_cells = [cell for cell in original.cells if cell.cell_type == "code"]

    notebook = nbformat.v4.new_notebook(metadata=original.metadata)
    notebook.cells.append(_code_cell(SNAPSHOT))
    for run in ("the first run", "the second run"):
        notebook.cells.extend(nbformat.from_dict(dict(cell)) for cell in lab_cells)
        notebook.cells.append(_code_cell(f"RUN = {run!r}\n" + CHECK))

    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(lab.parent)}},
    )
    started = time.monotonic()
    client.execute()
    elapsed_s = time.monotonic() - started
    print(f"{lab.name}: two runs in {elapsed_s:.1f} s")
