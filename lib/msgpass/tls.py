"""TLS for the framed TCP endpoints: contexts, certificates made at run time, and a client.

TLS gives a TCP connection three things: the client knows it talks to the
server named in the certificate (authentication), nobody on the path can read
the bytes (confidentiality), and nobody can change them unnoticed
(integrity). The first depends entirely on the client's ``ssl.SSLContext``:

- ``verify_mode = CERT_REQUIRED``: the handshake fails unless the server's
  certificate chains up to a certificate authority (CA) the context trusts;
- ``check_hostname = True``: the certificate must also name the host the
  client asked for, in its subjectAltName (SAN);
- the trusted CAs: here only the lab's private CA, loaded with
  ``load_verify_locations(cadata=...)``;
- ``minimum_version = TLSv1_2``: TLS 1.0 and 1.1 are deprecated by RFC 8996.

``client_context`` and ``server_context`` build such contexts.
``CertificateAuthority`` makes a private CA and server certificates at run
time with the ``cryptography`` package, so no key is ever stored in the
repository. ``connect`` opens a ``TLSConnection``, a
``msgpass.tcp.FramedConnection`` over an ``ssl.SSLSocket``, and the server
side is ``msgpass.tcp.ThreadedServer(handler, ssl_context=...)``.

Failures are translated at the boundary: a certificate this end rejects
raises ``msgpass.errors.CertificateVerificationError``, any other TLS failure
``msgpass.errors.TLSError`` (both ``ConnectionClosed`` subclasses).

Left out on purpose: client certificates (mutual TLS), revocation (CRL,
OCSP), session resumption and TLS on the asyncio endpoints.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import socket
import ssl
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .errors import MessagingTimeout, translate_os_error
from .framing import DEFAULT_MAX_FRAME_BYTES
from .tcp import FramedConnection
from .tcp_common import DEFAULT_TIMEOUT_S, check_port, check_timeout, connect_timeout_message

__all__ = [
    "MINIMUM_TLS_VERSION",
    "ServerCertificate",
    "CertificateAuthority",
    "self_signed_certificate",
    "client_context",
    "server_context",
    "TLSConnection",
    "connect",
]

log = logging.getLogger(__name__)

MINIMUM_TLS_VERSION = ssl.TLSVersion.TLSv1_2  # RFC 8996 deprecates TLS 1.0 and 1.1
CERTIFICATE_VALID_DAYS = 1  # run-time certificates only live as long as a lab
CLOCK_SKEW_S = 300  # certificates start this much in the past, for clocks that differ
_PEM_CERTIFICATE_LINE = "-----BEGIN CERTIFICATE-----"
_CA_PEM_HINT = "Pass PEM-encoded certificate bytes such as CertificateAuthority.cert_pem"


# -- certificates --------------------------------------------------------


@dataclass(frozen=True)
class ServerCertificate:
    """A server's certificate chain and private key, both PEM-encoded, kept in memory.

    ``chain_pem`` is the server certificate followed by the CA certificate
    that issued it (if any). ``key_pem`` is the unencrypted private key: it
    must never be written anywhere but a private temporary file.
    """

    chain_pem: bytes
    key_pem: bytes
    names: tuple[str, ...]

    def __repr__(self) -> str:
        # The key stays out of the repr, so printing the object in a notebook shows no secret.
        return f"<ServerCertificate for {', '.join(self.names)}>"


def _new_key() -> ec.EllipticCurvePrivateKey:
    # P-256 keys take well under a millisecond to generate, RSA-2048 keys tens of ms.
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _subject_alt_names(names: Sequence[str]) -> x509.SubjectAlternativeName:
    """Return a SAN with an IP entry for each IP address in ``names`` and a DNS entry otherwise."""
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _validity() -> tuple[datetime.datetime, datetime.datetime]:
    now = datetime.datetime.now(datetime.UTC)
    return (
        now - datetime.timedelta(seconds=CLOCK_SKEW_S),
        now + datetime.timedelta(days=CERTIFICATE_VALID_DAYS),
    )


def _server_certificate(
    names: Sequence[str],
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
) -> x509.Certificate:
    if not names:
        raise ValueError("names must list at least one host name or IP address, got none")
    not_before, not_after = _validity()
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_subject_alt_names(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
        .sign(issuer_key, hashes.SHA256())
    )


class CertificateAuthority:
    """A private certificate authority, made in memory, that issues server certificates.

    A client that loads ``cert_pem`` as its only trusted CA accepts exactly
    the servers this CA has issued certificates for::

        ca = CertificateAuthority()
        server_cert = ca.issue_server_certificate(["localhost", "127.0.0.1"])
        server_ctx = server_context(server_cert)
        client_ctx = client_context(ca.cert_pem)

    The CA's private key never leaves this object.
    """

    def __init__(self, common_name: str = "msgpass lab CA") -> None:
        self.common_name = common_name
        self._key = _new_key()
        self._name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        not_before, not_after = _validity()
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(self._name)
            .issuer_name(self._name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False
            )
            .sign(self._key, hashes.SHA256())
        )
        self.certificates_issued = 0

    @property
    def cert_pem(self) -> bytes:
        """The CA certificate in PEM, which clients load as their trusted CA."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def issue_server_certificate(
        self, names: Sequence[str] = ("localhost", "127.0.0.1")
    ) -> ServerCertificate:
        """Return a new key and a certificate for ``names``, signed by this CA.

        Each name becomes a SAN entry: an IP address entry for ``127.0.0.1``,
        a DNS entry for ``localhost``. Raises ``ValueError`` for an empty list.
        """
        key = _new_key()
        cert = _server_certificate(names, key, self._name, self._key)
        self.certificates_issued += 1
        chain = cert.public_bytes(serialization.Encoding.PEM) + self.cert_pem
        return ServerCertificate(chain_pem=chain, key_pem=_key_pem(key), names=tuple(names))

    def __repr__(self) -> str:
        return (
            f"<CertificateAuthority {self.common_name!r}, "
            f"{self.certificates_issued} certificates issued>"
        )


