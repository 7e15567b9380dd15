"""Tests of msgpass.tls: run-time certificates, contexts, and framed TCP over TLS on loopback.

Every server is a ``ThreadedServer`` with a TLS context and a certificate made
in the test, so nothing depends on the system's trusted CAs. A rejected
certificate must surface as ``CertificateVerificationError`` on the client.
"""

from __future__ import annotations

import os
import socket
import ssl
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from msgpass import tls
from msgpass.errors import (
    CertificateVerificationError,
    ConnectionClosed,
    MessagingTimeout,
    ProtocolError,
    TLSError,
)
from msgpass.framing import encode_frame
from msgpass.tcp import FramedServer, ThreadedServer, connect

pytestmark = pytest.mark.timeout(20)


@pytest.fixture(scope="module")
def ca() -> tls.CertificateAuthority:
    return tls.CertificateAuthority()


@pytest.fixture
def echo_server(ca: tls.CertificateAuthority) -> Iterator[ThreadedServer]:
    context = tls.server_context(ca.issue_server_certificate())
    with ThreadedServer(lambda payload: payload, ssl_context=context) as server:
        yield server


def test_certificate_names_in_san(ca: tls.CertificateAuthority) -> None:
    server_cert = ca.issue_server_certificate(["localhost", "127.0.0.1"])
    first_pem = server_cert.chain_pem.split(b"-----END CERTIFICATE-----")[0]
    cert = x509.load_pem_x509_certificate(first_pem + b"-----END CERTIFICATE-----\n")
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert cert.issuer == ca.certificate.subject


def test_certificate_repr_hides_key(ca: tls.CertificateAuthority) -> None:
    server_cert = ca.issue_server_certificate()
    assert b"PRIVATE KEY" in server_cert.key_pem
    assert "PRIVATE" not in repr(server_cert)
    assert "localhost" in repr(server_cert)


def test_certificate_needs_a_name(ca: tls.CertificateAuthority) -> None:
    with pytest.raises(ValueError, match="at least one"):
        ca.issue_server_certificate([])


def test_server_context_leaves_no_key_file(ca: tls.CertificateAuthority) -> None:
    before = set(Path(tempfile.gettempdir()).glob("msgpass-tls-*"))
    tls.server_context(ca.issue_server_certificate())
    assert set(Path(tempfile.gettempdir()).glob("msgpass-tls-*")) == before


def test_client_context_settings(ca: tls.CertificateAuthority) -> None:
    context = tls.client_context(ca.cert_pem)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert len(context.get_ca_certs()) == 1


def test_client_context_accepts_pem_str(ca: tls.CertificateAuthority) -> None:
    context = tls.client_context(ca.cert_pem.decode("ascii"))
    assert len(context.get_ca_certs()) == 1


@pytest.mark.parametrize(
    ("ca_cert_pem", "error_type", "message"),
    [
        (b"garbage", ValueError, "contains no PEM certificate"),
        ("garbage", ValueError, "contains no PEM certificate"),
        (b"", ValueError, "is empty"),
        (b"\xff\xfe not text", ValueError, "byte 0 is 0xff, not ASCII"),
        (
            b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
            ValueError,
            "contains an invalid PEM certificate",
        ),
        (None, TypeError, "got NoneType"),
        (42, TypeError, "got int"),
    ],
)
def test_client_context_rejects_bad_ca(
    ca_cert_pem: object, error_type: type[Exception], message: str
) -> None:
    with pytest.raises(error_type) as caught:
        tls.client_context(ca_cert_pem)  # type: ignore[arg-type]
    assert message in str(caught.value)
    assert "CertificateAuthority.cert_pem" in str(caught.value)


def test_client_context_hints_der(ca: tls.CertificateAuthority) -> None:
    der = ssl.PEM_cert_to_DER_cert(ca.cert_pem.decode("ascii"))
    with pytest.raises(ValueError, match="DER_cert_to_PEM_cert"):
        tls.client_context(der)


def test_round_trip_by_name(ca: tls.CertificateAuthority, echo_server: ThreadedServer) -> None:
    context = tls.client_context(ca.cert_pem)
    with tls.connect(port=echo_server.port, context=context, server_hostname="localhost") as conn:
        conn.send(b"over TLS")
        assert conn.recv() == b"over TLS"
        assert conn.tls_version == "TLSv1.3"
        assert conn.cipher is not None
        assert conn.server_hostname == "localhost"
        assert "TLSConnection TLSv1.3" in repr(conn)


