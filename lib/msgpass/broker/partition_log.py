"""A partition's log: ordered segments, dense offsets, durability and retention.

A partition is the unit of ordering. Every record appended to it gets the
next offset (0, 1, 2, ... with no gaps), and a reader that asks for offset
``n`` gets the record that was appended ``n``-th, for as long as retention
keeps it. Records in different partitions have no order relative to each
other.

Durability is chosen per log:

- ``Durability.MEMORY`` keeps segments in ``bytearray`` objects. It is fast
  and loses everything when the process ends, cleanly or not.
- ``Durability.FSYNC`` writes segment files and calls ``fsync`` once per
  appended batch, before ``append`` returns. The broker acknowledges a
  produce request only after that, so an acknowledged record survives
  ``kill -9`` of the broker and, as far as the disk honours ``fsync``, a power
  loss. One fsync per batch rather than per record is what makes this
  affordable: a batch of 1000 records costs one disk flush.

Retention deletes whole segments, oldest first, but never the active one:
by total size (``retention_bytes``) and by age (``retention_age_s``, judged by
the newest record in the segment). The log's start offset moves forward when
a segment is deleted, and reads below it return nothing.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .records import Record, encode_records
from .segments import SEGMENT_SUFFIX, Segment

__all__ = ["Durability", "NewRecord", "PartitionLog", "DEFAULT_SEGMENT_BYTES"]

log = logging.getLogger(__name__)

DEFAULT_SEGMENT_BYTES = 1024 * 1024  # roll to a new segment after 1 MiB


class Durability(enum.StrEnum):
    """How far an acknowledged record is protected: in process memory, or fsynced to disk."""

    MEMORY = "memory"
    FSYNC = "fsync"


@dataclass(frozen=True)
class NewRecord:
    """A record a producer asks to append; the log assigns its offset and timestamp."""

    value: bytes
    key: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


class PartitionLog:
    """The ordered, append-only log of one partition.

    ``directory`` holds the segment files (it is created if missing) and must
    be None for ``Durability.MEMORY``. Opening a directory that already holds
    segments recovers them: a torn tail is truncated and the offsets continue
    after the last good record.
    """

    def __init__(
        self,
        directory: Path | None,
        *,
        durability: Durability = Durability.FSYNC,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        retention_bytes: int | None = None,
        retention_age_s: float | None = None,
    ) -> None:
        self.durability = Durability(durability)
        if (directory is None) != (self.durability is Durability.MEMORY):
            raise ValueError(
                f"durability {self.durability.value!r} needs "
                f"{'no directory' if directory is not None else 'a directory'}, got {directory!r}"
            )
        if segment_bytes <= 0:
            raise ValueError(f"segment_bytes must be positive, got {segment_bytes}")
        self.directory = directory
        self.segment_bytes = segment_bytes
        self.retention_bytes = retention_bytes
        self.retention_age_s = retention_age_s
        self.appended_batches = 0
        self.fsyncs = 0
        self._segments: list[Segment] = []
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            self._recover(directory)
        if not self._segments:
            self._segments.append(Segment.create(directory, 0))

    def _recover(self, directory: Path) -> None:
        paths = sorted(directory.glob(f"*{SEGMENT_SUFFIX}"))
        for path in paths:
            segment = Segment.open(path)
            if self._segments and segment.base_offset != self._segments[-1].next_offset:
                # An earlier segment lost its tail, so this one would leave a gap in
                # the offsets. Offsets stay dense: drop it and everything after it.
                log.warning(
                    "partition %s: segment %s starts at %d but the log ends at %d; "
                    "deleting it and later segments",
                    directory,
                    path.name,
                    segment.base_offset,
                    self._segments[-1].next_offset,
                )
                segment.delete()
                for later in paths[paths.index(path) + 1 :]:
                    later.unlink()
                break
            self._segments.append(segment)

    @property
    def start_offset(self) -> int:
        """The oldest offset still stored (it moves up when retention deletes a segment)."""
        return self._segments[0].base_offset

    @property
    def end_offset(self) -> int:
        """The offset the next appended record will get, one past the newest record."""
        return self._segments[-1].next_offset

    @property
    def size_bytes(self) -> int:
        """Bytes of records currently stored in all segments."""
        return sum(segment.size_bytes for segment in self._segments)

    def append(self, batch: Sequence[NewRecord], timestamp_ms: int) -> list[int]:
        """Append a batch of records and return their offsets, after the batch is durable.

        In FSYNC mode the whole batch is written and then fsynced once, so
        when this returns every record of the batch survives a crash. If the
        active segment is full, a new one is started before the batch.
        """
        if not batch:
            return []
        active = self._segments[-1]
        if active.size_bytes >= self.segment_bytes and len(active) > 0:
            active.sync()
            active = Segment.create(self.directory, active.next_offset)
            self._segments.append(active)
        first = active.next_offset
        data, sizes = encode_records(
            first, timestamp_ms, [(record.key, record.value, record.headers) for record in batch]
        )
        active.append(data, sizes, timestamp_ms)
        if self.durability is Durability.FSYNC:
            active.sync()
            self.fsyncs += 1
        self.appended_batches += 1
        return list(range(first, first + len(batch)))

    def read(self, offset: int, max_records: int = 500) -> list[Record]:
        """Return up to ``max_records`` records from ``offset`` on, in offset order.

        An offset below ``start_offset`` reads from ``start_offset``, and one at
        or past ``end_offset`` returns an empty list.
        """
        offset = max(offset, self.start_offset)
        records: list[Record] = []
        for segment in self._segments:
            if len(records) >= max_records:
                break
            if segment.next_offset <= offset:
                continue
            chunk = segment.read(offset, max_records - len(records))
            records.extend(chunk)
            if chunk:
                offset = chunk[-1].offset + 1
        return records

    def read_bytes(self, offset: int, max_records: int = 500) -> tuple[int, int, bytes]:
        """Return (first_offset, count, bytes) of up to ``max_records`` encoded records.

        The records are consecutive from ``first_offset``, which is ``offset``
        or ``start_offset`` if that is higher, and the bytes are the stored
        record layout of ``records``, which a fetch sends to the consumer
        as they are. The bytes may span segments.
        """
        offset = max(offset, self.start_offset)
        first = offset
        chunks: list[bytes] = []
        count = 0
        for segment in self._segments:
            if count >= max_records:
                break
            if segment.next_offset <= offset:
                continue
            read, data = segment.read_bytes(offset, max_records - count)
            if read == 0:
                break
            chunks.append(data)
            count += read
            offset += read
        return first, count, chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def apply_retention(self, now_ms: int) -> int:
        """Delete whole old segments beyond the size or age limit; return how many were deleted.

        The active segment is never deleted, so a partition always keeps its
        newest records and its end offset.
        """
        deleted = 0
        while len(self._segments) > 1:
            oldest = self._segments[0]
            too_big = self.retention_bytes is not None and self.size_bytes > self.retention_bytes
            too_old = (
                self.retention_age_s is not None
                and now_ms - oldest.max_timestamp_ms > self.retention_age_s * 1000
            )
            if not (too_big or too_old):
                break
            log.info("retention: deleting %r", oldest)
            oldest.delete()
            self._segments.pop(0)
            deleted += 1
        return deleted

    def close(self) -> None:
        """Close every segment file."""
        for segment in self._segments:
            segment.close()

    def stats(self) -> dict[str, int]:
        """Offsets, sizes and fsync counts, for display in a notebook."""
        return {
            "start_offset": self.start_offset,
            "end_offset": self.end_offset,
            "segments": len(self._segments),
            "size_bytes": self.size_bytes,
            "appended_batches": self.appended_batches,
            "fsyncs": self.fsyncs,
        }

    def __repr__(self) -> str:
        where = "memory" if self.directory is None else str(self.directory)
        return (
            f"<PartitionLog {where} {self.durability.value}, offsets "
            f"{self.start_offset}..{self.end_offset - 1}, {len(self._segments)} segments>"
        )
