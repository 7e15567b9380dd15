"""Services that call each other: request/response, events, retries, idempotency keys.

Chapter 5's microservice lab builds a small shop from these parts, all on
loopback:

- ``JsonService`` serves JSON requests over ``msgpass.tcp`` with one handler
  function, and ``call_json`` sends one request with a timeout. A caller
  that uses them is coupled in time to the callee: if the callee is down,
  the call fails.
- ``InventoryService`` and ``PaymentService`` are the two services the lab
  calls. ``PaymentService`` can lose replies on purpose (it charges, then
  sends nothing), which is what makes a retried payment dangerous, and it
  accepts an idempotency store that makes the retry safe.
- ``backoff_delay_s`` computes exponential backoff with or without full
  jitter, ``call_with_retries`` retries a call with it, and
  ``simulate_retry_times`` shows in simulated time why jitter matters: many
  clients that failed together retry together unless jitter spreads them.

Events between services go through the teaching broker (``msgpass.broker``),
which keeps them until each consumer group reads them. The lab uses it
directly, so this module has no event bus of its own.

Left out on purpose: service discovery, connection pooling and circuit
breakers.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any, Literal, Protocol

from .errors import ConnectionClosed, MessagingTimeout, RemoteError, RequestFailed
from .tcp import ThreadedServer, connect

__all__ = [
    "Json",
    "JsonService",
    "call_json",
    "InventoryService",
    "PaymentService",
    "IdempotencyStore",
    "backoff_delay_s",
    "call_with_retries",
    "simulate_retry_times",
]

log = logging.getLogger(__name__)

Json = dict[str, Any]
Jitter = Literal["none", "full"]

DEFAULT_CALL_TIMEOUT_S = 1.0
RETRYABLE = (MessagingTimeout, ConnectionClosed)  # the call may not have happened; try again


class JsonService:
    """A TCP service whose ``handler(request) -> reply`` takes and returns JSON objects.

    An exception in the handler becomes the reply ``{"error": "<message>"}``
    so the caller learns what failed. A handler that returns None sends no
    reply at all, which the caller sees as a timeout.

    ::

        with JsonService(lambda request: {"echo": request}) as service:
            call_json(service.port, {"hello": 1})
    """

    def __init__(self, handler: Callable[[Json], Json | None], *, name: str = "service") -> None:
        self.handler = handler
        self.name = name
        self._server = ThreadedServer(self._handle_frame, name=f"msgpass-{name}")

    def _handle_frame(self, payload: bytes) -> bytes | None:
        request = json.loads(payload)
        try:
            reply = self.handler(request)
        except Exception as error:  # the caller gets the error, the service keeps serving
            log.info("%s: request %r failed: %s", self.name, request, error)
            reply = {"error": f"{type(error).__name__}: {error}"}
        if reply is None:
            return None
        return json.dumps(reply).encode()

    @property
    def port(self) -> int:
        """The loopback port the service listens on."""
        return self._server.port

    def start(self) -> JsonService:
        """Start serving and return the service."""
        self._server.start()
        return self

    def stop(self) -> None:
        """Close the listener and every connection, and join the server's threads."""
        self._server.stop()

    def __enter__(self) -> JsonService:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stats(self) -> dict[str, int]:
        """The server's counters: connections accepted, requests handled, handler errors."""
        return self._server.stats()

    def __repr__(self) -> str:
        return f"<JsonService {self.name} port={self.port}>"


def call_json(port: int, request: Json, *, timeout_s: float = DEFAULT_CALL_TIMEOUT_S) -> Json:
    """Send ``request`` to the service on ``port`` and return its reply.

    Raises ``ConnectionClosed`` when nothing listens (the service is down),
    ``MessagingTimeout`` when no reply comes within ``timeout_s``, and
    ``RemoteError`` when the service replied with an error.
    """
    # NOTE: one connection per call keeps the lab simple; real clients keep a pool.
    with connect(port=port, timeout_s=timeout_s) as conn:
        conn.send(json.dumps(request).encode())
        reply: Json = json.loads(conn.recv())
    if "error" in reply:
        raise RemoteError(f"service on port {port} rejected {request!r}: {reply['error']}")
    return reply


class InventoryService(JsonService):
    """Stock levels; ``{"sku": ..., "quantity": n}`` reserves n items or fails."""

    def __init__(self, stock: dict[str, int]) -> None:
        super().__init__(self.reserve, name="inventory")
        self.stock = dict(stock)
        self._lock = threading.Lock()

    def reserve(self, request: Json) -> Json:
        """Take ``quantity`` of ``sku`` out of stock; raise ``ValueError`` if too few are left."""
        sku, quantity = request["sku"], int(request["quantity"])
        with self._lock:
            left = self.stock.get(sku, 0)
            if quantity > left:
                raise ValueError(f"only {left} of {sku} left, {quantity} requested")
            self.stock[sku] = left - quantity
            return {"sku": sku, "left": left - quantity}


