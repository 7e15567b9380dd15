# Exercise verify-tls-client: build a client SSLContext that trusts only the given CA
"""Trusts the CA but sets check_hostname to False, so a certificate for another host passes."""

import ssl


def make_client_context(ca_cert_pem: bytes) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(cadata=ca_cert_pem.decode("ascii"))
    return context
