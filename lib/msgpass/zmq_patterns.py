"""The four core ZeroMQ messaging patterns, on real sockets over loopback TCP.

ZeroMQ sockets are not byte streams. Each socket type implements one
messaging pattern: it carries whole messages (one or more frames), queues
them, reconnects by itself, and decides where each message goes. This module
gathers the library's versions of the four core patterns, each taught in its
own module:

- Request/reply (``zmq_reqrep``): ``ReplyServer``, ``RequestClient`` and
  ``request``.
- Reliable request/reply (``zmq_lazy_pirate``): ``LazyPirateClient``. It
  recovers from a lost reply by closing its REQ socket, opening a new one
  and resending.
- Publish/subscribe (``zmq_pubsub``): ``Publisher`` (XPUB) and
  ``Subscriber``. Its experiments (``zmq_slow_joiner``):
  ``measure_early_publish`` shows that messages published before a
  subscription arrives are lost, and ``measure_slow_joiner`` shows the race
  in practice and the subscription handshake that prevents the loss.
- Pipeline (``zmq_pipeline``): ``Pipeline``, a PUSH/PULL ventilator,
  workers and sink with fair round-robin distribution.
- Asynchronous request/reply with envelopes (``zmq_router``):
  ``RouterServer`` and ``DealerClient``.

Every server binds ``tcp://127.0.0.1:*`` by default and reports the port it
got in ``endpoint``. Every socket has linger 0, every background thread polls
with a timeout and is joined on ``stop()``, and every component is a context
manager, so a notebook can run the same cell again without "Address already
in use" or leftover threads. Payloads are bytes or lists of bytes frames:
nothing is unpickled.

The patterns and their names come from Pieter Hintjens, *ZeroMQ: Messaging
for Many Applications* (O'Reilly, 2013), also published as the online
ZeroMQ guide.

Left out on purpose: CURVE security, the PAIR and STREAM socket types, the
newer thread-safe draft sockets (CLIENT/SERVER, RADIO/DISH), and the asyncio
API of pyzmq.
"""

from __future__ import annotations

import logging

from .zmq_common import JOIN_TIMEOUT_S, LOOPBACK_ANY_PORT, POLL_INTERVAL_MS, translate_zmq_error
from .zmq_lazy_pirate import LazyPirateClient
from .zmq_pipeline import Pipeline, PipelineResult
from .zmq_pubsub import END_MARKER, Publisher, Subscriber
from .zmq_reqrep import STATUS_ERROR, STATUS_OK, Reply, ReplyServer, RequestClient, request
from .zmq_router import DealerClient, Envelope, RouterServer
from .zmq_slow_joiner import (
    EarlyPublishResult,
    SlowJoinerResult,
    measure_early_publish,
    measure_slow_joiner,
)

__all__ = [
    "LOOPBACK_ANY_PORT",
    "POLL_INTERVAL_MS",
    "JOIN_TIMEOUT_S",
    "translate_zmq_error",
    "STATUS_OK",
    "STATUS_ERROR",
    "Reply",
    "ReplyServer",
    "RequestClient",
    "request",
    "LazyPirateClient",
    "END_MARKER",
    "Publisher",
    "Subscriber",
    "EarlyPublishResult",
    "measure_early_publish",
    "SlowJoinerResult",
    "measure_slow_joiner",
    "Pipeline",
    "PipelineResult",
    "Envelope",
    "RouterServer",
    "DealerClient",
]

log = logging.getLogger(__name__)


def _demo() -> None:
    """Run each pattern once and print what it did."""
    with (
        ReplyServer(bytes.upper, drop_every=3) as server,
        LazyPirateClient(server.endpoint, timeout_s=0.2) as client,
    ):
        for number in range(4):
            reply = client.request(f"request {number}".encode())
            print(f"REQ/REP: {reply.payload!r} after {reply.attempts} attempt(s)")
    early = measure_early_publish(10)
    print(f"PUB/SUB before the subscription arrived: received {early.received_early} of 10")
    for handshake in (False, True):
        result = measure_slow_joiner(1000, handshake=handshake)
        print(f"PUB/SUB handshake={handshake}: missed {result.missed[0]} of 1000")
    with Pipeline(workers=3, work=bytes.upper) as pipeline:
        print("PUSH/PULL tasks per worker:", pipeline.run([b"task"] * 30).per_worker)
    with RouterServer() as router, DealerClient(router.endpoint, b"alice") as alice:
        alice.send([b"job-1", b"hello"])
        print("ROUTER/DEALER reply:", alice.recv(), "envelope:", router.envelopes()[0])


if __name__ == "__main__":
    _demo()
