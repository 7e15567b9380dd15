"""File-system message passing: a spool directory with atomic rename.

A spool is a directory whose subdirectories are the states of a message, in
the layout the Maildir convention made popular::

    root/tmp/                 files being written; never read by a reader
    root/new/                 complete messages, waiting for a reader
    root/claimed/<reader>/    messages one reader has taken and not yet acknowledged
    root/done/                acknowledged messages, kept only with keep_done=True

A message moves between states by ``os.rename`` and by nothing else. On POSIX
a rename within one file system is atomic: every other process finds the name
in the old directory or in the new one, never in both and never in neither.
That one fact gives the two guarantees this module is about.

- **A reader never sees a partial message.** ``SpoolWriter.put`` writes the
  payload to ``tmp/``, flushes and ``fsync``s the file, renames it into
  ``new/``, and ``fsync``s ``new/``. The file is synced *before* the rename
  so that after a power loss a name in ``new/`` never points to an empty or
  short file: without it, the rename's directory entry may reach the disk
  before the data does (ext4 with delayed allocation allows exactly that).
  The directory is synced *after* the rename so that the rename itself is on
  disk before ``put`` returns, which makes a returned ``put`` an
  acknowledgement that survives a crash. A writer killed before the rename
  leaves only a file in ``tmp/``, which ``recover`` deletes once it is older
  than ``stale_tmp_s``.
- **Exactly one reader wins each message.** ``SpoolReader.claim`` renames
  ``new/<id>`` to ``claimed/<reader>/<id>``. When several readers try the
  same file, one rename succeeds and the others fail with
  ``FileNotFoundError``, because the name is already gone; the losers move on
  to the next file. A reader killed after its claim leaves the message in
  ``claimed/<reader>/``. ``recover(lease_s)`` renames claims older than the
  lease back into ``new/``, so another reader gets the message again. That
  makes delivery at-least-once: a reader that processed a message and died
  before ``ack`` causes a second delivery, so consumers must be idempotent.

Ordering: a message id starts with a zero-padded nanosecond timestamp that is
strictly increasing per ``SpoolWriter``, and readers take the smallest name
first. Messages of one writer are therefore claimed in the order they were
put (FIFO per writer). There is no global order: clocks of different writers
differ, and a writer can stamp a message, be slowed down, and rename it into
``new/`` after a later message of another writer has been claimed.

Rename between two file systems is not atomic: ``rename(2)`` then fails with
``EXDEV`` and ``mv`` falls back to copy-and-delete, which a crash can leave
half done. ``Spool`` therefore checks that all its directories are on one file
system (one ``st_dev``) and raises ``MessagingError`` otherwise.

Left out on purpose: inotify. ``claim`` polls ``new/`` every
``POLL_INTERVAL_S`` seconds until its deadline, which works on every POSIX
system and on network file systems that do not deliver inotify events.

Run ``python -m msgpass.spool --help`` for a small command-line tool. Its
``--pause`` options stop a writer just before its rename, or a reader just
after its claim, so that a lab or a test can kill it with SIGKILL there.
"""

from __future__ import annotations

__all__ = [
    "POLL_INTERVAL_S",
    "DEFAULT_STALE_TMP_S",
    "Claimed",
    "SpoolStats",
    "WriterStats",
    "ReaderStats",
    "RecoveryReport",
    "Spool",
    "SpoolWriter",
    "SpoolReader",
    "main",
]

import argparse
import errno
import logging
import os
import re
import secrets
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import MessagingError, MessagingTimeout

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.005  # how often claim() lists new/ while it waits; 200 listings per second
DEFAULT_STALE_TMP_S = 3600.0  # a tmp/ file this old belongs to a dead writer
_ID_PART = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # writer and reader ids become file names


# ---------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    """A message one reader has claimed: hand it to ``ack`` or ``nack`` when done."""

    message_id: str
    reader_id: str
    path: Path
    payload: bytes


@dataclass(frozen=True)
class SpoolStats:
    """How many files each directory of a spool contains right now."""

    tmp: int
    new: int
    claimed: dict[str, int]
    done: int


@dataclass(frozen=True)
class WriterStats:
    """Counters of one ``SpoolWriter``: messages put and their payload bytes."""

    put: int
    payload_bytes: int


