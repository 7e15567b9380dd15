"""Tests of msgpass.spool with real files and real processes.

Crash tests run ``python -m msgpass.spool`` in a child process with a
``--pause-...`` option, wait for the line it prints at the pause point, and
kill it with SIGKILL there. Nothing waits by sleeping: children report over
a pipe, and every read of that pipe has a deadline.
"""

from __future__ import annotations

import errno
import os
import re
import selectors
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from msgpass.errors import MessagingError, MessagingTimeout
from msgpass.spool import Claimed, Spool, SpoolReader, SpoolWriter

CHILD_TIMEOUT_S = 20.0

# A reader process for the race: prints "ready", waits for "go" on stdin, then
# claims and acknowledges until new/ is empty, printing each id it won.
RACING_READER = """
import sys
from msgpass.spool import Spool, SpoolReader
reader = SpoolReader(Spool(sys.argv[1]), sys.argv[2])
print("ready", flush=True)
sys.stdin.readline()
while (claimed := reader.claim_nowait()) is not None:
    reader.ack(claimed)
    print("claimed", claimed.message_id, flush=True)
print("lost_races", reader.stats().lost_races, flush=True)
"""


def _read_line(process: subprocess.Popen[bytes], timeout_s: float = CHILD_TIMEOUT_S) -> str:
    """Read one line of the child's stdout, failing the test if none arrives in time.

    Reads byte by byte from the unbuffered pipe, so that no later line is
    pulled into a buffer that the next select() cannot see.
    """
    assert process.stdout is not None
    deadline = time.monotonic() + timeout_s
    line = bytearray()
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while not line.endswith(b"\n"):
            remaining_s = deadline - time.monotonic()
            byte = b""
            if remaining_s > 0 and selector.select(remaining_s):
                byte = os.read(process.stdout.fileno(), 1)
            if not byte:
                process.kill()
                process.wait(timeout=CHILD_TIMEOUT_S)
                pytest.fail(
                    f"child {process.args} printed no whole line within {timeout_s} s "
                    f"(got {bytes(line)!r})"
                )
            line += byte
    return line.decode().strip()


def _spawn(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0
    )


def _kill(process: subprocess.Popen[bytes]) -> None:
    process.kill()
    process.wait(timeout=CHILD_TIMEOUT_S)
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            stream.close()


def _locations(spool: Spool) -> dict[str, list[str]]:
    """Map each message id to every place it is visible (new, claimed/<reader>, done)."""
    places: dict[str, list[str]] = {}
    for name in os.listdir(spool.new_dir):
        places.setdefault(name, []).append("new")
    for reader_dir in spool.claimed_dir.iterdir():
        for name in os.listdir(reader_dir):
            places.setdefault(name, []).append(f"claimed/{reader_dir.name}")
    for name in os.listdir(spool.done_dir):
        places.setdefault(name, []).append("done")
    return places


def _age(path: Path, seconds: float) -> None:
    """Set a file's modification time ``seconds`` into the past, instead of waiting."""
    then = time.time() - seconds
    os.utime(path, (then, then))


# ---------------------------------------------------------------------------
# One process
# ---------------------------------------------------------------------------


