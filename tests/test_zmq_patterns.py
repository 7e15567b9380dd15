"""Tests of msgpass.zmq_patterns on real pyzmq sockets over loopback TCP.

Nothing here sleeps to wait for something: servers report their endpoint
when ``start()`` returns, clients poll with deadlines, and the PUB/SUB test
relies on the XPUB subscription handshake.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator

import psutil
import pytest
import zmq

from msgpass.errors import (
    EndpointClosed,
    MessagingError,
    MessagingTimeout,
    ProtocolError,
    RequestFailed,
)
from msgpass.zmq_patterns import (
    DealerClient,
    LazyPirateClient,
    Pipeline,
    Publisher,
    ReplyServer,
    RequestClient,
    RouterServer,
    Subscriber,
    measure_early_publish,
    measure_slow_joiner,
    request,
    translate_zmq_error,
)

SHORT_TIMEOUT_S = 0.1


def _tcp_connections() -> set[tuple[object, object, str]]:
    return {
        (connection.laddr, connection.raddr, connection.status)
        for connection in psutil.Process().net_connections(kind="tcp")
    }


def _wait_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    """Poll ``condition`` every 10 ms until it returns True or ``timeout_s`` seconds pass."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Fail a test that leaves a Python thread, an OS thread or a TCP socket behind."""
    threads_before = set(threading.enumerate())
    os_threads_before = psutil.Process().num_threads()
    connections_before = _tcp_connections()
    yield
    assert set(threading.enumerate()) <= threads_before, threading.enumerate()
    # Thread.join() returns just before the OS thread has fully exited, so poll briefly.
    assert _wait_until(lambda: psutil.Process().num_threads() <= os_threads_before)
    # Sockets close in the context's reaper thread, which term() waits for.
    assert _tcp_connections() <= connections_before, _tcp_connections() - connections_before


def _upper(payload: bytes) -> bytes:
    return payload.upper()


# --- REQ/REP -------------------------------------------------------------------------------


def test_request_round_trip() -> None:
    with ReplyServer(_upper) as server:
        assert server.endpoint.startswith("tcp://127.0.0.1:")
        assert request(server.endpoint, b"hello") == b"HELLO"
        assert server.stats()["replied"] == 1
    assert server.state == "stopped"


def test_request_times_out() -> None:
    with ReplyServer(_upper, drop_every=1) as server:
        started = time.monotonic()
        with pytest.raises(MessagingTimeout, match="no reply"):
            request(server.endpoint, b"hello", timeout_s=SHORT_TIMEOUT_S)
        assert time.monotonic() - started < 2.0


def test_req_socket_stuck_after_lost_reply() -> None:
    with ReplyServer(_upper, drop_every=1) as server, RequestClient(server.endpoint) as client:
        with pytest.raises(MessagingTimeout):
            client.request(b"first", timeout_s=SHORT_TIMEOUT_S)
        with pytest.raises(MessagingError, match="EFSM") as caught:
            client.request(b"second", timeout_s=SHORT_TIMEOUT_S)
        assert isinstance(caught.value.__cause__, zmq.ZMQError)


def test_handler_error_reaches_client() -> None:
    def fail(payload: bytes) -> bytes:
        raise ValueError("cannot handle " + payload.decode())

    with ReplyServer(fail) as server:
        with pytest.raises(RequestFailed, match="ValueError: cannot handle x"):
            request(server.endpoint, b"x")
        assert server.stats()["handler_errors"] == 1


def test_handler_returning_str_is_error() -> None:
    with ReplyServer(lambda payload: payload.decode()) as server:  # type: ignore[arg-type, return-value]
        for _ in range(2):
            with pytest.raises(RequestFailed) as caught:
                request(server.endpoint, b"x", timeout_s=5)
            message = str(caught.value)
            assert "TypeError: handler returned str, expected bytes; encode it" in message
        stats = server.stats()
        assert stats["handler_errors"] == 2
        assert stats["replied"] == 2
        assert stats["state"] == "running"
        assert stats["error"] is None