@dataclass(frozen=True)
class ReaderStats:
    """Counters of one ``SpoolReader``; ``lost_races`` counts renames another reader won."""

    claimed: int
    lost_races: int
    acked: int
    nacked: int


@dataclass(frozen=True)
class RecoveryReport:
    """Result of ``recover``: ids of claims returned, names of ``tmp/`` files deleted."""

    returned: tuple[str, ...]
    removed_tmp: tuple[str, ...]


# ---------------------------------------------------------------------------
# The spool
# ---------------------------------------------------------------------------


class Spool:
    """The directories of one spool under ``root``, created if missing.

    With ``durable=True`` (the default) writers and readers ``fsync`` files
    and directories so that a completed ``put``, ``ack`` or ``nack`` survives
    a power loss. ``durable=False`` skips every ``fsync``: faster, and still
    atomic for other processes, but a crash of the machine may lose or revive
    recent messages. With ``keep_done=True``, ``ack`` moves messages to
    ``done/`` instead of deleting them.

    Raises ``MessagingError`` when the directories are not all on one file
    system, because rename between them would not be atomic, and when
    ``root`` is a file or its directories cannot be created. An empty
    ``root`` raises ``ValueError``.
    """

    def __init__(self, root: Path | str, *, durable: bool = True, keep_done: bool = False) -> None:
        if os.fspath(root) == "":
            # Path("") is the current directory, which would silently become the spool.
            raise ValueError("spool root is an empty path; pass a directory path")
        self.root = Path(root)
        self.durable = durable
        self.keep_done = keep_done
        self.tmp_dir = self.root / "tmp"
        self.new_dir = self.root / "new"
        self.claimed_dir = self.root / "claimed"
        self.done_dir = self.root / "done"
        if self.root.exists() and not self.root.is_dir():
            raise MessagingError(
                f"spool root {self.root} is a file, not a directory; pass a directory path"
            )
        for directory in (self.tmp_dir, self.new_dir, self.claimed_dir, self.done_dir):
            self._make_directory(directory)
            self._check_same_file_system(directory)

    def reader_dir(self, reader_id: str) -> Path:
        """Return ``claimed/<reader_id>/``, creating it if missing."""
        directory = self.claimed_dir / _checked_id(reader_id, "reader_id")
        directory.mkdir(exist_ok=True)
        self._check_same_file_system(directory)
        return directory

    def new_ids(self) -> list[str]:
        """Return the ids waiting in ``new/``, in the order readers take them."""
        return sorted(os.listdir(self.new_dir))

    def stats(self) -> SpoolStats:
        """Count the files in each directory (a snapshot, not atomic across directories)."""
        claimed = {
            entry.name: len(os.listdir(entry))
            for entry in sorted(self.claimed_dir.iterdir(), key=lambda path: path.name)
            if entry.is_dir()
        }
        return SpoolStats(
            tmp=len(os.listdir(self.tmp_dir)),
            new=len(os.listdir(self.new_dir)),
            claimed=claimed,
            done=len(os.listdir(self.done_dir)),
        )

    def recover(
        self, lease_s: float, *, stale_tmp_s: float = DEFAULT_STALE_TMP_S
    ) -> RecoveryReport:
        """Return expired claims to ``new/`` and delete stale ``tmp/`` files.

        A claim has expired when its file's modification time, which ``claim``
        and ``renew`` set, is ``lease_s`` seconds old or older. Its reader is
        then presumed dead, so the message goes back to ``new/`` under its
        own name and keeps its place in the order. A live reader that is
        merely slow loses the claim as well, and its later ``ack`` returns
        ``False``: choose a lease longer than the slowest processing, or call
        ``renew``. A ``tmp/`` file ``stale_tmp_s`` seconds old is the remains
        of a writer that died before its rename, and is deleted.

        Safe to run from any process while readers and writers are active:
        every step is a single rename or unlink, and one that finds its file
        gone (because the reader acknowledged it meanwhile) is skipped.
        """
        now = time.time()
        returned: list[str] = []
        for reader_entry in sorted(self.claimed_dir.iterdir(), key=lambda path: path.name):
            if not reader_entry.is_dir():
                log.warning("recover: skipped %s, which is not a reader directory", reader_entry)
                continue
            for path in sorted(reader_entry.iterdir(), key=lambda path: path.name):
                try:
                    expired = now - path.stat().st_mtime >= lease_s
                    if expired:
                        os.rename(path, self.new_dir / path.name)
                except FileNotFoundError:
                    continue  # acknowledged or returned by someone else meanwhile
                if expired:
                    log.info("recover: returned %s of reader %s", path.name, reader_entry.name)
                    returned.append(path.name)
        if returned:
            self.sync_dir(self.new_dir)

        removed: list[str] = []
        for path in sorted(self.tmp_dir.iterdir(), key=lambda path: path.name):
            try:
                if now - path.stat().st_mtime >= stale_tmp_s:
                    path.unlink()
                    removed.append(path.name)
            except FileNotFoundError:
                continue  # its writer finished the rename meanwhile
        if removed:
            log.info("recover: deleted %d stale files in tmp/", len(removed))
        return RecoveryReport(returned=tuple(returned), removed_tmp=tuple(removed))

    def sync_dir(self, directory: Path) -> None:
        """``fsync`` a directory so that renames into and out of it are on disk (if durable)."""
        if not self.durable:
            return
        descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def move(self, source: Path, target: Path) -> None:
        """Rename ``source`` to ``target``; ``EXDEV`` becomes a ``MessagingError``."""
        try:
            os.rename(source, target)
        except OSError as error:
            if error.errno != errno.EXDEV:
                raise
            raise MessagingError(
                f"rename {source} -> {target} failed: the two paths are on different file "
                f"systems (EXDEV), where rename is not atomic; keep the whole spool on one "
                f"file system"
            ) from error

    def _make_directory(self, directory: Path) -> None:
        if directory.exists() and not directory.is_dir():
            raise MessagingError(
                f"spool root {self.root} contains a file named {directory.name!r} where the "
                f"spool keeps a directory; remove that file or pass another directory path"
            )
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except NotADirectoryError as error:
            # mkdir reports the whole path it tried, but the cause is a file further up.
            files = [path for path in self.root.parents if path.exists() and not path.is_dir()]
            cause = f"{files[0]} is a file, not a directory" if files else error.strerror
            raise MessagingError(
                f"spool root {self.root} cannot be created, because {cause}; pass a directory path"
            ) from error
        except OSError as error:
            raise MessagingError(
                f"creating {directory} for spool root {self.root} failed: {error.strerror}; "
                f"pass a directory path that can be created"
            ) from error

    def _check_same_file_system(self, directory: Path) -> None:
        if directory.stat().st_dev != self.root.stat().st_dev:
            raise MessagingError(
                f"{directory} is on another file system than {self.root}, so renaming between "
                f"them is not atomic; keep the whole spool on one file system"
            )

    def __repr__(self) -> str:
        stats = self.stats()
        return (
            f"<Spool {str(self.root)!r} tmp={stats.tmp} new={stats.new} "
            f"claimed={sum(stats.claimed.values())} done={stats.done} durable={self.durable}>"
        )


