"""One exception hierarchy for the whole library.

Every error the library raises on purpose is a ``MessagingError``, so a lab can
write ``except MessagingError`` and know it has caught the library's failures
and nothing else. Operating-system errors (``OSError``, ``socket.timeout``) are
translated into these classes at the boundary where they happen, with
``raise ... from`` so that the original error stays attached as ``__cause__``.

The classes follow what went wrong, not which module noticed it:

- ``ProtocolError``: the peer sent bytes that break the wire format.
- ``ConnectionClosed``: the peer went away, cleanly or in the middle of a frame.
- ``MessagingTimeout``: a blocking call ran out of time.
- ``PayloadTooLarge``: a message is larger than the transport allows.
- ``RequestFailed``: a request/reply exchange gave up after its retries.

``MessagingTimeout`` also subclasses the built-in ``TimeoutError`` so that code
written against the standard library keeps working.
"""

from __future__ import annotations

import concurrent.futures
import errno
import socket
import ssl

__all__ = [
    "MessagingError",
    "ProtocolError",
    "FrameTooLarge",
    "ConnectionClosed",
    "IncompleteFrame",
    "MessagingTimeout",
    "PayloadTooLarge",
    "RequestFailed",
    "EndpointClosed",
    "translate_os_error",
    "DatagramTruncated",
    "RemoteError",
    "InvalidStateError",
    "MissingHandler",
    "SimulationError",
    "EventLimitExceeded",
    "ServiceUnavailable",
    "TLSError",
    "CertificateVerificationError",
    "JobFailed",
    "ServiceProgramNotExecutable",
]


class MessagingError(Exception):
    """Base class of every error the library raises on purpose."""


class ProtocolError(MessagingError):
    """The bytes received do not follow the wire format."""


class FrameTooLarge(ProtocolError):
    """A frame is longer than the endpoint's ``max_frame_bytes``.

    On the receiving side (``side="receiver"``, the default) a frame header
    declares the length. The error is raised as soon as the header is read,
    before any memory is reserved for the body, so a hostile or broken peer
    cannot make the receiver allocate. On the sending side
    (``side="sender"``) the caller's own payload is too large, and nothing
    has been sent.
    """

    def __init__(
        self, declared_bytes: int, max_frame_bytes: int, *, side: str = "receiver"
    ) -> None:
        self.declared_bytes = declared_bytes
        self.max_frame_bytes = max_frame_bytes
        self.side = side
        if side == "sender":
            message = (
                f"payload of {declared_bytes} bytes exceeds max_frame_bytes={max_frame_bytes} "
                f"of this endpoint, so nothing was sent; split the message, or raise "
                f"max_frame_bytes on both ends"
            )
        elif side == "receiver":
            message = (
                f"frame header declares {declared_bytes} bytes, above the maximum of "
                f"{max_frame_bytes} bytes; the peer is broken or speaks another protocol, "
                f"or raise max_frame_bytes on the receiver if such frames are expected"
            )
        else:
            raise ValueError(f"side must be 'sender' or 'receiver', got {side!r}")
        super().__init__(message)


class ConnectionClosed(MessagingError):
    """The peer closed the connection, or it was reset."""


class IncompleteFrame(ConnectionClosed, ProtocolError):
    """The stream ended in the middle of a frame.

    It is both a closed connection and a protocol error: the bytes that did
    arrive are a truncated message, which the receiver must not deliver.
    """

    def __init__(self, received_bytes: int, expected_bytes: int | None) -> None:
        self.received_bytes = received_bytes
        self.expected_bytes = expected_bytes
        if expected_bytes is None:
            detail = f"{received_bytes} of the frame header's bytes"
        else:
            detail = f"{received_bytes} of {expected_bytes} frame bytes"
        super().__init__(
            f"stream ended after {detail}; the sender closed or crashed mid-frame, "
            f"so the partial message was discarded"
        )


class MessagingTimeout(MessagingError, TimeoutError):
    """A blocking call did not finish within its timeout."""


class PayloadTooLarge(MessagingError, ValueError):
    """A message is larger than the transport can carry in one unit."""

    def __init__(self, size_bytes: int, max_bytes: int, what: str) -> None:
        self.size_bytes = size_bytes
        self.max_bytes = max_bytes
        super().__init__(
            f"{what} of {size_bytes} bytes exceeds the limit of {max_bytes} bytes; "
            f"split the message or use a stream transport such as TCP"
        )


class RequestFailed(MessagingError):
    """A request got no usable reply after every allowed attempt."""


class EndpointClosed(MessagingError):
    """An operation was attempted on an endpoint that is already closed."""


_CLOSED_ERRNOS = frozenset(
    {errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED, errno.ESHUTDOWN, errno.ENOTCONN}
)


def translate_os_error(error: OSError, action: str) -> MessagingError:
    """Return the library error that corresponds to an operating-system error.

    ``action`` names what was being done ("connect to 127.0.0.1:5555") and is
    put in the message. The caller raises the result ``from error``::

        except OSError as error:
            raise translate_os_error(error, "send") from error
    """
    if isinstance(error, ssl.SSLError):
        return translate_tls_error(error, action)
    if isinstance(error, (socket.timeout, TimeoutError)):
        return MessagingTimeout(f"{action} timed out")
    if isinstance(error, ConnectionRefusedError):
        return ConnectionClosed(
            f"{action} failed: connection refused; is the server running on that port?"
        )
    if isinstance(error, ConnectionError) or error.errno in _CLOSED_ERRNOS:
        return ConnectionClosed(f"{action} failed: the peer closed the connection ({error})")
    return MessagingError(f"{action} failed: {error}")


