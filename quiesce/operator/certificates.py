"""The webhook's serving certificate and CA: generated, checked and rotated with ``cryptography``.

Every operator replica serves admissions (the API server reaches any of them
through the Service), so they must all present a certificate the
MutatingWebhookConfiguration's ``caBundle`` trusts: the certificate, its key
and the CA live in one Secret that all replicas read. kopf's own self-signed
helper is not used: it depends on oscrypto, which breaks on OpenSSL >= 3.0.10.

Two sources (design: "Webhook certificates"):

- generated (default): the first replica to find the Secret missing, broken
  or near expiry writes a new one (a create, or an update carrying the
  resourceVersion it read, so two replicas never both win); the others pick
  it up on their next read. A serving certificate is renewed from the same
  CA (the ``caBundle`` does not change); a new CA is only made when the old
  one is unusable, and the bundle then trusts the old and the new CA, so a
  replica still serving the old certificate keeps working.
- provided: a Secret someone else keeps (cert-manager's ``Certificate``
  writes ``tls.crt``, ``tls.key``, ``ca.crt``); quiesce reads it, checks it and
  reports problems, and never writes it.

The functions here are pure (PEM in, PEM or problems out); the I/O lives in
:mod:`quiesce.operator.webhook`.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
from collections.abc import Sequence
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

TLS_CERT: Final = "tls.crt"
TLS_KEY: Final = "tls.key"
CA_CERT: Final = "ca.crt"
CA_KEY: Final = "ca.key"

#: A CA lives ten years: replacing it is the disruptive part, so it is rare.
CA_VALIDITY: Final = datetime.timedelta(days=3650)
#: A serving certificate lives a year by default; renewed from the same CA.
CERT_VALIDITY: Final = datetime.timedelta(days=365)
#: Renew when less than this share of the lifetime is left (as cert-manager's default 2/3).
RENEW_FRACTION: Final = 1 / 3
#: Certificates are valid from slightly in the past: clocks of API servers differ.
BACKDATE: Final = datetime.timedelta(minutes=5)


@dataclasses.dataclass(frozen=True)
class Bundle:
    """What the Secret holds: the CA bundle (one or more PEM certificates), the serving
    certificate and key, and the CA's key when quiesce generated it."""

    ca: bytes
    cert: bytes
    key: bytes
    ca_key: bytes | None = None

    def as_secret_data(self) -> dict[str, bytes]:
        data = {CA_CERT: self.ca, TLS_CERT: self.cert, TLS_KEY: self.key}
        if self.ca_key is not None:
            data[CA_KEY] = self.ca_key
        return data

    @classmethod
    def from_secret_data(cls, data: dict[str, bytes]) -> Bundle | None:
        if not all(data.get(key) for key in (TLS_CERT, TLS_KEY)):
            return None
        # cert-manager leaves ca.crt empty for some issuers: the chain's last certificate is then
        # the best guess, and check() says whether it verifies.
        ca = data.get(CA_CERT) or data[TLS_CERT]
        return cls(ca=ca, cert=data[TLS_CERT], key=data[TLS_KEY], ca_key=data.get(CA_KEY) or None)


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The result of :func:`check`: problems make the bundle unusable, ``renew`` asks for a
    new serving certificate, ``expires`` is when the serving certificate stops working."""

    problems: tuple[str, ...]
    renew: bool
    ca_usable: bool
    expires: datetime.datetime | None

    @property
    def ok(self) -> bool:
        return not self.problems and not self.renew


def _key() -> ec.EllipticCurvePrivateKey:
    # P-256: fast to generate (milliseconds, unlike RSA), accepted by every API server.
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def generate_ca(
    now: datetime.datetime, *, validity: datetime.timedelta = CA_VALIDITY
) -> tuple[bytes, bytes]:
    """A new self-signed CA: (certificate PEM, key PEM)."""
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"quiesce-webhook-ca-{now:%Y%m%d}")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def issue(
    ca_cert: bytes,
    ca_key: bytes,
    hosts: Sequence[str],
    now: datetime.datetime,
    *,
    validity: datetime.timedelta = CERT_VALIDITY,
) -> tuple[bytes, bytes]:
    """A serving certificate for ``hosts`` (DNS names or IPs) signed by the CA."""
    if not hosts:
        raise ValueError("a serving certificate needs at least one host name or address")
    ca = x509.load_pem_x509_certificate(_first_pem(ca_cert))
    signer = serialization.load_pem_private_key(ca_key, password=None)
    if not isinstance(signer, ec.EllipticCurvePrivateKey):
        raise ValueError("the CA key is not an EC key")
    key = _key()
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    not_after = min(now + validity, ca.not_valid_after_utc)
    # Short lifetimes (tests, aggressive rotation) keep their renewal point: the backdating
    # counts into the lifetime that RENEW_FRACTION is a share of.
    backdate = min(BACKDATE, validity / 4)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - backdate)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(signer, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def generate(
    hosts: Sequence[str],
    now: datetime.datetime,
    *,
    previous: Bundle | None = None,
    validity: datetime.timedelta = CERT_VALIDITY,
) -> Bundle:
    """The next bundle: a new serving certificate from the previous CA when it is usable,
    else from a new CA that the bundle trusts next to the previous one (if still valid)."""
    if previous is not None and previous.ca_key is not None and _ca_usable(previous, now):
        cert, key = issue(previous.ca, previous.ca_key, hosts, now, validity=validity)
        return Bundle(ca=previous.ca, cert=cert, key=key, ca_key=previous.ca_key)
    ca_cert, ca_key = generate_ca(now)
    cert, key = issue(ca_cert, ca_key, hosts, now, validity=validity)
    bundle = ca_cert
    if previous is not None:
        # Keep trusting the old CA's certificates still served by replicas that did not
        # reload yet; they are dropped at the CA's next replacement.
        for old in split_pem(previous.ca):
            try:
                if x509.load_pem_x509_certificate(old).not_valid_after_utc > now:
                    bundle += old
            except ValueError:
                continue
    return Bundle(ca=bundle, cert=cert, key=key, ca_key=ca_key)


def check(bundle: Bundle, hosts: Sequence[str], now: datetime.datetime) -> Verdict:
    """Is the bundle usable for ``hosts`` at ``now``, and is it time to renew?"""
    problems: list[str] = []
    try:
        cert = x509.load_pem_x509_certificate(_first_pem(bundle.cert))
    except ValueError as exc:
        return Verdict((f"{TLS_CERT} is not a PEM certificate: {exc}",), True, False, None)
    expires = cert.not_valid_after_utc
    ca_usable = _ca_usable(bundle, now)
    if now >= expires:
        problems.append(f"the serving certificate expired at {expires:%Y-%m-%d %H:%M:%S} UTC")
    if now < cert.not_valid_before_utc:
        problems.append(
            f"the serving certificate is not valid before "
            f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC"
        )
    try:
        key = serialization.load_pem_private_key(bundle.key, password=None)
        if key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ) != cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ):
            problems.append(f"{TLS_KEY} does not belong to {TLS_CERT}")
    except (ValueError, TypeError) as exc:
        problems.append(f"{TLS_KEY} is not a PEM private key: {exc}")
    if not _signed_by_bundle(cert, bundle.ca):
        problems.append(f"the serving certificate is not signed by a CA in {CA_CERT}")
    missing = [host for host in hosts if not _covers(cert, host)]
    if missing:
        problems.append(f"the serving certificate does not name {', '.join(missing)}")
    lifetime = expires - cert.not_valid_before_utc
    renew = bool(problems) or (expires - now) < lifetime * RENEW_FRACTION
    return Verdict(tuple(problems), renew, ca_usable, expires)


def split_pem(data: bytes) -> list[bytes]:
    """Each PEM certificate block of a bundle."""
    end = b"-----END CERTIFICATE-----"
    blocks = []
    for part in data.split(end):
        start = part.find(b"-----BEGIN CERTIFICATE-----")
        if start >= 0:
            blocks.append(part[start:] + end + b"\n")
    return blocks


def serial(cert_pem: bytes) -> int:
    """The serving certificate's serial number (for logs and tests)."""
    return int(x509.load_pem_x509_certificate(_first_pem(cert_pem)).serial_number)