# ---------------------------------------------------------------------------
# Writer and reader
# ---------------------------------------------------------------------------


class SpoolWriter:
    """Put messages into a spool; ``writer_id`` (letters, digits, ``_``, ``-``) goes in each id.

    One writer object must be used by one thread at a time. Give each
    process its own ``writer_id`` so that ids of different writers differ
    even before their random part.
    """

    def __init__(self, spool: Spool, writer_id: str) -> None:
        self.spool = spool
        self.writer_id = _checked_id(writer_id, "writer_id")
        self._counter = 0
        self._last_stamp_ns = 0
        self._put = 0
        self._payload_bytes = 0

    def put(self, payload: bytes) -> str:
        """Store ``payload`` as a new message and return its id.

        When ``put`` returns, the message is in ``new/`` and, on a durable
        spool, on disk. If the process dies inside ``put``, the message is
        either absent from ``new/`` (a file may be left in ``tmp/``) or whole.
        """
        message_id, tmp_path = self.write_temporary(payload)
        self.publish(message_id, tmp_path)
        return message_id

    def write_temporary(self, payload: bytes) -> tuple[str, Path]:
        """Write ``payload`` to ``tmp/`` and ``fsync`` it: the first half of ``put``.

        Returns the message id and the temporary path for ``publish``. Exposed
        so that a demonstration can stop a writer between the two halves.
        """
        message_id = self._next_id()
        tmp_path = self.spool.tmp_dir / message_id
        # O_EXCL: a name that already exists is a bug in the id scheme, never overwritten.
        descriptor = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with open(descriptor, "wb") as file:
            file.write(payload)
            file.flush()
            if self.spool.durable:
                os.fsync(file.fileno())
        self._payload_bytes += len(payload)
        return message_id, tmp_path

    def publish(self, message_id: str, tmp_path: Path) -> None:
        """Rename a ``write_temporary`` file into ``new/`` and sync: the second half of ``put``."""
        self.spool.move(tmp_path, self.spool.new_dir / message_id)
        self.spool.sync_dir(self.spool.new_dir)
        self._put += 1

    def stats(self) -> WriterStats:
        """Return the number of messages put and their payload bytes."""
        return WriterStats(put=self._put, payload_bytes=self._payload_bytes)

    def _next_id(self) -> str:
        # The stamp never repeats or goes back for this writer, even if the
        # wall clock does, so sorting ids sorts this writer's messages.
        self._last_stamp_ns = max(time.time_ns(), self._last_stamp_ns + 1)
        self._counter += 1
        return (
            f"{self._last_stamp_ns:020d}.{self.writer_id}.{self._counter:06d}."
            f"{secrets.token_hex(4)}"
        )

    def __repr__(self) -> str:
        return f"<SpoolWriter {self.writer_id!r} put={self._put} root={str(self.spool.root)!r}>"


