"""TLS certificates for the ingress: Secrets checked, names matched, a default made.

A `kubernetes.io/tls` Secret is only as good as what is in it: `tls.crt`
must hold a PEM certificate, `tls.key` a PEM private key, and the key must
be the certificate's.  `parse_secret` checks exactly that and returns the
PEM nginx needs (chain, then key, in one file) with the DNS names the
certificate covers; anything else raises `InvalidCertificate` with a
sentence the controller puts in an Event.  `covers` is the hostname check
(RFC 6125 wildcards: `*.foo.com` stands for one label).

`default_certificate` makes the self-signed certificate ingress-nginx
serves when no Secret applies ("Kubernetes Ingress Controller Fake
Certificate"), so a TLS client without SNI, or on a host without a valid
Secret, still completes a handshake.  Nothing here touches files.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

FAKE_CN = "Kubernetes Ingress Controller Fake Certificate"
FAKE_ORG = "Acme Co"


class InvalidCertificate(ValueError):
    """The Secret does not hold a usable certificate and key."""


@dataclass(frozen=True)
class Certificate:
    """What nginx loads (`pem`: certificate chain, then key) and what it is for."""

    pem: str
    names: tuple[str, ...]
    not_after: dt.datetime


def _field(data: dict[str, Any], key: str) -> bytes:
    raw = data.get(key)
    if not raw:
        raise InvalidCertificate(f"the Secret has no {key}")
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidCertificate(f"{key} is not base64") from None


def _names(cert: x509.Certificate) -> tuple[str, ...]:
    """SAN DNS names, else the CN (as ingress-nginx still accepts)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = tuple(n.lower() for n in san.get_values_for_type(x509.DNSName))
        if dns:
            return dns
    except x509.ExtensionNotFound:
        pass
    return tuple(str(a.value).lower() for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME))


def parse_secret(secret: dict[str, Any]) -> Certificate:
    """The certificate in a TLS Secret, or InvalidCertificate saying what is wrong."""
    data = secret.get("data") or {}
    crt, key = _field(data, "tls.crt"), _field(data, "tls.key")
    try:
        chain = x509.load_pem_x509_certificates(crt)
    except ValueError:
        raise InvalidCertificate("tls.crt does not hold a PEM certificate") from None
    if not chain:
        raise InvalidCertificate("tls.crt does not hold a PEM certificate")
    try:
        private = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError):
        raise InvalidCertificate("tls.key does not hold an unencrypted PEM private key") from None
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if private.public_key().public_bytes(der, spki) != chain[0].public_key().public_bytes(der, spki):
        raise InvalidCertificate("tls.key is not the private key of the certificate in tls.crt")
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain) + key
    if not pem.endswith(b"\n"):
        pem += b"\n"
    return Certificate(pem.decode(), _names(chain[0]), chain[0].not_valid_after_utc)


def covers(names: tuple[str, ...], host: str) -> bool:
    """Does a certificate for `names` serve `host`?  A `*.` name covers one label."""
    host = host.lower().rstrip(".")
    for name in names:
        if name == host:
            return True
        if name.startswith("*."):
            label, _, rest = host.partition(".")
            if label and label != "*" and rest == name[2:]:
                return True
    return False


def default_certificate(now: dt.datetime | None = None) -> Certificate:
    """A fresh self-signed certificate as ingress-nginx's default (valid a year)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, FAKE_ORG),
                      x509.NameAttribute(NameOID.COMMON_NAME, FAKE_CN)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("ingress.local")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return Certificate(pem.decode(), ("ingress.local",), cert.not_valid_after_utc)