class DatagramTruncated(ProtocolError):
    """A received datagram was larger than the receive buffer, so the OS cut off its tail.

    The OS has already discarded the datagram, so it cannot be read again.
    ``min_size_bytes`` is a lower bound, because the bytes beyond the buffer are never seen.
    """

    def __init__(self, min_size_bytes: int, max_bytes: int, sender: tuple[str, int]) -> None:
        self.min_size_bytes = min_size_bytes
        self.max_bytes = max_bytes
        self.sender = sender
        super().__init__(
            f"datagram from {sender[0]}:{sender[1]} of at least {min_size_bytes} bytes "
            f"exceeds the receiver's limit of {max_bytes} bytes and was discarded; "
            f"raise the receiver's maximum datagram size if such datagrams are expected"
        )


class RemoteError(MessagingError):
    """The server received the request and replied that it could not carry it out.

    The request arrived and a reply came back, so retrying over the network does
    not help unless ``code`` says the failure was temporary. ``code`` is the
    server's short error code (for example ``"not_found"``) and the message is
    the server's own explanation.
    """

    def __init__(self, message: str, *, code: str = "failed") -> None:
        self.code = code
        super().__init__(message)


class InvalidStateError(MessagingError, concurrent.futures.InvalidStateError):
    """An operation is not allowed in the object's current state.

    For example, fulfilling a promise that is already settled. It also
    subclasses ``concurrent.futures.InvalidStateError``, which
    ``Future.set_result`` raises in the same situation.
    """


class MissingHandler(MessagingError, AttributeError):
    """A node received a message or a timer it has no handler method for.

    The message names the node, what arrived and the method the node class
    must define, so the fix is one ``def`` away.
    """

    def __init__(self, node_id: str, node_class: str, what: str, method_names: list[str]) -> None:
        self.node_id = node_id
        self.method_names = method_names
        expected = " or ".join(method_names)
        super().__init__(
            f"node {node_id!r} ({node_class}) has no handler for {what}; "
            f"define {expected} on {node_class}"
        )


class SimulationError(MessagingError):
    """A simulated network was used in a way its rules forbid.

    Examples: adding two nodes with the same id, naming a node that was never
    added, crashing a node that is already crashed, scheduling in the past.
    """


class EventLimitExceeded(SimulationError):
    """A simulation processed its maximum number of events without stopping.

    Usually two nodes keep sending to each other, or a timer re-arms itself at
    zero delay, so the run would never go idle.
    """

    def __init__(self, max_events: int, now_s: float) -> None:
        self.max_events = max_events
        self.now_s = now_s
        super().__init__(
            f"simulation processed max_events={max_events} events and had not stopped "
            f"at simulated time {now_s:.6f} s; pass until_s= or until= to bound the run, "
            f"or raise max_events if the run is expected to be this long"
        )


class ServiceUnavailable(MessagingError):
    """A server program that a lab needs, such as RabbitMQ or Redis, is not installed.

    ``service`` is the display name (``"RabbitMQ"``, ``"Redis"``), ``program``
    the path that was looked up, and the message contains installation instructions.
    """

    def __init__(self, service: str, program: str, install_hint: str) -> None:
        self.service = service
        self.program = program
        self.install_hint = install_hint
        super().__init__(f"{service} is not available: {program} not found; {install_hint}")


class TLSError(ConnectionClosed):
    """TLS failed on a connection: the handshake, or a record that did not decrypt.

    It is a ``ConnectionClosed`` because TLS allows no further use of a
    connection after a fatal alert (RFC 8446, section 6.2), and the library
    closes it. ``reason`` is OpenSSL's short reason, for example
    ``"TLSV1_ALERT_UNKNOWN_CA"`` when the peer rejected our certificate.
    """

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        self.reason = reason
        super().__init__(message)


class CertificateVerificationError(TLSError):
    """This end rejected the peer's certificate during the TLS handshake.

    ``verify_message`` is OpenSSL's explanation, for example
    ``"unable to get local issuer certificate"`` for an issuer the context
    does not trust, or ``"Hostname mismatch, certificate is not valid for
    'localhost'."`` when the certificate names another host.
    """

    def __init__(self, message: str, *, verify_message: str | None = None) -> None:
        self.verify_message = verify_message
        super().__init__(message, reason="CERTIFICATE_VERIFY_FAILED")


def translate_tls_error(error: ssl.SSLError, action: str) -> TLSError:
    """Return the ``TLSError`` for an ``ssl.SSLError``; ``translate_os_error`` calls it."""
    if isinstance(error, ssl.SSLCertVerificationError):
        verify_message = error.verify_message
        return CertificateVerificationError(
            f"{action} failed: the peer's certificate was rejected ({verify_message}); "
            f"trust the certificate authority that signed it (load_verify_locations) and "
            f"connect with the host name the certificate names",
            verify_message=verify_message,
        )
    reason = error.reason if isinstance(error.reason, str) else None
    return TLSError(f"{action} failed: TLS error: {error}", reason=reason)


class JobFailed(MessagingError):
    """A job run as a child process, such as a PyFlink job, exited with an error.

    ``returncode`` is the process's exit status and ``stderr_tail`` the last
    lines it wrote to stderr, which usually name the cause.
    """

    def __init__(self, message: str, *, returncode: int, stderr_tail: str) -> None:
        self.returncode = returncode
        self.stderr_tail = stderr_tail
        super().__init__(message)


class ServiceProgramNotExecutable(ServiceUnavailable):
    """The path given for a server program exists but cannot be run, such as a directory.

    ``problem`` completes the sentence that starts with the path, for example
    ``"is a directory, not an executable file"``.
    """

    def __init__(self, service: str, program: str, problem: str, install_hint: str) -> None:
        super().__init__(service, program, install_hint)
        self.problem = problem
        self.args = (f"{service} is not available: {program} {problem}; {install_hint}",)
