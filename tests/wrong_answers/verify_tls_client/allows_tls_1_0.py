# Exercise verify-tls-client: build a client SSLContext that trusts only the given CA
"""Lowers minimum_version to TLS 1.0 and the security level to 0, so TLS 1.1 is accepted."""

import ssl
import warnings


def make_client_context(ca_cert_pem: bytes) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.load_verify_locations(cadata=ca_cert_pem.decode("ascii"))
    return context
