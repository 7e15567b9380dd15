"""Tests of msgpass.microservices against real services on loopback."""

from __future__ import annotations

import random
import socket
import threading
from typing import Any

import pytest

from msgpass.errors import ConnectionClosed, MessagingTimeout, RemoteError, RequestFailed
from msgpass.microservices import (
    InventoryService,
    JsonService,
    PaymentService,
    backoff_delay_s,
    call_json,
    call_with_retries,
    simulate_retry_times,
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_call_json_round_trip() -> None:
    with JsonService(lambda request: {"echo": request}) as service:
        assert call_json(service.port, {"a": 1}) == {"echo": {"a": 1}}


def test_handler_error_becomes_remote_error() -> None:
    with InventoryService({"apple": 1}) as inventory:
        assert call_json(inventory.port, {"sku": "apple", "quantity": 1}) == {
            "sku": "apple",
            "left": 0,
        }
        with pytest.raises(RemoteError, match="only 0 of apple left"):
            call_json(inventory.port, {"sku": "apple", "quantity": 1})


def test_call_to_stopped_service_fails() -> None:
    with pytest.raises(ConnectionClosed):
        call_json(free_port(), {"sku": "apple", "quantity": 1}, timeout_s=1.0)


def test_lost_reply_times_out() -> None:
    with PaymentService(lose_reply_probability=1.0) as payment:
        with pytest.raises(MessagingTimeout):
            call_json(payment.port, {"key": "k", "account": "a", "amount_cents": 5}, timeout_s=0.1)
        assert payment.charged_cents() == {"a": 5}


def test_retry_without_store_charges_twice() -> None:
    with PaymentService(lose_reply_probability=0.5, seed=1) as payment:
        request = {"key": "k1", "account": "a", "amount_cents": 100}
        reply = call_with_retries(
            lambda: call_json(payment.port, request, timeout_s=0.1),
            attempts=10,
            base_s=0.0,
            cap_s=0.0,
            jitter="none",
            rng=random.Random(0),
        )
        assert reply["amount_cents"] == 100
        assert payment.charged_cents()["a"] > 100


class KeyStore:
    """A minimal idempotency store for the test, not the exercise's full contract."""

    def __init__(self, apply: Any) -> None:
        self.apply = apply
        self.lock = threading.Lock()
        self.replies: dict[str, Any] = {}

    def handle(self, key: str, body: Any) -> Any:
        with self.lock:
            if key not in self.replies:
                self.replies[key] = self.apply(body)
            return self.replies[key]


def test_retry_with_store_charges_once() -> None:
    with PaymentService(lose_reply_probability=0.5, seed=1, store_factory=KeyStore) as payment:
        request = {"key": "k1", "account": "a", "amount_cents": 100}
        call_with_retries(
            lambda: call_json(payment.port, request, timeout_s=0.1),
            attempts=10,
            base_s=0.0,
            cap_s=0.0,
            jitter="none",
            rng=random.Random(0),
        )
        assert payment.charged_cents() == {"a": 100}


def test_retries_give_up_with_request_failed() -> None:
    sleeps: list[float] = []
    with pytest.raises(RequestFailed, match="all 3 attempts failed"):
        call_with_retries(
            lambda: call_json(free_port(), {}, timeout_s=0.5),
            attempts=3,
            base_s=0.1,
            cap_s=1.0,
            jitter="none",
            rng=random.Random(0),
            sleep=sleeps.append,
        )
    assert sleeps == [0.1, 0.2]


def test_remote_error_not_retried() -> None:
    calls = []

    def failing() -> dict[str, Any]:
        calls.append(1)
        raise RemoteError("rejected")

    with pytest.raises(RemoteError):
        call_with_retries(
            failing, attempts=5, base_s=0.0, cap_s=0.0, jitter="none", rng=random.Random(0)
        )
    assert len(calls) == 1


def test_backoff_caps_and_jitters() -> None:
    rng = random.Random(0)
    delays = [backoff_delay_s(n, base_s=0.1, cap_s=1.0, jitter="none", rng=rng) for n in range(6)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    jittered = [
        backoff_delay_s(3, base_s=0.1, cap_s=1.0, jitter="full", rng=rng) for _ in range(50)
    ]
    assert all(0.0 <= delay <= 0.8 for delay in jittered)
    assert len(set(jittered)) == 50
    with pytest.raises(ValueError, match="jitter"):
        backoff_delay_s(0, base_s=0.1, cap_s=1.0, jitter="half", rng=rng)  # type: ignore[arg-type]


def test_jitter_spreads_retry_times() -> None:
    options: dict[str, Any] = {"recovers_at_s": 2.0, "base_s": 0.1, "cap_s": 5.0, "seed": 1}
    synchronized = simulate_retry_times(100, jitter="none", **options)
    spread = simulate_retry_times(100, jitter="full", **options)
    assert len(set(synchronized)) < 10
    assert len(set(spread)) > 100
