"""When the operator's serving certificate is renewed, and what replaces it (pure).

`decide` takes what the Secret holds, the policy and the time, and answers with the new
Secret data and the reason, or None when nothing needs to change. ``serving_cert`` does
the reading, writing and reloading; ``ca_bundle`` holds the CA's half of the decision.

A serving certificate is renewed when it is missing or unreadable, when its key does not
match, when the current CA did not issue it, when it does not name every required host,
when less than `renew_fraction` of its lifetime remains, or when the CA was renewed.
The fraction (1/3 by default, as cert-manager's default of renewing a 90-day certificate
30 days ahead) leaves a third of the lifetime for a failed renewal to be retried and seen.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agentops.local_pki import issue_certificate, pem_cert, pem_key
from agentops.times import format_time
from agentops_operator import ca_bundle
from agentops_operator.ca_bundle import BACKDATE, CaState

# The keys of a `kubernetes.io/tls` Secret as cert-manager writes them, plus our CA's key.
TLS_CRT, TLS_KEY, CA_CRT, CA_KEY = "tls.crt", "tls.key", "ca.crt", "ca.key"


def _host_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


@dataclass(frozen=True)
class CertPolicy:
    """What a serving certificate must name and how long it and its CA live."""

    hosts: tuple[str, ...]  # DNS names and IP literals, all in the certificate's SANs
    validity: timedelta = timedelta(days=90)
    ca_validity: timedelta = timedelta(days=5 * 365)
    renew_fraction: float = 1 / 3
    names: tuple[x509.GeneralName, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        hosts = tuple(h.strip().lower() for h in self.hosts)
        if not hosts or any(not h or not h.isascii() or " " in h for h in hosts):
            raise ValueError("hosts must be non-empty DNS names (ASCII, IDNA-encoded) or IP addresses, "
                             f"got {self.hosts!r}")
        if not 0 < self.renew_fraction < 1:
            raise ValueError(f"renew_fraction must be between 0 and 1, got {self.renew_fraction}")
        if self.validity <= timedelta(0) or self.ca_validity <= timedelta(0):
            raise ValueError(f"validities must be positive, got {self.validity} and {self.ca_validity}")
        object.__setattr__(self, "hosts", tuple(dict.fromkeys(hosts)))
        object.__setattr__(self, "names", tuple(_host_name(h) for h in self.hosts))


@dataclass(frozen=True)
class TlsMaterial:
    """A Secret's data, decoded: the served chain and key, the CA bundle, our CA's key (b"" if none)."""

    tls_crt: bytes
    tls_key: bytes
    ca_crt: bytes = b""
    ca_key: bytes = b""

    @classmethod
    def from_data(cls, data: Mapping[str, bytes]) -> TlsMaterial:
        return cls(data.get(TLS_CRT, b""), data.get(TLS_KEY, b""), data.get(CA_CRT, b""), data.get(CA_KEY, b""))

    def to_data(self) -> dict[str, bytes]:
        data = {TLS_CRT: self.tls_crt, TLS_KEY: self.tls_key, CA_CRT: self.ca_crt}
        return {**data, CA_KEY: self.ca_key} if self.ca_key else data


@dataclass(frozen=True)
class Renewal:
    material: TlsMaterial
    reason: str  # for the log line
    ca_renewed: bool


def uncovered_hosts(cert: x509.Certificate, policy: CertPolicy) -> list[str]:
    """The required hosts the certificate's SANs do not name (a `*.` wildcard covers one label)."""
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return list(policy.hosts)
    dns = {n.lower() for n in sans.get_values_for_type(x509.DNSName)}
    ips = set(sans.get_values_for_type(x509.IPAddress))
    missing = []
    for host, name in zip(policy.hosts, policy.names):
        if isinstance(name, x509.IPAddress):
            covered = name.value in ips
        else:
            covered = host in dns or ("." in host and "*." + host.split(".", 1)[1] in dns)
        if not covered:
            missing.append(host)
    return missing