def _first_pem(data: bytes) -> bytes:
    blocks = split_pem(data)
    return blocks[0] if blocks else data


def _ca_usable(bundle: Bundle, now: datetime.datetime) -> bool:
    """The newest CA of the bundle can still sign for a full renewal period."""
    blocks = split_pem(bundle.ca)
    if not blocks or bundle.ca_key is None:
        return False
    try:
        ca = x509.load_pem_x509_certificate(blocks[0])
        key = serialization.load_pem_private_key(bundle.ca_key, password=None)
    except (ValueError, TypeError):
        return False
    same_key = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == ca.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    lifetime = ca.not_valid_after_utc - ca.not_valid_before_utc
    return same_key and (ca.not_valid_after_utc - now) > lifetime * RENEW_FRACTION


def _signed_by_bundle(cert: x509.Certificate, ca_pem: bytes) -> bool:
    for block in split_pem(ca_pem):
        try:
            cert.verify_directly_issued_by(x509.load_pem_x509_certificate(block))
            return True
        except (ValueError, TypeError, Exception):  # InvalidSignature is not a ValueError
            continue
    return False


def _covers(cert: x509.Certificate, host: str) -> bool:
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host in sans.get_values_for_type(x509.DNSName)
    return address in sans.get_values_for_type(x509.IPAddress)