def test_handler_returning_none_is_error() -> None:
    def forget_return(payload: bytes) -> bytes:
        payload.upper()
        return None  # type: ignore[return-value]

    with ReplyServer(forget_return) as server:
        with pytest.raises(RequestFailed, match="handler returned None, expected bytes"):
            request(server.endpoint, b"x", timeout_s=5)
        assert server.stats()["handler_errors"] == 1


@pytest.mark.parametrize("result_type", [bytearray, memoryview])
def test_handler_may_return_bytes_like(result_type: type) -> None:
    with ReplyServer(lambda payload: result_type(payload.upper())) as server:
        assert request(server.endpoint, b"abc", timeout_s=5) == b"ABC"
        assert server.stats()["handler_errors"] == 0


def _exit_in_handler(payload: bytes) -> bytes:
    # SystemExit is not an Exception, so it escapes the handler-error reply and ends the thread.
    raise SystemExit("handler called sys.exit")


def test_thread_failure_sets_failed_state() -> None:
    server = ReplyServer(_exit_in_handler)
    server.start()
    try:
        with pytest.raises(MessagingTimeout):
            request(server.endpoint, b"x", timeout_s=SHORT_TIMEOUT_S)
        assert _wait_until(lambda: server.state == "failed")
        assert isinstance(server.error, SystemExit)
        assert server.stats()["state"] == "failed"
        assert server.stats()["error"] == "SystemExit: handler called sys.exit"
        assert "error='SystemExit: handler called sys.exit'" in repr(server)
    finally:
        failure = "background thread failed with SystemExit"
        with pytest.raises(MessagingError, match=failure) as caught:
            server.stop()
    assert caught.value.__cause__ is server.error
    assert server.state == "stopped"
    server.stop()  # reported once; stopping again does nothing


def test_thread_failure_raised_on_exit() -> None:
    with pytest.raises(MessagingError, match="background thread failed") as caught:  # noqa: SIM117
        with ReplyServer(_exit_in_handler) as server:
            with pytest.raises(MessagingTimeout):
                request(server.endpoint, b"x", timeout_s=SHORT_TIMEOUT_S)
            assert _wait_until(lambda: server.state == "failed")
    assert isinstance(caught.value.__cause__, SystemExit)


def test_thread_failure_noted_on_error_exit() -> None:
    with pytest.raises(RuntimeError) as caught, ReplyServer(_exit_in_handler) as server:
        with pytest.raises(MessagingTimeout):
            request(server.endpoint, b"x", timeout_s=SHORT_TIMEOUT_S)
        assert _wait_until(lambda: server.state == "failed")
        raise RuntimeError("the with block failed too")
    # The block's own exception is kept; the thread failure is added to it as a note.
    notes = getattr(caught.value, "__notes__", [])
    assert any("background thread failed with SystemExit" in note for note in notes), notes


BAD_TIMEOUTS = [
    (0, ValueError),
    (-1.0, ValueError),
    (math.nan, ValueError),
    (math.inf, ValueError),
    (None, TypeError),
    ("1", TypeError),
    (True, TypeError),
]


