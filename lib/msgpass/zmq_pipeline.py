"""PUSH/PULL on ZeroMQ: a ventilator, a pool of workers and a sink.

A PUSH socket hands each message to exactly one of its connected peers, in
turn (round robin). A PULL socket takes messages from all its peers, fairly
queued. Chained, they make a pipeline that spreads work over workers without
a broker:

    ventilator (PUSH) --> worker 0..N-1 (PULL ... PUSH) --> sink (PULL)

Who binds and who connects decides whether the distribution is fair from the
first message. A PUSH socket only rotates over the peers it already has. A
socket that calls ``connect()`` creates its queue to that peer at once, before
TCP has even connected, while a socket that binds learns of a peer only when
the peer's connection arrives. Hintjens' guide lets the ventilator bind and
the workers connect, so workers can come and go, but then the first tasks go
to whichever worker connected first (the slow joiner again). Here each
worker binds its PULL socket and the ventilator connects to all of them, so
round robin includes every worker from the first task. The workers connect
to the sink, which binds, and since their queues exist from ``connect()`` on,
no result is lost.

Wire format: a task is ``[task_id, payload]``; a result is ``[worker name,
task_id, status, payload]`` with status ``b"ok"`` or ``b"error"`` (the
exception's text). A task id is ``b"<run>.<index>"`` in ASCII, so a late
result of an earlier run that timed out is recognised and skipped.

Shutdown: each worker thread polls with a timeout and checks a stop event,
so ``stop()`` ends and joins all of them with a timeout, then closes the
ventilator and the sink with linger 0.

Left out on purpose: workers that join or leave while tasks run, and
credit-based flow control (a worker requests a task when it is free, which
ROUTER/DEALER can do).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import zmq

from .errors import EndpointClosed, MessagingTimeout, ProtocolError
from .zmq_common import (
    JOIN_TIMEOUT_S,
    LOOPBACK_ANY_PORT,
    POLL_INTERVAL_MS,
    ZmqContext,
    ZmqSocket,
    bind,
    connect,
    open_socket,
    translate_zmq_error,
)

__all__ = [
    "PipelineResult",
    "Pipeline",
]

log = logging.getLogger(__name__)

STATUS_OK = b"ok"
STATUS_ERROR = b"error"

_pipeline_numbers = itertools.count(1)


@dataclass(frozen=True)
class PipelineResult:
    """The outcome of one ``Pipeline.run``: results by task index and tasks per worker."""

    results: dict[int, bytes]
    errors: dict[int, str]
    per_worker: dict[str, int]


def _identity(payload: bytes) -> bytes:
    return payload


class Pipeline:
    """A ventilator, ``workers`` worker threads and a sink, all on loopback TCP.

    ``work(payload) -> bytes`` runs in the worker threads. If it raises, the
    task's result is an error and the worker goes on with the next task.

        with Pipeline(workers=3, work=bytes.upper) as pipeline:
            result = pipeline.run([b"a", b"b", b"c"])
            result.results       # {0: b'A', 1: b'B', 2: b'C'}
            result.per_worker    # {'worker-0': 1, 'worker-1': 1, 'worker-2': 1}
    """

    def __init__(
        self,
        workers: int = 3,
        work: Callable[[bytes], bytes] = _identity,
        *,
        context: ZmqContext | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.name = f"pipeline-{next(_pipeline_numbers)}"
        self.workers = workers
        self._work = work
        self._owns_context = context is None
        self._context: ZmqContext = context if context is not None else zmq.Context()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._ventilator: ZmqSocket | None = None
        self._sink: ZmqSocket | None = None
        self._state = "new"
        self._lock = threading.Lock()
        self._processed: Counter[str] = Counter()
        self._worker_errors = 0
        self._tasks_sent = 0
        self._results_received = 0
        self._stale_results = 0
        self._run_number = 0

    def start(self) -> None:
        """Bind the sink and every worker, connect the ventilator to the workers, start threads."""
        if self._state != "new":
            raise EndpointClosed(f"{self.name} is {self._state}; create a new one to start again")
        self._state = "running"
        try:
            self._sink = open_socket(self._context, zmq.PULL)
            sink_endpoint = bind(self._sink, LOOPBACK_ANY_PORT)
            self._ventilator = open_socket(self._context, zmq.PUSH)
            for number in range(self.workers):
                self._start_worker(f"worker-{number}", sink_endpoint)
        except BaseException:
            self.stop()
            raise
        log.info("%s: %d workers, sink on %s", self.name, self.workers, sink_endpoint)

    def _start_worker(self, name: str, sink_endpoint: str) -> None:
        assert self._ventilator is not None
        tasks = open_socket(self._context, zmq.PULL)
        results = open_socket(self._context, zmq.PUSH)
        try:
            task_endpoint = bind(tasks, LOOPBACK_ANY_PORT)
            connect(results, sink_endpoint)
            connect(self._ventilator, task_endpoint)
        except BaseException:
            tasks.close(linger=0)
            results.close(linger=0)
            raise
        thread = threading.Thread(
            target=self._run_worker, args=(name, tasks, results),
            name=f"{self.name}-{name}", daemon=True,
        )
        self._threads.append(thread)
        thread.start()

    def _run_worker(self, name: str, tasks: ZmqSocket, results: ZmqSocket) -> None:
        try:
            while not self._stopping.is_set():
                if not tasks.poll(POLL_INTERVAL_MS, zmq.POLLIN):
                    continue
                task_id, payload = tasks.recv_multipart(zmq.NOBLOCK)
                try:
                    status, body = STATUS_OK, self._work(payload)
                except Exception as error:
                    log.exception("%s %s: work failed on task %r", self.name, name, task_id)
                    status, body = STATUS_ERROR, f"{type(error).__name__}: {error}".encode()
                    with self._lock:
                        self._worker_errors += 1
                self._send_result(results, [name.encode("ascii"), task_id, status, body])
                with self._lock:
                    self._processed[name] += 1
        except Exception:
            log.exception("%s %s: worker failed and stopped", self.name, name)
        finally:
            tasks.close(linger=0)
            results.close(linger=0)

    def _send_result(self, results: ZmqSocket, frames: list[bytes]) -> None:
        # Wait for room in the queue a poll interval at a time, so stop() can still end us.
        while not self._stopping.is_set():
            if results.poll(POLL_INTERVAL_MS, zmq.POLLOUT):
                results.send_multipart(frames, zmq.NOBLOCK)
                return

    def run(self, tasks: Sequence[bytes], timeout_s: float = 10.0) -> PipelineResult:
        """Send every task, collect every result, and return them with the per-worker counts.

        Sending and receiving are interleaved in one poll loop, so neither
        side's queue fills up and stalls the other. Raises ``MessagingTimeout``
        when not all results arrived within ``timeout_s`` seconds.
        """
        if self._state == "new":
            self.start()
        if self._state != "running" or self._ventilator is None or self._sink is None:
            raise EndpointClosed(f"{self.name} is {self._state}")
        ventilator, sink = self._ventilator, self._sink
        self._run_number += 1
        prefix = f"{self._run_number}."
        results: dict[int, bytes] = {}
        errors: dict[int, str] = {}
        per_worker: Counter[str] = Counter({f"worker-{n}": 0 for n in range(self.workers)})
        next_task = 0
        deadline = time.monotonic() + timeout_s
        poller = zmq.Poller()
        poller.register(sink, zmq.POLLIN)
        poller.register(ventilator, zmq.POLLOUT)

        try:
            while len(results) + len(errors) < len(tasks):
                remaining_ms = round((deadline - time.monotonic()) * 1000)
                if remaining_ms <= 0:
                    raise MessagingTimeout(
                        f"{self.name}: {len(results) + len(errors)} of {len(tasks)} results "
                        f"arrived within {timeout_s} s; is the work function slow or stuck?"
                    )
                ready = dict(poller.poll(remaining_ms))
                if ready.get(ventilator, 0) & zmq.POLLOUT and next_task < len(tasks):
                    ventilator.send_multipart(
                        [f"{prefix}{next_task}".encode("ascii"), tasks[next_task]], zmq.NOBLOCK
                    )
                    next_task += 1
                    self._tasks_sent += 1
                    if next_task == len(tasks):
                        poller.unregister(ventilator)
                if ready.get(sink, 0) & zmq.POLLIN:
                    self._collect(sink.recv_multipart(zmq.NOBLOCK), results, errors, per_worker)
        except zmq.ZMQError as error:
            raise translate_zmq_error(error, f"{self.name}: run") from error
        return PipelineResult(results, errors, dict(per_worker))

    def _collect(
        self,
        frames: list[bytes],
        results: dict[int, bytes],
        errors: dict[int, str],
        per_worker: Counter[str],
    ) -> None:
        if len(frames) != 4:
            raise ProtocolError(
                f"{self.name}: sink got a result of {len(frames)} frames, expected 4"
            )
        worker, task_id, status, body = frames
        run_text, _, index_text = task_id.decode("ascii").partition(".")
        if int(run_text) != self._run_number:
            self._stale_results += 1
            log.info("%s: skipped a late result of run %s", self.name, run_text)
            return
        index = int(index_text)
        per_worker[worker.decode("ascii")] += 1
        self._results_received += 1
        if status == STATUS_OK:
            results[index] = body
        else:
            errors[index] = body.decode(errors="replace")

    def stop(self, timeout_s: float = JOIN_TIMEOUT_S) -> None:
        """Stop and join the workers (``timeout_s`` each), then close the ventilator and sink.

        Raises ``MessagingTimeout`` if a worker thread is still running; the
        context is then left open, since terminating it would block.
        """
        if self._state == "stopped":
            return
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout_s)
            if thread.is_alive():
                raise MessagingTimeout(f"{thread.name} did not stop within {timeout_s} s")
        for socket in (self._ventilator, self._sink):
            if socket is not None:
                socket.close(linger=0)
        self._ventilator = self._sink = None
        if self._owns_context:
            self._context.term()
        self._state = "stopped"

    def stats(self) -> dict[str, int]:
        """Counters: tasks sent, results received, failed tasks, and tasks done per worker."""
        with self._lock:
            counts = {f"done_by_{name}": count for name, count in sorted(self._processed.items())}
            errors = self._worker_errors
        return {
            "tasks_sent": self._tasks_sent,
            "results_received": self._results_received,
            "stale_results": self._stale_results,
            "worker_errors": errors,
            **counts,
        }

    def __repr__(self) -> str:
        return (
            f"<Pipeline {self.name} {self._state} workers={self.workers} "
            f"tasks_sent={self._tasks_sent} results_received={self._results_received}>"
        )

    def __enter__(self) -> Self:
        if self._state == "new":
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
