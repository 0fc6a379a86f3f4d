"""The operator's own CA: which one signs, when it is renewed, and the bundle sidecars trust.

Pure functions of the Secret's ``ca.crt`` / ``ca.key`` / ``tls.crt`` and a time passed in;
the Secret itself is read and written by ``serving_cert``.

A CA rollover must not break sidecars that still trust only the old CA (their copy of
the bundle is a mounted ConfigMap and arrives late). So a rollover does three things:

* ``ca.crt`` becomes NEW + every OLD CA that has not expired (a bundle, newest first),
  and stays that way until the old one expires;
* ``ca.key`` is the new CA's key, and new serving certificates are issued by it;
* the new CA is cross-signed by the old CA's key, and that certificate is served after
  the serving certificate, so a client that trusts only the old CA still builds a chain
  (leaf → new CA, cross-signed → old CA) while a client with the new bundle stops at the
  new CA. The cross-signed certificate lives as long as the old CA, and is carried over
  to later serving certificates until then.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import NameOID

from agentops.local_pki import issue_certificate, pem_cert, pem_key
from agentops.times import format_time

# Every certificate starts this long before it is minted: the replicas, the sidecars'
# nodes and the API server do not share one clock.
BACKDATE = timedelta(minutes=5)


@dataclass(frozen=True)
class CaState:
    """The CAs of one Secret: `bundle` is ``ca.crt`` (newest first); `signer` is the one ``ca.key`` belongs to."""

    bundle: tuple[x509.Certificate, ...]
    signer: x509.Certificate | None
    key: ec.EllipticCurvePrivateKey | None
    problem: str | None = None  # why there is no signer, for the log

    @property
    def bundle_pem(self) -> bytes:
        return b"".join(pem_cert(c) for c in self.bundle)


def load_certificates(pem: bytes) -> list[x509.Certificate]:
    """Every certificate in `pem`; [] when there is none or it is not PEM."""
    try:
        return x509.load_pem_x509_certificates(pem)
    except ValueError:
        return []


def load_private_key(pem: bytes) -> PrivateKeyTypes | None:
    """The private key in `pem` (any kind: cert-manager's default is RSA); None when absent or unreadable."""
    try:
        return serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return None


def load_ec_key(pem: bytes) -> ec.EllipticCurvePrivateKey | None:
    """The ECDSA private key in `pem` (what our CA signs with); None when absent, unreadable or of another kind."""
    key = load_private_key(pem)
    return key if isinstance(key, ec.EllipticCurvePrivateKey) else None


def same_public_key(cert: x509.Certificate, key: PrivateKeyTypes) -> bool:
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return cert.public_key().public_bytes(*spki) == key.public_key().public_bytes(*spki)


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def due(cert: x509.Certificate, now: datetime, fraction: float) -> bool:
    """True when less than `fraction` of the certificate's lifetime remains (or it has expired)."""
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    return now >= end - (end - start) * fraction


def read_ca(ca_crt: bytes, ca_key: bytes) -> CaState:
    """The CA state a Secret's ``ca.crt`` and ``ca.key`` hold (unreadable parts count as absent)."""
    bundle = tuple(load_certificates(ca_crt))
    key = load_ec_key(ca_key)
    if not bundle and not ca_key:
        return CaState(bundle, None, None, "no CA yet")
    if key is None:
        return CaState(bundle, None, None, "no ca.key (or not an ECDSA key)")
    signer = next((c for c in bundle if same_public_key(c, key) and _is_ca(c)), None)
    if signer is None:
        return CaState(bundle, None, None, "ca.key belongs to no CA certificate in ca.crt")
    return CaState(bundle, signer, key)


def renewal_reason(ca: CaState, now: datetime, fraction: float) -> str | None:
    """Why a new CA is needed now, or None while the signer has more than `fraction` of its life left."""
    if ca.signer is None:
        return ca.problem or "no CA"
    if due(ca.signer, now, fraction):
        return (f"the CA expires at {format_time(ca.signer.not_valid_after_utc)}, "
                f"less than {fraction:.0%} of its lifetime left")
    return None


def prune(ca: CaState, now: datetime) -> CaState:
    """`ca` without the CAs that have expired (the signer is never one: it is renewed long before)."""
    kept = tuple(c for c in ca.bundle if c.not_valid_after_utc > now or c is ca.signer)
    return CaState(kept, ca.signer, ca.key, ca.problem)


def rollover(old: CaState, now: datetime, validity: timedelta) -> tuple[CaState, x509.Certificate | None]:
    """A new CA that signs from now on, its bundle with the old CAs still valid, and its cross-signed certificate.

    The cross-signed certificate (the new CA issued by the old signer) is None when there
    is no old signer to vouch for it (first start, or a lost ``ca.key``).
    """
    key = ec.generate_private_key(ec.SECP256R1())
    # A name of its own per CA (date for humans, random for uniqueness): two CAs trusted at
    # once must not share a subject, or a verifier may pick the wrong one as the issuer.
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "AgentOps"),
        x509.NameAttribute(NameOID.COMMON_NAME, f"agentops-operator CA {now:%Y-%m-%d} {secrets.token_hex(4)}"),
    ])
    cert = issue_certificate(name, key, name, key, ca=True, not_before=now - BACKDATE, not_after=now + validity)
    old_ones = tuple(c for c in old.bundle if c.not_valid_after_utc > now)
    cross = None
    if old.signer is not None and old.key is not None and old.signer.not_valid_after_utc > now:
        cross = issue_certificate(name, key, old.signer.subject, old.key, ca=True, not_before=now - BACKDATE,
                                  not_after=old.signer.not_valid_after_utc)
    return CaState((cert, *old_ones), cert, key), cross


def carried_cross_certificates(chain_tail: Iterable[x509.Certificate], ca: CaState,
                               now: datetime) -> list[x509.Certificate]:
    """The cross-signed certificates of `ca`'s signer in a served chain that still count (valid, issuer trusted)."""
    if ca.signer is None:
        return []
    trusted = {c.subject for c in ca.bundle}
    return [c for c in chain_tail
            if c.subject == ca.signer.subject and c.public_key() == ca.signer.public_key()
            and c.issuer != c.subject and c.issuer in trusted and c.not_valid_after_utc > now]


def ca_key_pem(ca: CaState) -> bytes:
    return pem_key(ca.key) if ca.key is not None else b""


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False