@pytest.mark.parametrize(("timeout_s", "error_type"), BAD_TIMEOUTS)
def test_request_rejects_bad_timeout(timeout_s: object, error_type: type[Exception]) -> None:
    with ReplyServer(_upper) as server:
        with pytest.raises(error_type, match="timeout_s"):
            request(server.endpoint, b"x", timeout_s=timeout_s)  # type: ignore[arg-type]
        with RequestClient(server.endpoint) as client:
            with pytest.raises(error_type, match="timeout_s"):
                client.request(b"x", timeout_s=timeout_s)  # type: ignore[arg-type]
            # The rejected call sent nothing, so the REQ socket can still send.
            assert client.request(b"ok", timeout_s=5) == b"OK"
        with pytest.raises(error_type, match="timeout_s"):
            LazyPirateClient(server.endpoint, timeout_s=timeout_s)  # type: ignore[arg-type]
        assert server.stats()["received"] == 1


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("text", "payload must be bytes, got str; encode it"),
        (42, "payload must be bytes-like .* got int"),
        (None, "payload must be bytes-like .* got NoneType"),
    ],
)
def test_request_rejects_non_bytes_payload(payload: object, message: str) -> None:
    with ReplyServer(_upper) as server:
        with pytest.raises(TypeError, match=message):
            request(server.endpoint, payload)  # type: ignore[arg-type]
        with RequestClient(server.endpoint) as client:
            with pytest.raises(TypeError, match=message):
                client.request(payload)  # type: ignore[arg-type]
            assert client.request(b"ok", timeout_s=5) == b"OK"
        with LazyPirateClient(server.endpoint) as pirate, pytest.raises(TypeError, match=message):
            pirate.request(payload)  # type: ignore[arg-type]
        assert server.stats()["received"] == 1


def test_request_accepts_bytes_like_payload() -> None:
    with ReplyServer(_upper) as server:
        assert request(server.endpoint, bytearray(b"ab"), timeout_s=5) == b"AB"
        assert request(server.endpoint, memoryview(b"cd"), timeout_s=5) == b"CD"


def test_timeout_messages_fit_each_caller() -> None:
    with ReplyServer(_upper, drop_every=1) as server:
        with pytest.raises(MessagingTimeout) as one_shot:
            request(server.endpoint, b"x", timeout_s=SHORT_TIMEOUT_S)
        assert "close it" not in str(one_shot.value)
        assert "already closed its socket" in str(one_shot.value)

        with RequestClient(server.endpoint) as client, pytest.raises(MessagingTimeout) as kept:
            client.request(b"x", timeout_s=SHORT_TIMEOUT_S)
        assert "close it and open a new one" in str(kept.value)


def test_reply_server_rejects_bad_drop_settings() -> None:
    with pytest.raises(ValueError, match="drop_every"):
        ReplyServer(_upper, drop_every=0)
    with pytest.raises(ValueError, match="drop_probability"):
        ReplyServer(_upper, drop_probability=1.5)


def test_reply_server_cannot_start_twice() -> None:
    server = ReplyServer(_upper)
    with server, pytest.raises(EndpointClosed):
        server.start()
    with pytest.raises(EndpointClosed):
        server.start()


def test_reply_server_skips_malformed_request() -> None:
    with ReplyServer(_upper) as server:
        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        try:
            dealer = context.socket(zmq.DEALER)
            dealer.setsockopt(zmq.LINGER, 0)
            dealer.connect(server.endpoint)
            dealer.send_multipart([b"not", b"a", b"request", b"at", b"all"])
            assert _wait_until(lambda: server.stats()["malformed"] == 1)
            dealer.close(linger=0)
        finally:
            context.term()
        assert request(server.endpoint, b"still serving") == b"STILL SERVING"


# --- Lazy Pirate ---------------------------------------------------------------------------


@pytest.mark.parametrize("drop_every", [2, 3])
def test_lazy_pirate_survives_dropped_replies(drop_every: int) -> None:
    with (
        ReplyServer(_upper, drop_every=drop_every) as server,
        LazyPirateClient(server.endpoint, timeout_s=SHORT_TIMEOUT_S, max_attempts=3) as client,
    ):
        replies = [client.request(f"r{number}".encode()) for number in range(6)]

        assert [reply.payload for reply in replies] == [f"R{n}".encode() for n in range(6)]
        stats = client.stats()
        assert stats["failures"] == 0
        assert stats["retries"] > 0
        assert stats["retries"] == sum(reply.attempts - 1 for reply in replies)
        assert stats["attempts"] == 6 + stats["retries"]
        assert server.stats()["dropped"] == stats["retries"]
        # Every retry reached the server again with the same request id.
        assert server.stats()["duplicates"] == stats["retries"]