def unusable(material: TlsMaterial) -> str | None:
    """Why `material` cannot be served at all (no certificate, no key, or a key of another certificate), or None."""
    chain = ca_bundle.load_certificates(material.tls_crt)
    if not chain:
        return "no certificate in tls.crt"
    key = ca_bundle.load_private_key(material.tls_key)
    if key is None:
        return "no private key in tls.key"
    if not ca_bundle.same_public_key(chain[0], key):
        return "tls.key does not match tls.crt"
    return None


def serving_reason(material: TlsMaterial, signer: x509.Certificate | None, policy: CertPolicy,
                   now: datetime) -> str | None:
    """Why the served certificate must be replaced now, or None (`signer`: the CA that must have issued it)."""
    problem = unusable(material)
    if problem is not None:
        return problem
    leaf = ca_bundle.load_certificates(material.tls_crt)[0]
    if signer is not None and not ca_bundle.issued_by(leaf, signer):
        return "tls.crt was not issued by the current CA"
    missing = uncovered_hosts(leaf, policy)
    if missing:
        return f"tls.crt does not name {', '.join(missing)}"
    if ca_bundle.due(leaf, now, policy.renew_fraction):
        return (f"tls.crt expires at {format_time(leaf.not_valid_after_utc)}, "
                f"less than {policy.renew_fraction:.0%} of its lifetime left")
    return None


def mint_serving(ca: CaState, policy: CertPolicy, now: datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A serving certificate for `policy.hosts`, issued by `ca`'s signer, never outliving it."""
    assert ca.signer is not None and ca.key is not None, "mint_serving needs a CA with its key"
    key = ec.generate_private_key(ec.SECP256R1())
    # Verifiers read the SANs; the CN is for humans and capped at 64 characters by X.509.
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, policy.hosts[0][:64])])
    cert = issue_certificate(subject, key, ca.signer.subject, ca.key, usage=ExtendedKeyUsageOID.SERVER_AUTH,
                             sans=list(policy.names), not_before=now - BACKDATE,
                             not_after=min(now + policy.validity, ca.signer.not_valid_after_utc))
    return cert, key


def decide(current: TlsMaterial | None, policy: CertPolicy, now: datetime, *, renew: bool = False,
           renew_ca: bool = False) -> Renewal | None:
    """The Secret data to write now and why, or None if `current` is fine (`renew`/`renew_ca` force one)."""
    material = current or TlsMaterial(b"", b"")
    ca = ca_bundle.read_ca(material.ca_crt, material.ca_key)
    ca_why = "a new CA was requested" if renew_ca else ca_bundle.renewal_reason(ca, now, policy.renew_fraction)
    cross: list[x509.Certificate]
    if ca_why is not None:
        ca, new_cross = ca_bundle.rollover(ca, now, policy.ca_validity)
        cross = [new_cross] if new_cross is not None else []
        why: str | None = f"new CA: {ca_why}"
    else:
        ca = ca_bundle.prune(ca, now)
        cross = ca_bundle.carried_cross_certificates(ca_bundle.load_certificates(material.tls_crt)[1:], ca, now)
        why = "a new certificate was requested" if renew else serving_reason(material, ca.signer, policy, now)
    if why is None:
        if ca.bundle_pem == material.ca_crt:
            return None
        return Renewal(replace(material, ca_crt=ca.bundle_pem), "expired CAs dropped from ca.crt", False)
    leaf, key = mint_serving(ca, policy, now)
    chain = b"".join(pem_cert(c) for c in (leaf, *cross))
    new = TlsMaterial(chain, pem_key(key), ca.bundle_pem, ca_bundle.ca_key_pem(ca))
    return Renewal(new, why, ca_why is not None)


def serving_expiry(tls_crt: bytes) -> datetime | None:
    chain = ca_bundle.load_certificates(tls_crt)
    return chain[0].not_valid_after_utc if chain else None
