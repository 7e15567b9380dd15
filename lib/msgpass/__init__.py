"""msgpass: the teaching library of the book on message passing and asynchronous communication.

Each module teaches one idea and is imported by the labs:

- ``framing``: length-prefixed frames over a byte stream.
- ``tcp``: blocking and asyncio TCP endpoints built on ``framing``.
- ``udp``: datagram endpoints with a size limit and sequence numbers.
- ``zmq_patterns``: ZeroMQ REQ/REP, Lazy Pirate, PUB/SUB with a handshake,
  PUSH/PULL and ROUTER/DEALER on pyzmq.
- ``errors``: the exception hierarchy shared by all of them.
"""

from .errors import (
    ConnectionClosed,
    EndpointClosed,
    FrameTooLarge,
    IncompleteFrame,
    MessagingError,
    MessagingTimeout,
    PayloadTooLarge,
    ProtocolError,
    RequestFailed,
)

__all__ = [
    "ConnectionClosed",
    "EndpointClosed",
    "FrameTooLarge",
    "IncompleteFrame",
    "MessagingError",
    "MessagingTimeout",
    "PayloadTooLarge",
    "ProtocolError",
    "RequestFailed",
]

__version__ = "0.1.0"
