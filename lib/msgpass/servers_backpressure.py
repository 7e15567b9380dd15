"""Measure an asyncio writer's send buffer while a slow reader drains the other end.

``StreamWriter.write()`` never waits: bytes the kernel cannot take at once
go into the transport's write buffer. Only ``await writer.drain()`` waits,
and only while that buffer is above the transport's high-water mark. So the
difference between a writer that respects backpressure and one that does not
shows up as the size of that buffer when the reader is slower than the writer.

``write_to_slow_reader(write_all, messages)`` sets up exactly that on
loopback. It connects a writer socket to a reader socket, both with small
kernel buffers so that the kernel cannot hide the backlog. It then runs
``await write_all(writer, messages)`` while the reader takes
``read_chunk_bytes`` every ``read_interval_s``, then sends end-of-file and
waits until the reader has received everything. The ``WriteBufferTrace`` it
returns holds the buffer size after every ``write()`` call (its maximum is
exact, because only ``write()`` makes the buffer grow), periodic samples over
time for a plot, and whether the reader got every byte in order.

The reader paces itself with ``asyncio.sleep``. That sets its rate and is not
a wait for an event, so the run takes about
``total_bytes / read_chunk_bytes * read_interval_s`` seconds or a little more.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .errors import MessagingTimeout

__all__ = ["WriteBufferTrace", "RecordingWriter", "write_to_slow_reader"]

KERNEL_BUFFER_BYTES = 8 * 1024  # SO_SNDBUF and SO_RCVBUF asked for; Linux doubles the value
SAMPLE_INTERVAL_S = 0.002


@dataclass(frozen=True)
class WriteBufferTrace:
    """What happened to the write buffer during one ``write_to_slow_reader`` run."""

    high_water_bytes: int
    low_water_bytes: int
    largest_message_bytes: int
    max_buffer_bytes: int  # the largest buffer size seen right after a write()
    buffer_after_writes: tuple[int, ...]  # one entry per write() call
    samples: tuple[tuple[float, int], ...]  # (seconds since start, buffer bytes)
    bytes_written: int
    bytes_delivered: int
    delivered_in_order: bool
    duration_s: float

    def summary(self) -> str:
        """Return one line with the peak buffer and what was delivered."""
        return (
            f"peak write buffer {self.max_buffer_bytes / 1024:.1f} KiB "
            f"(high-water mark {self.high_water_bytes / 1024:.0f} KiB), "
            f"{self.bytes_delivered / 1024:.0f} of {self.bytes_written / 1024:.0f} KiB "
            f"delivered{' in order' if self.delivered_in_order else ', NOT in order'}, "
            f"{self.duration_s:.2f} s"
        )


class RecordingWriter:
    """A ``StreamWriter`` stand-in that records the buffer size after every write.

    It forwards ``write``, ``writelines``, ``drain``, ``transport``,
    ``get_extra_info``, ``is_closing``, ``close`` and ``wait_closed`` to the
    real writer, so code written against ``asyncio.StreamWriter`` runs unchanged.
    """

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self.buffer_after_writes: list[int] = []
        self.bytes_written = 0
        self.written = hashlib.sha256()

    @property
    def transport(self) -> asyncio.WriteTransport:
        """The real transport, for ``get_write_buffer_size()`` and its limits."""
        return self._writer.transport

    def write(self, data: bytes) -> None:
        """Write like ``StreamWriter.write`` and record the buffer size afterwards."""
        self._writer.write(data)
        self.bytes_written += len(data)
        self.written.update(data)
        self.buffer_after_writes.append(self._writer.transport.get_write_buffer_size())

    def writelines(self, data: Iterable[bytes]) -> None:
        """Write each item of ``data`` with ``write``."""
        for item in data:
            self.write(item)

    async def drain(self) -> None:
        """Wait like ``StreamWriter.drain``: until the buffer is at or below the low-water mark."""
        await self._writer.drain()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """Return transport information, as ``StreamWriter.get_extra_info`` does."""
        return self._writer.get_extra_info(name, default)

    def is_closing(self) -> bool:
        """True once the writer is closing or closed."""
        return self._writer.is_closing()

    def close(self) -> None:
        """Close the writer; bytes already buffered are still sent."""
        self._writer.close()

    async def wait_closed(self) -> None:
        """Wait until the connection is closed."""
        await self._writer.wait_closed()


async def _read_slowly(conn: socket.socket, chunk_bytes: int, interval_s: float) -> tuple[int, str]:
    """Read until the peer sends end-of-file; return (bytes received, their sha256)."""
    loop = asyncio.get_running_loop()
    digest = hashlib.sha256()
    received = 0
    while data := await loop.sock_recv(conn, chunk_bytes):
        received += len(data)
        digest.update(data)
        await asyncio.sleep(interval_s)
    return received, digest.hexdigest()


async def _sample(writer: RecordingWriter, started: float, out: list[tuple[float, int]]) -> None:
    while True:
        out.append((time.perf_counter() - started, writer.transport.get_write_buffer_size()))
        await asyncio.sleep(SAMPLE_INTERVAL_S)


async def write_to_slow_reader(
    write_all: Callable[[Any, list[bytes]], Awaitable[None]],
    messages: list[bytes],
    *,
    high_water_bytes: int = 16 * 1024,
    read_chunk_bytes: int = 4096,
    read_interval_s: float = 0.001,
    timeout_s: float = 20.0,
    expected: bytes | None = None,
) -> WriteBufferTrace:
    """Run ``await write_all(writer, messages)`` against a slow loopback reader.

    The writer's transport gets ``high_water_bytes`` and a low-water mark of
    a quarter of it. ``write_all`` is given a ``RecordingWriter``. Raises
    ``MessagingTimeout`` when writing and reading together take longer than
    ``timeout_s``. The reader expects ``expected``, by default the messages
    joined. Every socket is closed before it returns or raises.
    """
    loop = asyncio.get_running_loop()
    if expected is None:
        expected = b"".join(messages)
    low_water_bytes = high_water_bytes // 4
    with contextlib.ExitStack() as sockets:
        listener = sockets.enter_context(socket.socket())
        # Set before listen(), so the accepted socket starts with the small buffer.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, KERNEL_BUFFER_BYTES)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.setblocking(False)
        client = sockets.enter_context(socket.socket())
        client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, KERNEL_BUFFER_BYTES)
        client.setblocking(False)
        accepting = asyncio.ensure_future(loop.sock_accept(listener))
        await asyncio.wait_for(loop.sock_connect(client, listener.getsockname()), timeout_s)
        conn, _ = await asyncio.wait_for(accepting, timeout_s)
        sockets.enter_context(conn)
        conn.setblocking(False)

        _, stream_writer = await asyncio.open_connection(sock=client)
        stream_writer.transport.set_write_buffer_limits(high=high_water_bytes, low=low_water_bytes)
        writer = RecordingWriter(stream_writer)
        started = time.perf_counter()
        samples: list[tuple[float, int]] = []
        sampler = asyncio.create_task(_sample(writer, started, samples))
        reader = asyncio.create_task(_read_slowly(conn, read_chunk_bytes, read_interval_s))
        try:
            async with asyncio.timeout(timeout_s):
                await write_all(writer, messages)
                # End-of-file after whatever is buffered tells the reader the stream is complete.
                if not stream_writer.is_closing():
                    stream_writer.write_eof()
                received, digest = await reader
        except TimeoutError as error:
            raise MessagingTimeout(
                f"writing {len(expected)} bytes to a slow reader took longer than {timeout_s} s"
            ) from error
        finally:
            for task in (sampler, reader):
                task.cancel()
            await asyncio.gather(sampler, reader, return_exceptions=True)
            # Everything was delivered, unless the run failed: then drop what is left.
            stream_writer.transport.abort()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(stream_writer.wait_closed(), 1.0)
    duration_s = time.perf_counter() - started
    return WriteBufferTrace(
        high_water_bytes=high_water_bytes,
        low_water_bytes=low_water_bytes,
        largest_message_bytes=max((len(m) for m in messages), default=0),
        max_buffer_bytes=max(writer.buffer_after_writes, default=0),
        buffer_after_writes=tuple(writer.buffer_after_writes),
        samples=tuple(samples),
        bytes_written=writer.bytes_written,
        bytes_delivered=received,
        delivered_in_order=digest == hashlib.sha256(expected).hexdigest(),
        duration_s=duration_s,
    )