class SpoolReader:
    """Claim, acknowledge and return messages of a spool as reader ``reader_id``.

    Several readers, in threads or processes, may share one spool: each
    message is claimed by exactly one of them until it is acknowledged or
    returned. Each reader needs its own ``reader_id``, because its claims
    live in ``claimed/<reader_id>/``.
    """

    def __init__(self, spool: Spool, reader_id: str) -> None:
        self.spool = spool
        self.reader_id = _checked_id(reader_id, "reader_id")
        self.directory = spool.reader_dir(reader_id)
        self._claimed = 0
        self._lost_races = 0
        self._acked = 0
        self._nacked = 0

    def claim_nowait(self) -> Claimed | None:
        """Claim the oldest waiting message, or return ``None`` if ``new/`` is empty."""
        for message_id in self.spool.new_ids():
            target = self.directory / message_id
            try:
                self.spool.move(self.spool.new_dir / message_id, target)
            except FileNotFoundError:
                self._lost_races += 1  # another reader renamed it first
                continue
            # The claim's age, which recover() reads, starts now. A reader that
            # dies before this line leaves the write time, which is older, so
            # the claim only expires sooner.
            os.utime(target)
            self._claimed += 1
            return Claimed(
                message_id=message_id,
                reader_id=self.reader_id,
                path=target,
                payload=target.read_bytes(),
            )
        return None

    def claim(self, timeout_s: float) -> Claimed | None:
        """Claim the oldest waiting message, polling ``new/`` for up to ``timeout_s`` seconds.

        Returns ``None`` when nothing arrived in time. Polls every
        ``POLL_INTERVAL_S`` seconds, so a message put while the reader waits
        is claimed at most that much later.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            claimed = self.claim_nowait()
            if claimed is not None:
                return claimed
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                return None
            time.sleep(min(POLL_INTERVAL_S, remaining_s))

    def wait_claim(self, timeout_s: float) -> Claimed:
        """Like ``claim``, but raise ``MessagingTimeout`` instead of returning ``None``."""
        claimed = self.claim(timeout_s)
        if claimed is None:
            raise MessagingTimeout(
                f"reader {self.reader_id!r} found no message in {self.spool.new_dir} "
                f"within {timeout_s} s"
            )
        return claimed

    def ack(self, claimed: Claimed) -> bool:
        """Mark a claimed message as processed: delete it, or move it to ``done/``.

        Returns ``False`` when the claim was no longer there: it was
        acknowledged already, or ``recover`` returned it to ``new/`` after its
        lease ran out, so it will be delivered again.
        """
        try:
            if self.spool.keep_done:
                self.spool.move(claimed.path, self.spool.done_dir / claimed.message_id)
                self.spool.sync_dir(self.spool.done_dir)
            else:
                claimed.path.unlink()
        except FileNotFoundError:
            return False
        self.spool.sync_dir(claimed.path.parent)
        self._acked += 1
        return True

    def nack(self, claimed: Claimed) -> bool:
        """Return a claimed message to ``new/`` for any reader to claim again.

        Returns ``False`` when the claim was no longer there (see ``ack``).
        """
        try:
            self.spool.move(claimed.path, self.spool.new_dir / claimed.message_id)
        except FileNotFoundError:
            return False
        self.spool.sync_dir(self.spool.new_dir)
        self._nacked += 1
        return True

    def renew(self, claimed: Claimed) -> bool:
        """Restart the lease of a claim that takes long to process; ``False`` if it was lost."""
        try:
            os.utime(claimed.path)
        except FileNotFoundError:
            return False
        return True

    def recover(
        self, lease_s: float, *, stale_tmp_s: float = DEFAULT_STALE_TMP_S
    ) -> RecoveryReport:
        """Run ``Spool.recover`` on this reader's spool (any reader may recover for all)."""
        return self.spool.recover(lease_s, stale_tmp_s=stale_tmp_s)

    def stats(self) -> ReaderStats:
        """Return this reader's counts of claims, lost races, acks and nacks."""
        return ReaderStats(
            claimed=self._claimed,
            lost_races=self._lost_races,
            acked=self._acked,
            nacked=self._nacked,
        )

    def __repr__(self) -> str:
        return (
            f"<SpoolReader {self.reader_id!r} claimed={self._claimed} acked={self._acked} "
            f"lost_races={self._lost_races} root={str(self.spool.root)!r}>"
        )