def test_put_claim_ack(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    writer = SpoolWriter(spool, "w1")
    reader = SpoolReader(spool, "r1")

    message_id = writer.put(b"hello")
    assert spool.new_ids() == [message_id]
    assert os.listdir(spool.tmp_dir) == []

    claimed = reader.claim_nowait()
    assert claimed is not None
    assert claimed.payload == b"hello"
    assert claimed.path == spool.claimed_dir / "r1" / message_id
    assert spool.new_ids() == []

    assert reader.ack(claimed) is True
    assert _locations(spool) == {}
    assert reader.ack(claimed) is False
    assert reader.stats().acked == 1
    assert writer.stats().put == 1


def test_keep_done_moves_to_done(tmp_path: Path) -> None:
    spool = Spool(tmp_path, keep_done=True)
    message_id = SpoolWriter(spool, "w1").put(b"x")
    reader = SpoolReader(spool, "r1")
    claimed = reader.wait_claim(timeout_s=1.0)
    assert reader.ack(claimed)
    assert _locations(spool) == {message_id: ["done"]}


def test_fifo_per_writer(tmp_path: Path) -> None:
    spool = Spool(tmp_path, durable=False)
    writer = SpoolWriter(spool, "w1")
    ids = [writer.put(str(n).encode()) for n in range(50)]
    reader = SpoolReader(spool, "r1")
    payloads = []
    while (claimed := reader.claim_nowait()) is not None:
        payloads.append(claimed.payload)
        assert reader.ack(claimed)
    assert payloads == [str(n).encode() for n in range(50)]
    assert ids == sorted(ids)


def test_claim_times_out_on_empty(tmp_path: Path) -> None:
    reader = SpoolReader(Spool(tmp_path), "r1")
    started = time.monotonic()
    assert reader.claim(timeout_s=0.05) is None
    assert time.monotonic() - started >= 0.05
    with pytest.raises(MessagingTimeout, match="r1"):
        reader.wait_claim(timeout_s=0.01)


def test_claim_waits_for_put(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    reader = SpoolReader(spool, "r1")
    writer_thread = threading.Thread(target=SpoolWriter(spool, "w1").put, args=(b"late",))
    writer_thread.start()
    claimed = reader.claim(timeout_s=5.0)
    writer_thread.join(timeout=5.0)
    assert claimed is not None
    assert claimed.payload == b"late"


def test_nack_returns_message(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    message_id = SpoolWriter(spool, "w1").put(b"again")
    first = SpoolReader(spool, "r1")
    claimed = first.wait_claim(timeout_s=1.0)
    assert first.nack(claimed)
    assert spool.new_ids() == [message_id]
    assert first.nack(claimed) is False

    second = SpoolReader(spool, "r2").wait_claim(timeout_s=1.0)
    assert second.payload == b"again"


def test_recover_respects_lease(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    message_id = SpoolWriter(spool, "w1").put(b"slow")
    reader = SpoolReader(spool, "r1")
    claimed = reader.wait_claim(timeout_s=1.0)

    assert spool.recover(lease_s=60.0).returned == ()
    _age(claimed.path, 120.0)
    assert reader.renew(claimed)
    assert spool.recover(lease_s=60.0).returned == ()

    _age(claimed.path, 120.0)
    assert spool.recover(lease_s=60.0).returned == (message_id,)
    assert spool.new_ids() == [message_id]
    assert reader.ack(claimed) is False
    assert reader.renew(claimed) is False


def test_recover_removes_stale_tmp_only(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    stale = spool.tmp_dir / "stale"
    fresh = spool.tmp_dir / "fresh"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"being written")
    _age(stale, 7200.0)

    report = spool.recover(lease_s=60.0)
    assert report.removed_tmp == ("stale",)
    assert sorted(os.listdir(spool.tmp_dir)) == ["fresh"]


def test_recover_skips_stray_file(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    (spool.claimed_dir / "not-a-reader").write_bytes(b"x")
    assert spool.recover(lease_s=0.0).returned == ()


def test_invalid_ids_rejected(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    for bad in ("", "a/b", "..", "x" * 65, "has space"):
        with pytest.raises(ValueError, match="invalid"):
            SpoolWriter(spool, bad)
        with pytest.raises(ValueError, match="invalid"):
            SpoolReader(spool, bad)


def test_exdev_becomes_messaging_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spool = Spool(tmp_path)
    writer = SpoolWriter(spool, "w1")

    def cross_device_rename(source: object, target: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "rename", cross_device_rename)
    with pytest.raises(MessagingError, match="EXDEV"):
        writer.put(b"x")


def test_other_file_system_rejected(tmp_path: Path) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs /dev/shm on a file system other than the test's tmp_path")
    elsewhere = shm / f"spool-test-{os.getpid()}"
    elsewhere.mkdir()
    try:
        (tmp_path / "claimed").symlink_to(elsewhere)
        with pytest.raises(MessagingError, match="another file system"):
            Spool(tmp_path)
    finally:
        elsewhere.rmdir()


def test_repr_and_stats_show_state(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    SpoolWriter(spool, "w1").put(b"a")
    SpoolWriter(spool, "w2").put(b"b")
    reader = SpoolReader(spool, "r1")
    reader.wait_claim(timeout_s=1.0)
    stats = spool.stats()
    assert (stats.new, stats.claimed, stats.tmp, stats.done) == (1, {"r1": 1}, 0, 0)
    assert "new=1" in repr(spool)
    assert "claimed=1" in repr(reader)


def test_threads_claim_each_once(tmp_path: Path) -> None:
    spool = Spool(tmp_path, durable=False)
    writer = SpoolWriter(spool, "w1")
    ids = {writer.put(b"%d" % n) for n in range(400)}
    readers = [SpoolReader(spool, f"r{n}") for n in range(4)]
    won: dict[str, list[str]] = {reader.reader_id: [] for reader in readers}
    start = threading.Barrier(len(readers), timeout=5.0)

    def drain(reader: SpoolReader) -> None:
        start.wait()
        while (claimed := reader.claim_nowait()) is not None:
            won[reader.reader_id].append(claimed.message_id)
            reader.ack(claimed)

    threads = [threading.Thread(target=drain, args=(reader,)) for reader in readers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30.0)
    all_won = [message_id for ids_won in won.values() for message_id in ids_won]
    assert len(all_won) == len(set(all_won)), "a message was claimed twice"
    assert set(all_won) == ids
    assert _locations(spool) == {}


# ---------------------------------------------------------------------------
# Real processes, and SIGKILL at the dangerous moments
# ---------------------------------------------------------------------------


def test_processes_claim_each_once(tmp_path: Path) -> None:
    spool = Spool(tmp_path, durable=False)
    writer = SpoolWriter(spool, "w1")
    ids = {writer.put(b"%d" % n) for n in range(600)}
    children = [_spawn("-c", RACING_READER, str(tmp_path), f"p{n}") for n in range(4)]
    try:
        for child in children:
            assert _read_line(child) == "ready"
        for child in children:  # all are ready, so "go" starts them together
            assert child.stdin is not None
            child.stdin.write(b"go\n")
        outputs = [child.communicate(timeout=CHILD_TIMEOUT_S)[0].decode() for child in children]
    finally:
        for child in children:
            _kill(child)

    won = [line.split()[1] for out in outputs for line in out.splitlines() if "claimed" in line]
    assert len(won) == len(set(won)), "a message was claimed by two processes"
    assert set(won) == ids
    assert _locations(spool) == {}
    assert all(child.returncode == 0 for child in children)


def test_writer_killed_before_rename(tmp_path: Path) -> None:
    child = _spawn("-m", "msgpass.spool", str(tmp_path), "put", "w1", "a", "b", "c",
                   "--pause-before-rename")  # fmt: skip
    try:
        lines = [_read_line(child) for _ in range(3)]
        assert lines[0].startswith("put ")
        assert lines[1].startswith("put ")
        assert lines[2].startswith("paused ")
    finally:
        _kill(child)
    torn_id = lines[2].split()[1]

    spool = Spool(tmp_path)
    assert spool.new_ids() == [lines[0].split()[1], lines[1].split()[1]]
    assert os.listdir(spool.tmp_dir) == [torn_id]
    reader = SpoolReader(spool, "r1")
    payloads = []
    while (claimed := reader.claim_nowait()) is not None:
        payloads.append(claimed.payload)
        reader.ack(claimed)
    assert payloads == [b"a", b"b"]

    assert spool.recover(lease_s=60.0).removed_tmp == ()  # still fresh: may be a live writer
    assert spool.recover(lease_s=60.0, stale_tmp_s=0.0).removed_tmp == (torn_id,)
    assert _locations(spool) == {}
    assert os.listdir(spool.tmp_dir) == []


def test_reader_killed_after_claim(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    writer = SpoolWriter(spool, "w1")
    ids = [writer.put(payload) for payload in (b"a", b"b", b"c")]
    child = _spawn("-m", "msgpass.spool", str(tmp_path), "claim", "doomed", "--count", "2",
                   "--pause-after-claim")  # fmt: skip
    try:
        assert _read_line(child) == f"claimed {ids[0]} a"
        assert _read_line(child) == f"paused {ids[1]}"
    finally:
        _kill(child)

    assert _locations(spool) == {ids[1]: ["claimed/doomed"], ids[2]: ["new"]}
    assert spool.recover(lease_s=3600.0).returned == ()
    assert spool.recover(lease_s=0.0).returned == (ids[1],)
    assert _locations(spool) == {ids[1]: ["new"], ids[2]: ["new"]}

    heir = SpoolReader(spool, "heir")
    first = heir.wait_claim(timeout_s=1.0)
    assert (first.message_id, first.payload) == (ids[1], b"b")


# ---------------------------------------------------------------------------
# Interleavings of puts, claims, acks, nacks and recovery, in one process
# ---------------------------------------------------------------------------


class SpoolMachine(RuleBasedStateMachine):
    """Every message that was put and not acknowledged is in exactly one place."""

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(os.environ["SPOOL_MACHINE_ROOT"]) / f"run{id(self)}-{time.time_ns()}"
        self.spool = Spool(self.root, durable=False)
        self.writer = SpoolWriter(self.spool, "w1")
        self.readers = [SpoolReader(self.spool, f"r{n}") for n in range(3)]
        self.held: list[Claimed] = []
        self.put_ids: set[str] = set()
        self.acked_ids: list[str] = []

    @rule()
    def put(self) -> None:
        self.put_ids.add(self.writer.put(b"m"))

    @rule(reader=st.integers(0, 2))
    def claim(self, reader: int) -> None:
        claimed = self.readers[reader].claim_nowait()
        if claimed is None:
            assert self.spool.new_ids() == []
        else:
            self.held.append(claimed)

    @rule(index=st.integers(0, 20), ack=st.booleans())
    def finish(self, index: int, ack: bool) -> None:
        if not self.held:
            return
        claimed = self.held.pop(index % len(self.held))
        reader = self.readers[int(claimed.reader_id[1:])]
        if ack:
            if reader.ack(claimed):
                self.acked_ids.append(claimed.message_id)
        else:
            reader.nack(claimed)

    @rule()
    def recover(self) -> None:
        self.spool.recover(lease_s=0.0)

    @invariant()
    def each_message_in_one_place(self) -> None:
        places = _locations(self.spool)
        assert len(self.acked_ids) == len(set(self.acked_ids)), "a message was acked twice"
        assert set(places) == self.put_ids - set(self.acked_ids)
        for message_id, where in places.items():
            assert len(where) == 1, f"{message_id} is visible in {where}"
        assert os.listdir(self.spool.tmp_dir) == []


def test_interleavings_keep_one_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPOOL_MACHINE_ROOT", str(tmp_path))
    SpoolMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=30,
                                              deadline=None)  # fmt: skip
    SpoolMachine.TestCase().runTest()


# -- invalid roots --------------------------------------------------------


def test_root_that_is_file(tmp_path: Path) -> None:
    root = tmp_path / "spool.txt"
    root.write_text("not a spool")
    with pytest.raises(MessagingError) as caught:
        Spool(root)
    message = str(caught.value)
    assert f"spool root {root} is a file, not a directory" in message
    assert str(root / "tmp") not in message
    assert root.read_text() == "not a spool"


def test_root_inside_file(tmp_path: Path) -> None:
    file = tmp_path / "spool.txt"
    file.write_text("not a spool")
    with pytest.raises(MessagingError, match=re.escape(f"because {file} is a file, not")):
        Spool(file / "inbox")


def test_root_with_file_for_subdirectory(tmp_path: Path) -> None:
    (tmp_path / "new").write_text("in the way")
    with pytest.raises(MessagingError, match="contains a file named 'new'"):
        Spool(tmp_path)


def test_empty_root_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="empty path"):
        Spool("")
    assert list(tmp_path.iterdir()) == []
