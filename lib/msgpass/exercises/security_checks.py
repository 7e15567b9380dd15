"""The checker of exercise ``verify-tls-client`` in lab 24 (security).

The learner writes ``make_client_context(ca_cert_pem: bytes) -> ssl.SSLContext``:
a client context that trusts only the certificate authority (CA) in
``ca_cert_pem``, requires a valid certificate, checks the host name, and
refuses protocol versions older than TLS 1.2.

``check_verify_tls_client`` makes a private CA at run time and starts real TLS
echo servers on loopback (``msgpass.tcp.ThreadedServer`` with a server
context), one per case, and connects to each with ``msgpass.tls.connect`` and
the learner's context:

- a server whose certificate the CA issued for ``localhost`` and
  ``127.0.0.1`` must be accepted, by name and by IP address, and echo a
  payload (liveness);
- a server with a self-signed certificate for the same names must be
  rejected (safety: anyone can make one);
- a server whose certificate the CA issued for another host name must be
  rejected (safety: a valid certificate for the wrong host);
- the context's ``minimum_version`` must be TLS 1.2 or later, and a server
  that speaks only TLS 1.1 must be rejected. That server needs an OpenSSL
  build that still allows TLS 1.1 at security level 0; where it does not,
  only the ``minimum_version`` attribute is checked, and the check's name
  says so.
"""

from __future__ import annotations

import contextlib
import random
import ssl
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from .. import tls
from ..errors import CertificateVerificationError, MessagingError, TLSError
from ..tcp import ThreadedServer
from .checking import CheckFailed, CheckReport, short_repr
from .timed_calls import TimedCheck

__all__ = ["EXERCISE_ID", "check_verify_tls_client"]

EXERCISE_ID = "verify-tls-client"
SERVER_NAMES = ("localhost", "127.0.0.1")
WRONG_NAME = "wrong-host.example"
CONNECT_TIMEOUT_S = 5.0

ContextFactory = Callable[[bytes], ssl.SSLContext]


@contextlib.contextmanager
def _echo_server(context: ssl.SSLContext) -> Iterator[ThreadedServer]:
    with ThreadedServer(lambda payload: payload, ssl_context=context, name="check-tls") as server:
        yield server


def _legacy_server_context(certificate: tls.ServerCertificate) -> ssl.SSLContext | None:
    """Return a server context that speaks only TLS 1.1, or None if this OpenSSL forbids it."""
    if not ssl.HAS_TLSv1_1:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TLSv1_1 is deprecated
            context = tls.server_context(
                certificate,
                minimum_version=ssl.TLSVersion.TLSv1_1,
                maximum_version=ssl.TLSVersion.TLSv1_1,
            )
        # OpenSSL 3 allows TLS 1.1 only at security level 0, because it signs with SHA-1.
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    except (ssl.SSLError, ValueError):
        return None
    return context


def _learner_context(candidate: ContextFactory, ca_cert_pem: bytes) -> ssl.SSLContext:
    context = candidate(ca_cert_pem)
    if not isinstance(context, ssl.SSLContext):
        raise CheckFailed(
            expected="make_client_context(ca_cert_pem) returns an ssl.SSLContext",
            actual=f"{type(context).__name__}: {short_repr(context)}",
            hint="build the context with ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT) and return it",
        )
    return context


def _round_trip(context: ssl.SSLContext, port: int, hostname: str, payload: bytes) -> bytes:
    with tls.connect(
        port=port, context=context, server_hostname=hostname, timeout_s=CONNECT_TIMEOUT_S
    ) as conn:
        conn.send(payload)
        return conn.recv()


def _expect_rejected(
    context: ssl.SSLContext, port: int, hostname: str, what: str, hint: str
) -> TLSError:
    """Connect to a server the context must reject, and return the rejection."""
    try:
        reply = _round_trip(context, port, hostname, b"must not arrive")
    except TLSError as error:
        return error
    raise CheckFailed(
        expected=f"the handshake with {what} fails with a TLS error",
        actual=f"the connection succeeded and the server echoed {short_repr(reply)}",
        hint=hint,
    )