def _checked_id(value: str, what: str) -> str:
    if not _ID_PART.match(value):
        raise ValueError(
            f"{what} {value!r} is invalid: use 1 to 64 letters, digits, '_' or '-', "
            f"because it becomes part of a file name"
        )
    return value


# ---------------------------------------------------------------------------
# Command-line tool, used by the lab and the tests to crash a writer or reader
# ---------------------------------------------------------------------------


def _pause(line: str) -> None:
    """Print ``line`` and wait until stdin closes; a caller may SIGKILL the process meanwhile."""
    print(line, flush=True)
    sys.stdin.read()


def main(argv: Sequence[str] | None = None) -> int:
    """Put or claim messages from the command line; see ``--help``."""
    parser = argparse.ArgumentParser(prog="python -m msgpass.spool", description=main.__doc__)
    parser.add_argument("root", type=Path, help="spool directory (created if missing)")
    commands = parser.add_subparsers(dest="command", required=True)
    put = commands.add_parser("put", help="put messages, one per PAYLOAD")
    put.add_argument("writer_id")
    put.add_argument("payloads", nargs="+", metavar="PAYLOAD", help="UTF-8 text")
    put.add_argument(
        "--pause-before-rename",
        action="store_true",
        help="write the last payload to tmp/, print 'paused <id>' and wait for stdin to close "
        "without renaming it",
    )
    claim = commands.add_parser("claim", help="claim, print and acknowledge messages")
    claim.add_argument("reader_id")
    claim.add_argument("--count", type=int, default=1, help="messages to claim (default 1)")
    claim.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for each")
    claim.add_argument(
        "--pause-after-claim",
        action="store_true",
        help="after the last claim, print 'paused <id>' and wait for stdin to close "
        "without acknowledging it",
    )
    args = parser.parse_args(argv)

    spool = Spool(args.root)
    if args.command == "put":
        writer = SpoolWriter(spool, args.writer_id)
        last = len(args.payloads) - 1
        for index, text in enumerate(args.payloads):
            if index == last and args.pause_before_rename:
                message_id, _ = writer.write_temporary(text.encode())
                _pause(f"paused {message_id}")
                return 3  # stdin closed without a kill: leave the message in tmp/
            print(f"put {writer.put(text.encode())}", flush=True)
        return 0

    reader = SpoolReader(spool, args.reader_id)
    for index in range(args.count):
        claimed = reader.claim(args.timeout)
        if claimed is None:
            print("timeout", flush=True)
            return 1
        if index == args.count - 1 and args.pause_after_claim:
            _pause(f"paused {claimed.message_id}")
            return 3  # stdin closed without a kill: leave the claim for recover()
        reader.ack(claimed)
        text = claimed.payload.decode(errors="replace")
        print(f"claimed {claimed.message_id} {text}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