def test_lazy_pirate_seeded_drops_repeat() -> None:
    def attempts_with_seed(seed: int) -> list[int]:
        with (
            ReplyServer(_upper, drop_probability=0.3, seed=seed) as server,
            LazyPirateClient(server.endpoint, timeout_s=SHORT_TIMEOUT_S, max_attempts=10) as client,
        ):
            return [client.request(b"x").attempts for _ in range(8)]

    assert attempts_with_seed(7) == attempts_with_seed(7)


def test_lazy_pirate_gives_up_after_attempts() -> None:
    with (
        ReplyServer(_upper, drop_every=1) as server,
        LazyPirateClient(server.endpoint, timeout_s=SHORT_TIMEOUT_S, max_attempts=3) as client,
    ):
        with pytest.raises(RequestFailed) as caught:
            client.request(b"anyone there?")

        message = str(caught.value)
        assert "3 attempts" in message
        assert server.endpoint in message
        assert f"{SHORT_TIMEOUT_S} s" in message
        assert client.stats()["attempts"] == 3
        assert client.stats()["retries"] == 2
        assert client.stats()["failures"] == 1
        assert server.stats()["received"] == 3


def test_lazy_pirate_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        LazyPirateClient("tcp://127.0.0.1:1", max_attempts=0)
    with pytest.raises(ValueError, match="timeout_s"):
        LazyPirateClient("tcp://127.0.0.1:1", timeout_s=0)


def test_lazy_pirate_closed_client_raises() -> None:
    client = LazyPirateClient("tcp://127.0.0.1:1")
    client.close()
    with pytest.raises(EndpointClosed):
        client.request(b"x")


# --- PUB/SUB -------------------------------------------------------------------------------


def test_pubsub_handshake_loses_nothing() -> None:
    for _ in range(20):
        result = measure_slow_joiner(200, subscribers=2, handshake=True)
        assert result.missed == (0, 0)
        assert result.missed_at_start == (0, 0)


def test_early_publish_loses_every_message() -> None:
    for _ in range(10):
        result = measure_early_publish(10, 20)
        assert result.published_early == 10
        assert result.received_early == 0
        assert result.received_after == 20
        assert 1 <= result.rounds <= 20


def test_early_publish_rejects_bad_counts() -> None:
    with pytest.raises(ValueError, match="early"):
        measure_early_publish(0)
    with pytest.raises(ValueError, match="max_rounds"):
        measure_early_publish(5, max_rounds=0)


def test_pubsub_naive_run_completes() -> None:
    # How many messages the naive run loses depends on the machine, so only its bounds are checked.
    result = measure_slow_joiner(200, handshake=False)
    assert 0 <= result.missed[0] <= 200
    assert result.missed_at_start[0] == result.missed[0]


def test_subscriber_receives_in_order() -> None:
    with Publisher() as publisher, Subscriber(publisher.endpoint, b"news") as subscriber:
        publisher.wait_subscribers(1, timeout_s=5)
        for number in range(50):
            publisher.publish(b"news", str(number).encode())
        publisher.publish(b"sport", b"filtered out by the topic")
        publisher.publish_end(b"news")
        assert subscriber.wait_end(timeout_s=5)
        assert subscriber.sequences == list(range(50))


def test_wait_subscribers_times_out() -> None:
    with (
        Publisher() as publisher,
        pytest.raises(MessagingTimeout, match="0 of 1 subscriptions"),
    ):
        publisher.wait_subscribers(1, timeout_s=SHORT_TIMEOUT_S)


# --- PUSH/PULL -----------------------------------------------------------------------------


def test_pipeline_distributes_fairly() -> None:
    with Pipeline(workers=3, work=_upper) as pipeline:
        result = pipeline.run([f"task {n}".encode() for n in range(30)])

        assert result.results == {n: f"TASK {n}".encode() for n in range(30)}
        assert result.errors == {}
        assert result.per_worker == {"worker-0": 10, "worker-1": 10, "worker-2": 10}


