# Exercise verify-tls-client: build a client SSLContext that trusts only the given CA
"""Uses ssl.create_default_context() without the given CA, so the good server is rejected."""

import ssl


def make_client_context(ca_cert_pem: bytes) -> ssl.SSLContext:
    return ssl.create_default_context()