def test_round_trip_by_ip(ca: tls.CertificateAuthority, echo_server: ThreadedServer) -> None:
    with tls.connect(port=echo_server.port, context=tls.client_context(ca.cert_pem)) as conn:
        conn.send(b"by IP")
        assert conn.recv() == b"by IP"
        assert conn.server_hostname == "127.0.0.1"


def test_large_frame_round_trip(ca: tls.CertificateAuthority, echo_server: ThreadedServer) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 7)  # many TLS records and the no-sendmsg path
    with tls.connect(port=echo_server.port, context=tls.client_context(ca.cert_pem)) as conn:
        for _ in range(2):
            conn.send(payload)
            assert conn.recv() == payload
        assert conn.stats()["frames_received"] == 2


def test_many_small_frames(ca: tls.CertificateAuthority, echo_server: ThreadedServer) -> None:
    with tls.connect(port=echo_server.port, context=tls.client_context(ca.cert_pem)) as conn:
        for number in range(200):
            conn.send(str(number).encode())
        replies = [conn.recv() for _ in range(200)]
    assert replies == [str(number).encode() for number in range(200)]


def test_untrusted_ca_rejected(echo_server: ThreadedServer) -> None:
    other_ca = tls.CertificateAuthority("some other CA")
    with pytest.raises(CertificateVerificationError) as caught:
        tls.connect(port=echo_server.port, context=tls.client_context(other_ca.cert_pem))
    assert caught.value.verify_message
    assert isinstance(caught.value, ConnectionClosed)
    assert isinstance(caught.value.__cause__, ssl.SSLCertVerificationError)


def test_wrong_hostname_rejected(ca: tls.CertificateAuthority, echo_server: ThreadedServer) -> None:
    context = tls.client_context(ca.cert_pem)
    with pytest.raises(CertificateVerificationError, match="Hostname mismatch"):
        tls.connect(port=echo_server.port, context=context, server_hostname="example.org")


def test_self_signed_rejected(ca: tls.CertificateAuthority) -> None:
    context = tls.server_context(tls.self_signed_certificate())
    with ThreadedServer(lambda payload: payload, ssl_context=context) as server:
        with pytest.raises(CertificateVerificationError, match="self-signed"):
            tls.connect(port=server.port, context=tls.client_context(ca.cert_pem))
        # The server counts the refused handshake as an ended connection, not a handler error.
        assert server.stats()["handler_errors"] == 0


def test_old_protocol_rejected(ca: tls.CertificateAuthority) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLSv1_1 is deprecated
        context = tls.server_context(
            ca.issue_server_certificate(),
            minimum_version=ssl.TLSVersion.TLSv1_1,
            maximum_version=ssl.TLSVersion.TLSv1_1,
        )
    with (
        ThreadedServer(lambda payload: payload, ssl_context=context) as server,
        pytest.raises(TLSError) as caught,
    ):
        tls.connect(port=server.port, context=tls.client_context(ca.cert_pem))
    assert not isinstance(caught.value, CertificateVerificationError)


def test_plain_client_gets_no_frames(echo_server: ThreadedServer) -> None:
    with connect(port=echo_server.port, timeout_s=2.0) as conn:
        conn.send(b"plaintext to a TLS server")
        # The server closes, maybe after a TLS alert that cannot parse as a frame.
        with pytest.raises((ConnectionClosed, ProtocolError)):
            conn.recv()


def test_handshake_timeout() -> None:
    with FramedServer() as silent:  # the kernel completes TCP, but nobody runs the TLS handshake
        context = tls.client_context(tls.CertificateAuthority().cert_pem)
        with pytest.raises(MessagingTimeout, match="handshake"):
            tls.connect(port=silent.port, context=context, timeout_s=0.2)


def test_connect_refused_translated() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    context = tls.client_context(tls.CertificateAuthority().cert_pem)
    with pytest.raises(ConnectionClosed, match="refused"):
        tls.connect(port=port, context=context)


def test_connect_argument_checks() -> None:
    with pytest.raises(TypeError, match="SSLContext"):
        tls.connect(port=1, context=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="SSLContext"):
        FramedServer(ssl_context="yes")  # type: ignore[arg-type]


def test_server_rejects_garbage(ca: tls.CertificateAuthority) -> None:
    context = tls.server_context(ca.issue_server_certificate())
    with FramedServer(ssl_context=context, timeout_s=2.0) as server:
        assert "(TLS)" in repr(server)
        with socket.create_connection(("127.0.0.1", server.port), timeout=2.0) as raw:
            raw.sendall(encode_frame(b"not a ClientHello"))
            with server.accept() as accepted, pytest.raises(TLSError):
                accepted.recv()
