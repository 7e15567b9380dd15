"""msgpass: the teaching library of the book on message passing and asynchronous communication.

Each module teaches one idea and is imported by the labs:

- ``framing``: length-prefixed frames over a byte stream.
- ``tcp``: blocking and asyncio TCP endpoints built on ``framing``.
- ``udp``: datagram endpoints with a size limit and sequence numbers.
- ``zmq_patterns``: ZeroMQ REQ/REP, Lazy Pirate, PUB/SUB with a handshake,
  PUSH/PULL and ROUTER/DEALER on pyzmq.
- ``errors``: the exception hierarchy shared by all of them.
- ``exercises``: the checkers of the labs' exercises and the student-edition tool.
"""

import logging

from .errors import (
    ConnectionClosed,
    DatagramTruncated,
    EndpointClosed,
    FrameTooLarge,
    IncompleteFrame,
    MessagingError,
    MessagingTimeout,
    PayloadTooLarge,
    ProtocolError,
    RemoteError,
    RequestFailed,
)

__all__ = [
    "ConnectionClosed",
    "DatagramTruncated",
    "EndpointClosed",
    "FrameTooLarge",
    "IncompleteFrame",
    "MessagingError",
    "MessagingTimeout",
    "PayloadTooLarge",
    "ProtocolError",
    "RemoteError",
    "RequestFailed",
]

__version__ = "0.1.0"

# The library logs its retries and the errors it survives, but stays silent
# unless the application configures logging (for example logging.basicConfig()).
logging.getLogger(__name__).addHandler(logging.NullHandler())