def self_signed_certificate(names: Sequence[str] = ("localhost", "127.0.0.1")) -> ServerCertificate:
    """Return a server certificate that signs itself, so no CA vouches for it.

    A correct client rejects it even though the names match: anyone can make
    one, which is exactly what an attacker in the middle would present.
    """
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else "?")])
    cert = _server_certificate(names, key, name, key)
    return ServerCertificate(
        chain_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=_key_pem(key),
        names=tuple(names),
    )


# -- contexts -------------------------------------------------------------


def client_context(ca_cert_pem: bytes | str) -> ssl.SSLContext:
    """Return a client context that trusts only the CA ``ca_cert_pem`` and checks host names.

    Certificate verification is required, the host name must match a SAN
    entry, and TLS 1.2 is the oldest version offered. ``ca_cert_pem`` is one
    or more PEM-encoded certificates, as bytes (such as
    ``CertificateAuthority.cert_pem``) or as a str (such as a ``.pem`` file
    read as text). Anything else raises ``TypeError``, and data without a
    valid PEM certificate raises ``ValueError``.
    """
    cadata = _ca_pem_text(ca_cert_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED, check_hostname on
    context.minimum_version = MINIMUM_TLS_VERSION
    try:
        context.load_verify_locations(cadata=cadata)
    except ssl.SSLError as error:
        raise ValueError(
            f"ca_cert_pem contains an invalid PEM certificate ({error}). {_CA_PEM_HINT}"
        ) from error
    return context


def _ca_pem_text(ca_cert_pem: object) -> str:
    """Return ``ca_cert_pem`` as PEM text, or raise an error that names what to pass instead."""
    if isinstance(ca_cert_pem, (bytes, bytearray)):
        try:
            text = bytes(ca_cert_pem).decode("ascii")
        except UnicodeDecodeError as error:
            # Such bytes are often a certificate in DER, the binary encoding, so the message
            # names the function that converts DER to PEM.
            raise ValueError(
                f"ca_cert_pem is not PEM text, because byte {error.start} is "
                f"{ca_cert_pem[error.start]:#04x}, not ASCII. {_CA_PEM_HINT}, or convert a DER "
                f"certificate with ssl.DER_cert_to_PEM_cert"
            ) from None
    elif isinstance(ca_cert_pem, str):
        text = ca_cert_pem
    else:
        raise TypeError(
            f"ca_cert_pem must be PEM-encoded certificate bytes or str, such as "
            f"CertificateAuthority.cert_pem, got {type(ca_cert_pem).__name__}"
        )
    if not text:
        raise ValueError(f"ca_cert_pem is empty. {_CA_PEM_HINT}")
    if _PEM_CERTIFICATE_LINE not in text:
        raise ValueError(
            f"ca_cert_pem contains no PEM certificate, because it has no "
            f"{_PEM_CERTIFICATE_LINE} line. {_CA_PEM_HINT}"
        )
    return text


def server_context(
    certificate: ServerCertificate,
    *,
    minimum_version: ssl.TLSVersion = MINIMUM_TLS_VERSION,
    maximum_version: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED,
) -> ssl.SSLContext:
    """Return a server context that presents ``certificate``.

    ``ssl`` loads keys only from files, so the chain and key are written to a
    private temporary directory (mode 0700), loaded, and deleted before this
    function returns. The versions bound what the server accepts; the
    defaults accept TLS 1.2 and 1.3.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = minimum_version
    context.maximum_version = maximum_version
    with tempfile.TemporaryDirectory(prefix="msgpass-tls-") as folder:
        chain_path = os.path.join(folder, "chain.pem")
        key_path = os.path.join(folder, "key.pem")
        for path, data in ((chain_path, certificate.chain_pem), (key_path, certificate.key_pem)):
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as file:
                file.write(data)
        context.load_cert_chain(chain_path, key_path)
    return context


# -- the client -----------------------------------------------------------


class TLSConnection(FramedConnection):
    """A ``FramedConnection`` over TLS, with what the handshake agreed on.

    ``connect`` returns one after a successful handshake, so the peer's
    certificate has been verified by the context's rules by the time the
    caller sees it.
    """

    _sock: ssl.SSLSocket

    @property
    def tls_version(self) -> str | None:
        """The protocol version the handshake agreed on, such as ``"TLSv1.3"``."""
        return self._sock.version()

    @property
    def cipher(self) -> str | None:
        """The name of the cipher suite in use, such as ``"TLS_AES_256_GCM_SHA384"``."""
        cipher = self._sock.cipher()
        return None if cipher is None else cipher[0]

    @property
    def server_hostname(self) -> str | None:
        """The name the certificate was checked against."""
        return self._sock.server_hostname

    def __repr__(self) -> str:
        return super().__repr__().replace("<FramedConnection", f"<TLSConnection {self.tls_version}")


def connect(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    context: ssl.SSLContext,
    server_hostname: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    nodelay: bool = False,
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
) -> TLSConnection:
    """Open a TCP connection, run the TLS handshake, and return a ``TLSConnection``.

    ``server_hostname`` is the name the certificate must contain and defaults
    to ``host``. ``timeout_s`` bounds the connection attempt plus the
    handshake, and is then the connection's default timeout. Raises
    ``CertificateVerificationError`` when ``context`` rejects the server's
    certificate, ``TLSError`` for other handshake failures (such as no
    common protocol version), ``ConnectionClosed`` when nothing listens and
    ``MessagingTimeout`` when the attempt takes too long::

        with connect(port=server.port, context=client_context(ca.cert_pem)) as conn:
            conn.send(b"ping")
    """
    if not isinstance(context, ssl.SSLContext):
        raise TypeError(f"context must be an ssl.SSLContext, got {context!r}")
    check_port(port, required=True)
    timeout = check_timeout(timeout_s)
    hostname = host if server_hostname is None else server_hostname
    deadline = None if timeout is None else time.monotonic() + timeout
    action = f"connect to {host}:{port}"
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except TimeoutError as error:
        raise MessagingTimeout(connect_timeout_message(action, timeout)) from error
    except OSError as error:
        raise translate_os_error(error, action) from error

    action = f"TLS handshake with {host}:{port} for {hostname!r}"
    try:
        if nodelay:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if deadline is not None:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
        # wrap_socket takes over the descriptor and closes it if the handshake fails.
        tls_sock = context.wrap_socket(sock, server_hostname=hostname)
    except TimeoutError as error:
        sock.close()
        raise MessagingTimeout(
            f"{action} timed out after {timeout} s: the server accepted the connection but "
            f"did not complete the handshake; check that it speaks TLS on that port"
        ) from error
    except OSError as error:
        sock.close()
        raise translate_os_error(error, action) from error
    try:
        conn = TLSConnection(tls_sock, max_frame_bytes=max_frame_bytes, timeout_s=timeout)
    except BaseException:
        tls_sock.close()
        raise
    log.debug("TLS %s to %s:%d, cipher %s", conn.tls_version, host, port, conn.cipher)
    return conn
