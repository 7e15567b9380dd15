"""The teaching EventLoop and the framed echo service on it, over real loopback sockets."""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from msgpass.errors import ConnectionClosed, FrameTooLarge, MessagingTimeout
from msgpass.framing import encode_frame
from msgpass.styles import eventloop
from msgpass.styles.eventloop import EventLoop, LoopFuture
from msgpass.styles.eventloop_echo import EchoClient, EchoServer

TIMEOUT_S = 10.0


@pytest.fixture
def loop() -> Iterator[EventLoop]:
    with EventLoop() as event_loop:
        yield event_loop


def run_until(loop: EventLoop, condition: Any, timeout_s: float = TIMEOUT_S) -> None:
    """Run loop steps until ``condition()`` holds; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached before the deadline"
        loop.run_once(0.05)


# -- callbacks and timers ---------------------------------------------------------------


def test_call_soon_runs_in_order(loop: EventLoop) -> None:
    calls: list[int] = []
    for index in range(5):
        loop.call_soon(calls.append, index)

    loop.run_once()

    assert calls == [0, 1, 2, 3, 4]


def test_callback_scheduled_by_callback_runs_next_step(loop: EventLoop) -> None:
    calls: list[str] = []

    def first() -> None:
        calls.append("first")
        loop.call_soon(calls.append, "scheduled by first")

    loop.call_soon(first)
    loop.call_soon(calls.append, "second")

    loop.run_once()
    assert calls == ["first", "second"]

    loop.run_once()
    assert calls == ["first", "second", "scheduled by first"]


def test_timers_fire_in_deadline_order(loop: EventLoop) -> None:
    calls: list[str] = []
    loop.call_later(0.03, calls.append, "c")
    loop.call_later(0.01, calls.append, "a")
    loop.call_later(0.02, calls.append, "b")
    loop.call_later(0.01, calls.append, "a2")
    loop.call_later(0.04, loop.stop)

    loop.run_forever()

    assert calls.index("a") < calls.index("b") < calls.index("c")
    assert calls.index("a2") < calls.index("b")


def test_equal_deadlines_keep_schedule_order(loop: EventLoop, monkeypatch: Any) -> None:
    monkeypatch.setattr(eventloop.time, "monotonic", lambda: 100.0)
    calls: list[int] = []
    for index in range(5):
        loop.call_later(0.0, calls.append, index)

    loop.run_once()

    assert calls == [0, 1, 2, 3, 4]


def test_cancelled_timer_does_not_fire(loop: EventLoop) -> None:
    calls: list[str] = []
    cancelled = loop.call_later(0.01, calls.append, "cancelled")
    loop.call_later(0.02, calls.append, "kept")
    loop.call_later(0.03, loop.stop)
    cancelled.cancel()

    assert loop.stats()["timers"] == 2
    loop.run_forever()

    assert calls == ["kept"]
    assert loop.stats()["timers"] == 0


def test_timer_fires_not_before_deadline(loop: EventLoop) -> None:
    fired_at: list[float] = []
    start = time.monotonic()
    loop.call_later(0.05, lambda: fired_at.append(time.monotonic()))

    run_until(loop, lambda: fired_at)

    assert fired_at[0] - start >= 0.05


def test_negative_delay_rejected(loop: EventLoop) -> None:
    with pytest.raises(ValueError, match="delay_s"):
        loop.call_later(-1, print)


def test_stop_from_callback_ends_run_forever(loop: EventLoop) -> None:
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert not loop.is_running()


def test_stop_before_future_done_raises(loop: EventLoop) -> None:
    future: LoopFuture[int] = LoopFuture(loop)
    loop.call_soon(loop.stop)

    with pytest.raises(RuntimeError, match="stop"):
        loop.run_until_complete(future, timeout_s=TIMEOUT_S)
    assert not loop.is_running()


# -- threads, errors and guards ---------------------------------------------------------


def test_call_soon_threadsafe_wakes_blocked_select(loop: EventLoop) -> None:
    calls: list[str] = []
    entered = threading.Event()

    def wake_from_thread() -> None:
        assert entered.wait(TIMEOUT_S)
        loop.call_soon_threadsafe(calls.append, "from thread")

    def mark_entered() -> None:
        entered.set()

    # The next step runs mark_entered, and the step after it blocks in select
    # with nothing scheduled: only the wake-up byte can end that wait early.
    loop.call_soon(mark_entered)
    loop.run_once()
    thread = threading.Thread(target=wake_from_thread)
    thread.start()
    start = time.monotonic()
    while not calls:
        loop.run_once(30.0)
    elapsed_s = time.monotonic() - start
    thread.join(TIMEOUT_S)

    assert calls == ["from thread"]
    assert elapsed_s < 10.0, "select waited for its timeout instead of waking up"


def test_stop_from_other_thread_wakes_loop(loop: EventLoop) -> None:
    started = threading.Event()
    loop.call_soon(started.set)
    stopper = threading.Thread(target=lambda: started.wait(TIMEOUT_S) and loop.stop())
    stopper.start()

    loop.run_forever()
    stopper.join(TIMEOUT_S)

    assert not loop.is_running()


def test_callback_exception_logged_and_loop_continues(
    loop: EventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []

    def failing() -> None:
        raise ZeroDivisionError("bad callback")

    with caplog.at_level(logging.ERROR, logger="msgpass.styles.eventloop"):
        loop.call_soon(failing)
        loop.call_soon(calls.append, "after")
        loop.run_once()

    assert calls == ["after"]
    assert len(caplog.records) == 1
    assert "failing" in caplog.records[0].getMessage()
    assert caplog.records[0].exc_info is not None
    assert isinstance(caplog.records[0].exc_info[1], ZeroDivisionError)
    assert loop.stats()["callback_errors"] == 1


def test_custom_exception_handler_receives_context(loop: EventLoop) -> None:
    contexts: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: contexts.append(context))

    def failing() -> None:
        raise KeyError("x")

    handle = loop.call_soon(failing)
    loop.run_once()

    assert len(contexts) == 1
    assert isinstance(contexts[0]["exception"], KeyError)
    assert contexts[0]["handle"] is handle


def test_failing_exception_handler_is_logged(
    loop: EventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_handler(_loop: EventLoop, _context: dict[str, Any]) -> None:
        raise RuntimeError("handler broke")

    def failing() -> None:
        raise KeyError("x")

    loop.set_exception_handler(broken_handler)
    with caplog.at_level(logging.ERROR, logger="msgpass.styles.eventloop"):
        loop.call_soon(failing)
        loop.run_once()

    messages = [record.getMessage() for record in caplog.records]
    assert any("handler broke" in message for message in messages)
    assert any("failing" in message for message in messages)


def test_run_until_complete_inside_callback_raises(loop: EventLoop) -> None:
    errors: list[BaseException] = []
    inner: LoopFuture[int] = LoopFuture(loop)

    def waits_on_own_loop() -> None:
        try:
            loop.run_until_complete(inner, timeout_s=1)
        except RuntimeError as error:
            errors.append(error)

    loop.call_soon(waits_on_own_loop)
    loop.run_once()

    assert len(errors) == 1
    assert "cannot wait for itself" in str(errors[0])


def test_run_in_loop_thread_on_loop_thread_raises(loop: EventLoop) -> None:
    errors: list[BaseException] = []

    def waits_on_own_loop() -> None:
        try:
            loop.run_in_loop_thread(print, timeout_s=1)
        except RuntimeError as error:
            errors.append(error)

    loop.call_soon(waits_on_own_loop)
    loop.run_once()

    assert len(errors) == 1
    assert "deadlock" in str(errors[0])


def test_run_in_loop_thread_from_other_thread(loop: EventLoop) -> None:
    results: list[Any] = []

    def from_thread() -> None:
        results.append(loop.run_in_loop_thread(threading.get_ident))
        loop.stop()

    thread = threading.Thread(target=from_thread)
    thread.start()
    loop.run_forever()
    thread.join(TIMEOUT_S)

    assert results == [threading.get_ident()]


def test_run_until_complete_returns_result(loop: EventLoop) -> None:
    future: LoopFuture[str] = LoopFuture(loop)
    loop.call_later(0.01, future.set_result, "done")

    assert loop.run_until_complete(future, timeout_s=TIMEOUT_S) == "done"


def test_run_until_complete_raises_exception(loop: EventLoop) -> None:
    future: LoopFuture[str] = LoopFuture(loop)
    loop.call_soon(future.set_exception, KeyError("missing"))

    with pytest.raises(KeyError, match="missing"):
        loop.run_until_complete(future, timeout_s=TIMEOUT_S)


def test_run_until_complete_times_out(loop: EventLoop) -> None:
    future: LoopFuture[str] = LoopFuture(loop)

    with pytest.raises(MessagingTimeout, match="timed out"):
        loop.run_until_complete(future, timeout_s=0.05)
    assert not future.done()


def test_run_until_complete_other_loop_future_rejected(loop: EventLoop) -> None:
    with EventLoop() as other:
        future: LoopFuture[int] = LoopFuture(other)
        with pytest.raises(ValueError, match="another loop"):
            loop.run_until_complete(future)


def test_run_until_complete_concurrent_future(loop: EventLoop) -> None:
    future: concurrent.futures.Future[int] = concurrent.futures.Future()
    release = threading.Event()

    def complete_later() -> None:
        assert release.wait(TIMEOUT_S)
        future.set_result(7)

    thread = threading.Thread(target=complete_later)
    thread.start()
    loop.call_soon(release.set)

    assert loop.run_until_complete(future, timeout_s=TIMEOUT_S) == 7
    thread.join(TIMEOUT_S)


def test_run_in_executor_resolves_on_loop_thread(loop: EventLoop) -> None:
    loop_thread = threading.get_ident()
    seen_in_callback: list[int] = []

    def blocking_work(value: int) -> tuple[int, int]:
        return value * 2, threading.get_ident()

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as executor:
        future = loop.run_in_executor(executor, blocking_work, 21)
        future.add_done_callback(lambda _: seen_in_callback.append(threading.get_ident()))
        value, worker_thread = loop.run_until_complete(future, timeout_s=TIMEOUT_S)
        run_until(loop, lambda: seen_in_callback)

    assert value == 42
    assert worker_thread != loop_thread
    assert seen_in_callback == [loop_thread]


def test_run_in_executor_carries_exception(loop: EventLoop) -> None:
    def failing() -> None:
        raise OSError("disk gone")

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as executor:
        future = loop.run_in_executor(executor, failing)
        with pytest.raises(OSError, match="disk gone"):
            loop.run_until_complete(future, timeout_s=TIMEOUT_S)


def test_run_in_executor_cancel_cancels_queued_work(loop: EventLoop) -> None:
    release = threading.Event()
    ran: list[str] = []

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as executor:
        blocker = executor.submit(release.wait, TIMEOUT_S)
        queued = loop.run_in_executor(executor, ran.append, "queued")
        assert queued.cancel() is True
        loop.run_once()  # runs the done callback that cancels the executor's future
        release.set()
        blocker.result(timeout=TIMEOUT_S)

    assert ran == []
    assert queued.cancelled()


# -- futures ---------------------------------------------------------------------------


def test_loop_future_settles_once(loop: EventLoop) -> None:
    future: LoopFuture[int] = LoopFuture(loop)
    future.set_result(1)

    with pytest.raises(concurrent.futures.InvalidStateError):
        future.set_result(2)
    with pytest.raises(concurrent.futures.InvalidStateError):
        future.set_exception(ValueError())
    assert future.cancel() is False
    assert future.result() == 1


def test_loop_future_pending_result_raises(loop: EventLoop) -> None:
    future: LoopFuture[int] = LoopFuture(loop)
    with pytest.raises(concurrent.futures.InvalidStateError, match="pending"):
        future.result()


def test_loop_future_cancelled_result_raises(loop: EventLoop) -> None:
    future: LoopFuture[int] = LoopFuture(loop)
    assert future.cancel() is True
    with pytest.raises(concurrent.futures.CancelledError):
        future.result()


def test_done_callbacks_run_on_loop_not_inline(loop: EventLoop) -> None:
    future: LoopFuture[int] = LoopFuture(loop)
    calls: list[int] = []
    future.add_done_callback(lambda done: calls.append(done.result()))

    future.set_result(5)
    assert calls == [], "done callbacks must not run inside set_result"

    loop.run_once()
    assert calls == [5]


# -- lifetime and display ---------------------------------------------------------------


def test_close_releases_wakeup_sockets() -> None:
    loop = EventLoop()
    wake_sockets = (loop._wake_reader, loop._wake_writer)

    loop.close()
    loop.close()  # idempotent

    assert all(sock.fileno() == -1 for sock in wake_sockets)
    assert loop.is_closed()
    with pytest.raises(RuntimeError, match="closed"):
        loop.call_soon(print)


def test_close_while_running_raises(loop: EventLoop) -> None:
    errors: list[BaseException] = []

    def close_from_callback() -> None:
        try:
            loop.close()
        except RuntimeError as error:
            errors.append(error)

    loop.call_soon(close_from_callback)
    loop.run_once()

    assert len(errors) == 1
    assert not loop.is_closed()


def test_reader_and_writer_registration(loop: EventLoop) -> None:
    left, right = socket.socketpair()
    with left, right:
        received: list[bytes] = []
        loop.add_reader(left, lambda: received.append(left.recv(100)))
        loop.add_writer(left, print)
        assert loop.stats()["readers"] == 1
        assert loop.stats()["writers"] == 1

        assert loop.remove_writer(left) is True
        assert loop.remove_writer(left) is False
        right.sendall(b"hello")
        run_until(loop, lambda: received)

        assert received == [b"hello"]
        assert loop.remove_reader(left) is True
        assert loop.stats()["readers"] == 0


def test_stats_and_repr(loop: EventLoop) -> None:
    loop.call_soon(print)
    loop.call_later(10, print)

    stats = loop.stats()

    assert stats["ready"] == 1
    assert stats["timers"] == 1
    assert "1 timers" in repr(loop)
    assert "idle" in repr(loop)


# -- the echo service -------------------------------------------------------------------


def test_echo_several_clients(loop: EventLoop) -> None:
    with EchoServer(loop) as server:
        clients = [EchoClient(loop, port=server.port) for _ in range(5)]
        futures = [
            client.request(f"client {index} message {n}".encode())
            for index, client in enumerate(clients)
            for n in range(3)
        ]

        for future in futures:
            loop.run_until_complete(future, timeout_s=TIMEOUT_S)

        expected = [
            f"client {index} message {n}".encode() for index in range(5) for n in range(3)
        ]
        assert [future.result() for future in futures] == expected
        assert server.connections_accepted == 5
        assert server.frames_echoed == 15
        for client in clients:
            client.close()
        run_until(loop, lambda: server.stats()["connections_open"] == 0)


def test_echo_large_payload_with_partial_writes(loop: EventLoop) -> None:
    payload = bytes(range(256)) * (4 * 1024 * 1024 // 256)  # 4 MiB
    # 128 KiB buffers force dozens of partial sends per direction. Smaller ones
    # also stall on delayed ACKs, as EchoServer's docstring explains.
    with EchoServer(loop, send_buffer_bytes=128 * 1024) as server:
        client = EchoClient(loop, port=server.port, send_buffer_bytes=128 * 1024)

        reply = loop.run_until_complete(client.request(payload), timeout_s=TIMEOUT_S)

        assert reply == payload
        assert client.partial_sends > 0
        assert server.stats()["partial_sends"] > 0
        client.close()


def test_echo_server_replies_before_closing_on_eof(loop: EventLoop) -> None:
    with EchoServer(loop) as server, socket.create_connection(
        ("127.0.0.1", server.port), timeout=TIMEOUT_S
    ) as raw:
        raw.sendall(encode_frame(b"one") + encode_frame(b"two"))
        raw.shutdown(socket.SHUT_WR)
        received = bytearray()

        def read_available() -> None:
            chunk = raw.recv(4096)
            received.extend(chunk)
            if not chunk:
                received.extend(b"<eof>")

        # The raw socket is blocking, so it is read only when select reports it ready.
        loop.add_reader(raw, read_available)
        run_until(loop, lambda: received.endswith(b"<eof>"))
        loop.remove_reader(raw)

    assert bytes(received) == encode_frame(b"one") + encode_frame(b"two") + b"<eof>"


def test_echo_oversized_frame_disconnects(
    loop: EventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    with EchoServer(loop, max_frame_bytes=16) as server:
        client = EchoClient(loop, port=server.port)
        future = client.request(b"x" * 100)
        with (
            caplog.at_level(logging.WARNING, logger="msgpass.styles.eventloop_echo"),
            pytest.raises(ConnectionClosed),
        ):
            loop.run_until_complete(future, timeout_s=TIMEOUT_S)

        assert any("above the maximum" in record.getMessage() for record in caplog.records)
        assert server.stats()["connections_open"] == 0


def test_echo_client_rejects_oversized_request(loop: EventLoop) -> None:
    with EchoServer(loop) as server:
        client = EchoClient(loop, port=server.port, max_frame_bytes=8)
        with pytest.raises(FrameTooLarge):
            client.request(b"x" * 9)
        client.close()


def test_echo_client_connection_refused(loop: EventLoop) -> None:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
        client = EchoClient(loop, port=port)  # nothing listens on the bound port
        run_until(loop, lambda: client.closed)

    with pytest.raises(ConnectionClosed, match="refused"):
        loop.run_until_complete(client.request(b"hi"), timeout_s=TIMEOUT_S)


def test_echo_server_close_releases_sockets(loop: EventLoop) -> None:
    server = EchoServer(loop)
    client = EchoClient(loop, port=server.port)
    loop.run_until_complete(client.request(b"hi"), timeout_s=TIMEOUT_S)
    listener = server._listener
    connections = list(server._connections)

    pending = client.request(b"never answered")
    server.close()

    assert listener.fileno() == -1
    assert all(connection.sock.fileno() == -1 for connection in connections)
    with pytest.raises(ConnectionClosed):
        loop.run_until_complete(pending, timeout_s=TIMEOUT_S)
    assert client.closed
    assert client.sock.fileno() == -1
    assert loop.stats()["readers"] == 0
    assert loop.stats()["writers"] == 0


def test_echo_classes_importable_from_eventloop() -> None:
    assert eventloop.EchoServer is EchoServer
    assert eventloop.EchoClient is EchoClient


def test_echo_server_pauses_reading_for_slow_reader(loop: EventLoop) -> None:
    frames = [bytes([index]) * (512 * 1024) for index in range(6)]  # 3 MiB of requests
    outgoing = bytearray(b"".join(encode_frame(frame) for frame in frames))
    # Small kernel buffers on the path back, so the replies pile up in the server's
    # own buffer instead of in the kernel.
    with EchoServer(loop, send_buffer_bytes=128 * 1024) as server, socket.socket() as raw:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        raw.settimeout(TIMEOUT_S)
        raw.connect(("127.0.0.1", server.port))
        raw.setblocking(False)

        def send_some() -> None:
            if not outgoing:
                loop.remove_writer(raw)
                return
            with contextlib.suppress(BlockingIOError):
                sent = raw.send(outgoing)
                del outgoing[:sent]

        def server_paused() -> bool:
            connections = list(server._connections)
            return bool(connections) and not connections[0]._reading

        # The client sends but does not read yet, so the replies pile up in the server.
        loop.add_writer(raw, send_some)
        run_until(loop, server_paused)

        received = bytearray()
        expected = b"".join(encode_frame(frame) for frame in frames)

        def read_some() -> None:
            with contextlib.suppress(BlockingIOError):
                received.extend(raw.recv(1024 * 1024))

        loop.add_reader(raw, read_some)
        run_until(loop, lambda: len(received) >= len(expected))
        loop.remove_reader(raw)
        loop.remove_writer(raw)

    assert bytes(received) == expected
    assert server.frames_echoed == len(frames)


def test_echo_server_stats_include_closed_connections(loop: EventLoop) -> None:
    with EchoServer(loop) as server:
        client = EchoClient(loop, port=server.port)
        loop.run_until_complete(client.request(b"12345"), timeout_s=TIMEOUT_S)
        client.close()
        run_until(loop, lambda: server.stats()["connections_open"] == 0)

        stats = server.stats()

    assert stats["connections_accepted"] == 1
    assert stats["bytes_received"] == len(encode_frame(b"12345"))
    assert stats["bytes_sent"] == len(encode_frame(b"12345"))
    assert "closed" in repr(server)


def test_echo_over_ipv6_loopback(loop: EventLoop) -> None:
    try:
        server = EchoServer(loop, host="::1")
    except OSError as error:
        pytest.skip(f"IPv6 loopback is unavailable here: {error}")
    with server:
        client = EchoClient(loop, port=server.port, host="::1")
        assert loop.run_until_complete(client.request(b"v6"), timeout_s=TIMEOUT_S) == b"v6"
        client.close()