class IdempotencyStore(Protocol):
    """Store interface of ``PaymentService``: ``handle(key, body)`` applies a body once."""

    def handle(self, key: str, body: Json) -> Json: ...


class PaymentService(JsonService):
    """Charges accounts, and loses some replies on purpose.

    A request is ``{"key": <idempotency key>, "account": ..., "amount_cents": n}``.
    With ``lose_reply_probability`` (drawn from a generator seeded with
    ``seed``) the service charges and then sends no reply, as if the reply
    were lost on the network. ``store_factory(apply)`` builds the
    idempotency store that wraps ``apply``. Without one every request is
    applied, so a retried request charges twice.
    """

    def __init__(
        self,
        *,
        lose_reply_probability: float = 0.0,
        seed: int = 0,
        store_factory: Callable[[Callable[[Json], Json]], IdempotencyStore] | None = None,
    ) -> None:
        super().__init__(self.handle, name="payment")
        self.lose_reply_probability = lose_reply_probability
        self.charges: list[Json] = []
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.store = store_factory(self.apply) if store_factory is not None else None

    def apply(self, body: Json) -> Json:
        """Record one charge and return its receipt."""
        with self._lock:
            self.charges.append(body)
            return {"charge_id": len(self.charges), "amount_cents": body["amount_cents"]}

    def handle(self, request: Json) -> Json | None:
        """Apply the request (through the store if there is one); maybe lose the reply."""
        body = {k: v for k, v in request.items() if k != "key"}
        if self.store is not None:
            reply = self.store.handle(request["key"], body)
        else:
            reply = self.apply(body)
        with self._lock:
            lose = self._rng.random() < self.lose_reply_probability
        return None if lose else reply

    def charged_cents(self) -> dict[str, int]:
        """Total charged per account."""
        with self._lock:
            totals: dict[str, int] = {}
            for charge in self.charges:
                totals[charge["account"]] = (
                    totals.get(charge["account"], 0) + charge["amount_cents"]
                )
            return totals


def backoff_delay_s(
    attempt: int, *, base_s: float, cap_s: float, jitter: Jitter, rng: random.Random
) -> float:
    """Return how long to wait before retry number ``attempt`` (0 for the first retry).

    Exponential backoff waits ``min(cap_s, base_s * 2**attempt)``. Full
    jitter waits a uniform random time between 0 and that, so clients that
    failed together spread out (Brooker, "Exponential Backoff And Jitter",
    AWS Architecture Blog, 2015).
    """
    ceiling = min(cap_s, base_s * 2.0**attempt)
    if jitter == "none":
        return ceiling
    if jitter == "full":
        return rng.uniform(0.0, ceiling)
    raise ValueError(f"jitter must be 'none' or 'full', got {jitter!r}")


def call_with_retries(
    call: Callable[[], Json],
    *,
    attempts: int,
    base_s: float,
    cap_s: float,
    jitter: Jitter,
    rng: random.Random,
    sleep: Callable[[float], None] = time.sleep,
) -> Json:
    """Run ``call`` up to ``attempts`` times, backing off after a timeout or a lost connection.

    Only ``MessagingTimeout`` and ``ConnectionClosed`` are retried. A
    ``RemoteError`` is the service's answer and is raised at once. Raises
    ``RequestFailed`` (with the last error as its cause) when every attempt
    failed.
    """
    last: Exception | None = None
    for attempt in range(attempts):
        if attempt > 0:
            sleep(backoff_delay_s(attempt - 1, base_s=base_s, cap_s=cap_s, jitter=jitter, rng=rng))
        try:
            return call()
        except RETRYABLE as error:
            log.info("attempt %d of %d failed: %s", attempt + 1, attempts, error)
            last = error
    raise RequestFailed(f"all {attempts} attempts failed; last error: {last}") from last


def simulate_retry_times(
    clients: int,
    *,
    recovers_at_s: float,
    base_s: float,
    cap_s: float,
    jitter: Jitter,
    seed: int,
    max_attempts: int = 8,
) -> list[float]:
    """Return the simulated times of every retry when ``clients`` all fail at time 0.

    The service rejects every attempt before ``recovers_at_s`` and accepts
    every later one. Each client retries with ``backoff_delay_s`` until it
    succeeds or has made ``max_attempts`` attempts. No time passes for real.
    """
    rng = random.Random(seed)
    times: list[float] = []
    for _ in range(clients):
        now = 0.0
        for retry in range(max_attempts - 1):
            now += backoff_delay_s(retry, base_s=base_s, cap_s=cap_s, jitter=jitter, rng=rng)
            times.append(now)
            if now >= recovers_at_s:
                break
    return times
