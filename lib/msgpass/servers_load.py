"""A load client that holds many connections open and measures round-trip latency.

``LoadClient`` opens ``connections`` asyncio connections to a framed
request/reply server on loopback, keeps them all open, and then runs rounds:
in each round every connection sends one small request at the same moment
and times its reply. The result is a ``LoadReport`` with the median (p50)
and 99th percentile (p99) of those round trips.

All requests of a round leave together, so a round trip includes the time a
request waits while the server (and this client, which shares the machine)
works through the other requests of the burst. The p99 therefore grows with
the number of connections even on an idle machine. That is the point of
measuring it, and the reason to read these numbers as "latency under a burst
of N simultaneous requests", not as the latency of one request alone.

``wait_until`` polls a condition with a deadline, for example until a
server reports that all clients are connected.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from .errors import MessagingTimeout, ProtocolError
from .framing import HEADER_BYTES, encode_frame, parse_header

__all__ = ["LoadReport", "LoadClient", "wait_until", "percentile"]

CONNECT_BATCH = 100  # connections opened concurrently; more can overflow a small backlog
POLL_INTERVAL_S = 0.01


@dataclass(frozen=True)
class LoadReport:
    """Round-trip times measured by ``LoadClient.run_rounds``, in seconds."""

    connections: int
    rounds: int
    round_trips: int
    p50_s: float
    p99_s: float
    max_s: float
    duration_s: float

    def summary(self) -> str:
        """Return one line with the percentiles in milliseconds."""
        return (
            f"{self.round_trips} round trips over {self.connections} connections "
            f"({self.rounds} rounds): p50 {self.p50_s * 1000:.2f} ms, "
            f"p99 {self.p99_s * 1000:.2f} ms, max {self.max_s * 1000:.2f} ms"
        )


def percentile(values: list[float], fraction: float) -> float:
    """Return the ``fraction`` quantile of ``values`` (0.5 is the median), interpolated."""
    if not values:
        raise ValueError("percentile of an empty list; measure at least one value first")
    if len(values) == 1:
        return values[0]
    cut_points = statistics.quantiles(values, n=1000, method="inclusive")
    index = round(fraction * 1000) - 1
    if index < 0:
        return min(values)
    if index >= len(cut_points):
        return max(values)
    return cut_points[index]


async def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``condition()`` until it is true; raise ``MessagingTimeout`` after ``timeout_s``.

    ``what`` describes the condition for the error message ("1000 connections open").
    """
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise MessagingTimeout(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(POLL_INTERVAL_S)


class LoadClient:
    """Hold ``connections`` connections to ``127.0.0.1:port`` and time request rounds.

    Use it as an async context manager, so every socket is closed even when
    a round fails::

        async with LoadClient(server.port, connections=1000) as client:
            report = await client.run_rounds(rounds=5)
        print(report.summary())

    Raises ``MessagingTimeout`` when connecting or a round takes longer than
    ``timeout_s``, and ``ProtocolError`` when a reply differs from the echo
    of its request.
    """

    def __init__(
        self,
        port: int,
        *,
        connections: int,
        payload_bytes: int = 32,
        host: str = "127.0.0.1",
        timeout_s: float = 20.0,
    ) -> None:
        self.port = port
        self.host = host
        self.connection_count = connections
        self.payload_bytes = payload_bytes
        self.timeout_s = timeout_s
        self._streams: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    @property
    def connections_open(self) -> int:
        """Connections this client has opened and not yet closed."""
        return len(self._streams)

    async def connect(self) -> None:
        """Open every connection, ``CONNECT_BATCH`` at a time.

        On failure the connections opened so far stay open: call ``close()``.
        """
        try:
            async with asyncio.timeout(self.timeout_s):
                await self._connect_batches()
        except TimeoutError as error:
            raise MessagingTimeout(
                f"opened {len(self._streams)} of {self.connection_count} connections "
                f"to {self.host}:{self.port} in {self.timeout_s} s"
            ) from error

    async def _connect_batches(self) -> None:
        while len(self._streams) < self.connection_count:
            batch = min(CONNECT_BATCH, self.connection_count - len(self._streams))
            opened = await asyncio.gather(
                *(asyncio.open_connection(self.host, self.port) for _ in range(batch)),
                return_exceptions=True,
            )
            errors = [item for item in opened if isinstance(item, BaseException)]
            self._streams.extend(item for item in opened if not isinstance(item, BaseException))
            if errors:
                raise errors[0]

    async def run_rounds(self, rounds: int) -> LoadReport:
        """Send one request on every connection per round; return the round-trip percentiles."""
        round_trips: list[float] = []
        started = time.perf_counter()
        for round_number in range(rounds):
            payload = round_number.to_bytes(4, "big") * (self.payload_bytes // 4 + 1)
            payload = payload[: self.payload_bytes]
            try:
                async with asyncio.timeout(self.timeout_s):
                    round_trips += await asyncio.gather(
                        *(
                            self._round_trip(reader, writer, payload)
                            for reader, writer in self._streams
                        )
                    )
            except TimeoutError as error:
                raise MessagingTimeout(
                    f"round {round_number} over {len(self._streams)} connections took "
                    f"longer than {self.timeout_s} s"
                ) from error
        return LoadReport(
            connections=len(self._streams),
            rounds=rounds,
            round_trips=len(round_trips),
            p50_s=percentile(round_trips, 0.5),
            p99_s=percentile(round_trips, 0.99),
            max_s=max(round_trips),
            duration_s=time.perf_counter() - started,
        )

    @staticmethod
    async def _round_trip(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, payload: bytes
    ) -> float:
        sent_at = time.perf_counter()
        writer.write(encode_frame(payload))
        await writer.drain()
        length = parse_header(await reader.readexactly(HEADER_BYTES))
        reply = await reader.readexactly(length)
        elapsed_s = time.perf_counter() - sent_at
        if reply != payload:
            raise ProtocolError(f"reply of {len(reply)} bytes differs from the request")
        return elapsed_s

    async def close(self) -> None:
        """Close every connection and wait until the sockets are closed."""
        streams, self._streams = self._streams, []
        for _, writer in streams:
            writer.close()
        results = await asyncio.gather(
            *(writer.wait_closed() for _, writer in streams), return_exceptions=True
        )
        failures = [item for item in results if isinstance(item, Exception)]
        if failures and not all(isinstance(item, OSError) for item in failures):
            raise failures[0]

    async def __aenter__(self) -> LoadClient:
        try:
            await self.connect()
        except BaseException:
            await self.close()  # the connections opened before the failure
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<LoadClient to port {self.port}, {self.connections_open} connections open>"