def test_pipeline_runs_twice_and_large_batch() -> None:
    with Pipeline(workers=2) as pipeline:
        first = pipeline.run([b"a", b"b"])
        second = pipeline.run([b"x"] * 5000, timeout_s=30)

        assert first.results == {0: b"a", 1: b"b"}
        assert len(second.results) == 5000
        assert set(second.per_worker.values()) == {2500}


def test_pipeline_reports_work_errors() -> None:
    def fail_on_x(payload: bytes) -> bytes:
        if payload == b"x":
            raise ValueError("x is not allowed")
        return payload

    with Pipeline(workers=2, work=fail_on_x) as pipeline:
        result = pipeline.run([b"a", b"x", b"c"])

        assert result.results == {0: b"a", 2: b"c"}
        assert result.errors == {1: "ValueError: x is not allowed"}


def test_pipeline_stop_is_final() -> None:
    pipeline = Pipeline(workers=1)
    pipeline.start()
    pipeline.stop()
    pipeline.stop()
    with pytest.raises(EndpointClosed):
        pipeline.run([b"late"])


# --- ROUTER/DEALER -------------------------------------------------------------------------


def test_router_replies_to_right_dealer() -> None:
    def tag(routing_id: bytes, frames: list[bytes]) -> list[bytes]:
        return [b"for " + routing_id, *frames]

    names = [b"alice", b"bob", b"carol"]
    with RouterServer(tag) as server:
        clients = [DealerClient(server.endpoint, name) for name in names]
        try:
            # Every client has several requests in flight before it reads any reply.
            for client in clients:
                for number in range(5):
                    client.send([f"job-{number}".encode()])
            for client in clients:
                replies = [client.recv(timeout_s=5) for _ in range(5)]
                assert replies == [
                    [b"for " + client.routing_id, f"job-{n}".encode()] for n in range(5)
                ]
        finally:
            for client in clients:
                client.close()

        envelopes = server.envelopes()
        assert {envelope.routing_id for envelope in envelopes} == set(names)
        assert all(len(envelope.frames) == 1 for envelope in envelopes)
        assert server.stats()["peers"] == 3


def test_dealer_recv_times_out() -> None:
    with (
        RouterServer(lambda routing_id, frames: []) as server,
        DealerClient(server.endpoint, b"dave") as client,
        pytest.raises(MessagingTimeout, match="dave"),
    ):
        client.recv(timeout_s=SHORT_TIMEOUT_S)


def test_dealer_rejects_reserved_routing_id() -> None:
    with pytest.raises(ValueError, match="routing_id"):
        DealerClient("tcp://127.0.0.1:1", b"\x00abc")


# --- error translation ---------------------------------------------------------------------


def test_translate_again_is_timeout() -> None:
    error = translate_zmq_error(zmq.Again(), "receive")
    assert isinstance(error, MessagingTimeout)


def test_translate_efsm_explains_req() -> None:
    error = translate_zmq_error(zmq.ZMQError(zmq.EFSM), "send")
    assert "REQ socket" in str(error)


def test_bind_to_taken_port_raises() -> None:
    with ReplyServer(_upper) as server:
        other = ReplyServer(_upper, server.endpoint)
        with pytest.raises(MessagingError, match="already in use"):
            other.start()
        other.stop()


def test_malformed_reply_is_protocol_error() -> None:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        router = context.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        router.bind("tcp://127.0.0.1:*")
        endpoint = router.getsockopt(zmq.LAST_ENDPOINT).decode()
        with RequestClient(endpoint, context=context) as client:
            answered = threading.Event()

            def answer_badly() -> None:
                if router.poll(5000):
                    routing_id, empty, _request_id, _payload = router.recv_multipart()
                    router.send_multipart([routing_id, empty, b"only one frame"])
                answered.set()

            thread = threading.Thread(target=answer_badly)
            thread.start()
            with pytest.raises(ProtocolError, match="expected 3"):
                client.request(b"x", timeout_s=5)
            thread.join(5)
            assert answered.is_set()
        router.close(linger=0)
    finally:
        context.term()