class _Cases:
    """The sub-checks, sharing one CA made for this checker run."""

    def __init__(self) -> None:
        self.ca = tls.CertificateAuthority("verify-tls-client checker CA")

    def trusted_server(self, candidate: ContextFactory, rng: random.Random) -> None:
        context = _learner_context(candidate, self.ca.cert_pem)
        server_context = tls.server_context(self.ca.issue_server_certificate(SERVER_NAMES))
        with _echo_server(server_context) as server:
            for hostname in SERVER_NAMES:
                payload = rng.randbytes(32)
                try:
                    reply = _round_trip(context, server.port, hostname, payload)
                except MessagingError as error:
                    raise CheckFailed(
                        expected=f"a connection to a server the CA vouches for, as {hostname!r}",
                        actual=f"{type(error).__name__}: {error}",
                        hint="trust the CA you are given: context.load_verify_locations("
                        "cadata=ca_cert_pem.decode()), and keep the server's host name check",
                    ) from None
                if reply != payload:
                    raise CheckFailed(
                        expected=f"the echo {short_repr(payload)}",
                        actual=short_repr(reply),
                        hint="return the context unchanged after configuring it",
                    )

    def self_signed_server(self, candidate: ContextFactory, rng: random.Random) -> None:
        context = _learner_context(candidate, self.ca.cert_pem)
        server_context = tls.server_context(tls.self_signed_certificate(SERVER_NAMES))
        with _echo_server(server_context) as server:
            _expect_rejected(
                context,
                server.port,
                "localhost",
                "a server whose certificate is self-signed",
                hint="require a certificate: verify_mode = ssl.CERT_REQUIRED (the default of "
                "PROTOCOL_TLS_CLIENT); with CERT_NONE anyone in the middle can present one",
            )

    def wrong_hostname_server(self, candidate: ContextFactory, rng: random.Random) -> None:
        context = _learner_context(candidate, self.ca.cert_pem)
        server_context = tls.server_context(self.ca.issue_server_certificate([WRONG_NAME]))
        with _echo_server(server_context) as server:
            error = _expect_rejected(
                context,
                server.port,
                "localhost",
                f"a server whose certificate names only {WRONG_NAME!r}",
                hint="keep check_hostname = True: a certificate the CA issued to another "
                "host proves nothing about the host you asked for",
            )
        if not isinstance(error, CertificateVerificationError):
            raise CheckFailed(
                expected="a rejection because the host name does not match",
                actual=f"{type(error).__name__}: {error}",
                hint="the handshake failed for another reason, so check the other settings",
            )

    def old_protocol(self, candidate: ContextFactory, rng: random.Random) -> None:
        context = _learner_context(candidate, self.ca.cert_pem)
        minimum = context.minimum_version
        if minimum != ssl.TLSVersion.MAXIMUM_SUPPORTED and minimum < ssl.TLSVersion.TLSv1_2:
            raise CheckFailed(
                expected="context.minimum_version is ssl.TLSVersion.TLSv1_2 or later",
                actual=f"context.minimum_version is {minimum!r}",
                hint="set context.minimum_version = ssl.TLSVersion.TLSv1_2: RFC 8996 "
                "deprecates TLS 1.0 and 1.1",
            )
        legacy = _legacy_server_context(self.ca.issue_server_certificate(SERVER_NAMES))
        if legacy is None:
            return  # this OpenSSL cannot run a TLS 1.1 server, so only the attribute is checked
        with _echo_server(legacy) as server:
            _expect_rejected(
                context,
                server.port,
                "localhost",
                "a server that speaks only TLS 1.1",
                hint="offer TLS 1.2 and later only: minimum_version = ssl.TLSVersion.TLSv1_2, "
                "and leave the ciphers and security level at their defaults",
            )


def check_verify_tls_client(make_client_context: Any, *, seed: int = 0) -> CheckReport:
    """Check ``make_client_context`` against trusted, self-signed, misnamed and TLS 1.1 servers.

    Raises ``ExerciseFailed`` with a short report at the first failed check.
    """
    cases = _Cases()
    old_protocol_name = (
        "TLS 1.1 server rejected"
        if _legacy_server_context(cases.ca.issue_server_certificate(SERVER_NAMES)) is not None
        else "minimum version (no TLS 1.1 server on this OpenSSL)"
    )
    check = TimedCheck(EXERCISE_ID, seed=seed)
    check.add(
        "trusted server accepted",
        cases.trusted_server,
        hint="the context must trust the CA in ca_cert_pem and accept its server",
    )
    check.add(
        "self-signed server rejected",
        cases.self_signed_server,
        hint="verify the server's certificate against the given CA",
    )
    check.add(
        "wrong host name rejected",
        cases.wrong_hostname_server,
        hint="check the host name against the certificate",
    )
    check.add(
        old_protocol_name,
        cases.old_protocol,
        hint="refuse TLS versions older than 1.2",
    )
    return check.run(make_client_context)
