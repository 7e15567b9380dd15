"""Segment files: the append-only pieces a partition's log is cut into.

A partition does not keep one ever-growing file. It keeps a list of
segments, each named after the offset of its first record
(``00000000000000000042.log`` starts at offset 42). Only the newest segment,
the active one, is appended to. Splitting the log this way makes retention
cheap: old data is dropped by deleting whole files, never by rewriting one.

A segment keeps, in memory, the file position of each of its records, so a
read at offset ``n`` is one ``pread`` of a known byte range. The positions are
rebuilt when a segment is opened, by walking its records. The same walk is the
crash recovery: it stops at the first record whose length or CRC is wrong,
and the file is truncated there (see ``records``).

A segment lives either in a file or, for the in-memory durability mode, in a
``bytearray``. The two behave the same except that the memory one is gone
when the process ends.

This module also holds ``write_file_atomically``, the write-rename-fsync
sequence the broker uses for its small metadata files.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from .records import Record, decode_records

__all__ = ["SEGMENT_SUFFIX", "Segment", "segment_path", "fsync_directory", "write_file_atomically"]

log = logging.getLogger(__name__)

SEGMENT_SUFFIX = ".log"


def segment_path(directory: Path, base_offset: int) -> Path:
    """Return the file name of the segment that starts at ``base_offset``."""
    return directory / f"{base_offset:020d}{SEGMENT_SUFFIX}"


class Segment:
    """One append-only piece of a partition's log, in a file or in memory.

    Open an existing file with ``Segment.open`` (which recovers a torn tail)
    and start a new one with ``Segment.create``. ``path=None`` keeps the
    bytes in memory only.
    """

    def __init__(self, base_offset: int, path: Path | None) -> None:
        self.base_offset = base_offset
        self.path = path
        self._positions: list[int] = []  # file position of each record, by offset - base
        self._size_bytes = 0
        self._memory = bytearray() if path is None else None
        self._fd: int | None = None
        self.max_timestamp_ms = 0  # newest record's timestamp, for retention by age
        self.truncated_bytes = 0  # bytes cut off by recovery when the segment was opened

    @classmethod
    def create(cls, directory: Path | None, base_offset: int) -> Segment:
        """Start a new, empty segment at ``base_offset`` (in memory when ``directory`` is None).

        A new file is made durable by fsyncing its directory, so that the file
        name itself survives a crash.
        """
        if directory is None:
            return cls(base_offset, None)
        segment = cls(base_offset, segment_path(directory, base_offset))
        assert segment.path is not None
        segment._fd = os.open(segment.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        fsync_directory(directory)
        return segment

    @classmethod
    def open(cls, path: Path) -> Segment:
        """Open an existing segment file, truncating any torn tail after its last good record."""
        base_offset = int(path.name.removesuffix(SEGMENT_SUFFIX))
        segment = cls(base_offset, path)
        segment._fd = os.open(path, os.O_RDWR)
        data = path.read_bytes()
        result = decode_records(data, first_offset=base_offset)
        segment._positions = result.positions
        segment._size_bytes = result.valid_bytes
        if result.records:
            segment.max_timestamp_ms = max(r.timestamp_ms for r in result.records)
        if result.valid_bytes < len(data):
            segment.truncated_bytes = len(data) - result.valid_bytes
            log.warning(
                "segment %s: truncating a torn tail of %d bytes after %d good records: %s",
                path,
                segment.truncated_bytes,
                len(result.records),
                result.problem,
            )
            os.ftruncate(segment._fd, result.valid_bytes)
            os.fsync(segment._fd)
        return segment

    @property
    def next_offset(self) -> int:
        """The offset the next record appended here will get."""
        return self.base_offset + len(self._positions)

    @property
    def size_bytes(self) -> int:
        """Bytes of valid records in this segment."""
        return self._size_bytes

    def __len__(self) -> int:
        return len(self._positions)

    def append(self, data: bytes, record_sizes: list[int], max_timestamp_ms: int) -> None:
        """Append already encoded records (``data``, of the given sizes) in one write.

        The caller makes the write durable with ``sync``. A failed write
        leaves at most a torn tail, which the next ``open`` removes.
        """
        if self._memory is not None:
            self._memory += data
        else:
            assert self._fd is not None
            written = os.pwrite(self._fd, data, self._size_bytes)
            if written != len(data):
                raise OSError(f"short write to {self.path}: {written} of {len(data)} bytes")
        position = self._size_bytes
        for size in record_sizes:
            self._positions.append(position)
            position += size
        self._size_bytes = position
        self.max_timestamp_ms = max(self.max_timestamp_ms, max_timestamp_ms)

    def sync(self) -> None:
        """Flush this segment's data to stable storage with ``fsync`` (nothing to do in memory)."""
        if self._fd is not None:
            os.fsync(self._fd)

    def read(self, offset: int, max_records: int) -> list[Record]:
        """Return up to ``max_records`` records starting at ``offset`` within this segment."""
        count, data = self.read_bytes(offset, max_records)
        if count == 0:
            return []
        result = decode_records(data, first_offset=offset)
        if result.problem is not None:
            # The bytes passed their checks when written or recovered, so this is
            # a disk error or another process writing the file.
            raise OSError(
                f"segment {self.path}: record at offset {offset} is damaged: {result.problem}"
            )
        return result.records

    def read_bytes(self, offset: int, max_records: int) -> tuple[int, bytes]:
        """Return (count, bytes) of up to ``max_records`` encoded records from ``offset``.

        The bytes are the records exactly as stored, read with one ``pread``
        (or one slice in memory) and not checked here: the caller that decodes
        them checks each record's CRC.
        """
        index = offset - self.base_offset
        if index < 0 or index >= len(self._positions) or max_records <= 0:
            return 0, b""
        last = min(index + max_records, len(self._positions))
        start = self._positions[index]
        end = self._positions[last] if last < len(self._positions) else self._size_bytes
        if self._memory is not None:
            data = bytes(self._memory[start:end])
        else:
            assert self._fd is not None
            data = os.pread(self._fd, end - start, start)
            if len(data) != end - start:
                raise OSError(f"short read from {self.path}: {len(data)} of {end - start} bytes")
        return last - index, data

    def close(self) -> None:
        """Close the segment's file. Calling it again does nothing."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def delete(self) -> None:
        """Close the segment and remove its file (retention)."""
        self.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            fsync_directory(self.path.parent)
        self._memory = None

    def __repr__(self) -> str:
        where = "memory" if self.path is None else self.path.name
        return (
            f"<Segment {where} offsets {self.base_offset}..{self.next_offset - 1}, "
            f"{self._size_bytes} bytes>"
        )


def fsync_directory(directory: Path) -> None:
    """Fsync a directory, so that file creations, renames and deletions in it are durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file_atomically(path: Path, content: Any, *, durable: bool) -> None:
    """Write ``content`` as JSON to ``path`` so that a reader sees the old file or the new one.

    The data goes to a temporary file in the same directory, which is renamed
    over ``path``. With ``durable=True`` the file is fsynced before the rename
    and the directory after it, so the new content survives a crash once this
    returns.
    """
    temporary = path.with_name(path.name + ".tmp")
    data = json.dumps(content, sort_keys=True).encode("utf-8")
    with open(temporary, "wb") as file:
        file.write(data)
        file.flush()
        if durable:
            os.fsync(file.fileno())
    os.replace(temporary, path)
    if durable:
        fsync_directory(path.parent)
