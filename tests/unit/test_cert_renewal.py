"""The serving certificate's decisions (cert_renewal, ca_bundle), with the time passed in: no API server, no sleeps.

Chains are checked twice: by cryptography's strict RFC 5280 verifier, and by a real
OpenSSL handshake over memory buffers (the TLS stack the operator and sidecars use).
"""

from __future__ import annotations

import ipaddress
import ssl
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from agentops.local_pki import pem_cert, pem_key
from agentops_operator import ca_bundle
from agentops_operator.cert_renewal import (CertPolicy, Renewal, TlsMaterial, decide, serving_reason, uncovered_hosts,
                                            unusable)

T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)
HOSTS = ("agentops-operator.agentops.svc", "localhost", "127.0.0.1", "::1")
POLICY = CertPolicy(HOSTS)
# Short lifetimes for the rollover tests, so the days in them read easily: the CA is
# renewed from day 200 (100 of its 300 days left), a certificate from day 20 of its 30.
SHORT = CertPolicy(HOSTS, validity=timedelta(days=30), ca_validity=timedelta(days=300))


def days(n: float) -> timedelta:
    return timedelta(days=n)


def renewed(current: TlsMaterial | None, policy: CertPolicy = POLICY, now: datetime = T0, **force: bool) -> Renewal:
    renewal = decide(current, policy, now, **force)
    assert renewal is not None, "expected a renewal"
    return renewal


def leaf_of(material: TlsMaterial) -> x509.Certificate:
    return ca_bundle.load_certificates(material.tls_crt)[0]


def cas_of(material: TlsMaterial) -> list[x509.Certificate]:
    return ca_bundle.load_certificates(material.ca_crt)


def verify(material: TlsMaterial, roots: list[x509.Certificate], now: datetime, host: str = "localhost") -> None:
    """Raise VerificationError unless the served chain verifies for `host` against `roots` (cryptography's verifier)."""
    chain = ca_bundle.load_certificates(material.tls_crt)
    try:
        name: x509.verification.Subject = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        name = x509.DNSName(host)
    verifier = PolicyBuilder().store(Store(roots)).time(now).build_server_verifier(name)
    verifier.verify(chain[0], chain[1:])


def handshake(material: TlsMaterial, roots: list[x509.Certificate], tmp_path: Path) -> None:
    """A TLS handshake over memory buffers, server serving `material`, client trusting `roots`; raises if refused."""
    (tmp_path / "tls.crt").write_bytes(material.tls_crt)
    (tmp_path / "tls.key").write_bytes(material.tls_key)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    client = ssl.create_default_context(cadata=b"".join(pem_cert(c) for c in roots).decode())
    client.verify_flags |= ssl.VERIFY_X509_STRICT  # what Python 3.13's default context does
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    c = client.wrap_bio(c_in, c_out, server_hostname="localhost")
    s = server.wrap_bio(s_in, s_out, server_side=True)
    done: set[str] = set()
    for _ in range(10):  # a TLS 1.3 handshake takes two round trips
        for name, side in (("client", c), ("server", s)):
            if name not in done:
                try:
                    side.do_handshake()
                    done.add(name)
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if done == {"client", "server"}:
            return
    raise AssertionError("the handshake did not finish")


# --- the policy ---


def test_policy_normalises_hosts_and_refuses_nonsense() -> None:
    assert CertPolicy(("Op.NS.svc", "op.ns.svc", "10.0.0.1")).hosts == ("op.ns.svc", "10.0.0.1")
    for bad in ((), ("",), ("bücher.example",), ("two words",)):
        with pytest.raises(ValueError, match="hosts"):
            CertPolicy(bad)
    for fraction in (0.0, 1.0):
        with pytest.raises(ValueError, match="renew_fraction"):
            CertPolicy(HOSTS, renew_fraction=fraction)


# --- minting ---


def test_the_first_decision_mints_a_ca_and_a_certificate_naming_every_host() -> None:
    renewal = renewed(None)
    material = renewal.material
    assert renewal.ca_renewed and renewal.reason == "new CA: no CA yet"
    assert set(material.to_data()) == {"tls.crt", "tls.key", "ca.crt", "ca.key"}
    leaf, [ca] = leaf_of(material), cas_of(material)
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["agentops-operator.agentops.svc", "localhost"]
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    assert uncovered_hosts(leaf, POLICY) == []
    for host in HOSTS:
        verify(material, [ca], T0, host)
    # Backdated 5 minutes against clock skew; 90 days; the CA 5 years.
    assert leaf.not_valid_before_utc == T0 - timedelta(minutes=5) and leaf.not_valid_after_utc == T0 + days(90)
    assert ca.not_valid_after_utc == T0 + days(5 * 365)
    key = ca_bundle.load_ec_key(material.ca_key)
    assert key is not None and ca_bundle.same_public_key(ca, key)
    assert unusable(material) is None and decide(material, POLICY, T0) is None


def test_a_certificate_is_not_renewed_until_less_than_its_fraction_of_life_remains() -> None:
    material = renewed(None).material
    # A lifetime of 90 days and 5 minutes; a third of it is 30 days and 100 seconds.
    renew_from = T0 + days(90) - (days(90) + timedelta(minutes=5)) / 3
    assert decide(material, POLICY, renew_from - timedelta(seconds=1)) is None
    renewal = renewed(material, now=renew_from)
    assert not renewal.ca_renewed and "less than 33% of its lifetime left" in renewal.reason
    assert renewal.material.ca_crt == material.ca_crt and renewal.material.ca_key == material.ca_key
    assert leaf_of(renewal.material).not_valid_after_utc == renew_from + days(90)
    half = CertPolicy(HOSTS, renew_fraction=0.5)
    assert decide(material, half, T0 + days(44)) is None
    assert decide(material, half, T0 + days(46)) is not None


def test_an_expired_certificate_is_renewed() -> None:
    material = renewed(None).material
    renewal = renewed(material, now=T0 + days(100))
    verify(renewal.material, cas_of(material), T0 + days(100))


def test_a_new_host_renews_the_certificate_and_a_dropped_one_does_not() -> None:
    material = renewed(None).material
    more = CertPolicy((*HOSTS, "agentops-operator.agentops.svc.cluster.local", "10.96.0.10"))
    renewal = renewed(material, more, T0 + days(1))
    assert renewal.reason == "tls.crt does not name agentops-operator.agentops.svc.cluster.local, 10.96.0.10"
    assert uncovered_hosts(leaf_of(renewal.material), more) == []
    assert decide(material, CertPolicy(("localhost",)), T0 + days(1)) is None


def test_a_key_of_another_certificate_or_unreadable_material_renews() -> None:
    first, second = renewed(None).material, renewed(None).material
    mixed = TlsMaterial(first.tls_crt, second.tls_key, first.ca_crt, first.ca_key)
    assert unusable(mixed) == "tls.key does not match tls.crt"
    assert renewed(mixed).reason == "tls.key does not match tls.crt"
    for broken, why in ((TlsMaterial(b"junk", first.tls_key, first.ca_crt, first.ca_key), "no certificate in tls.crt"),
                        (TlsMaterial(first.tls_crt, b"", first.ca_crt, first.ca_key), "no private key in tls.key")):
        assert serving_reason(broken, cas_of(first)[0], POLICY, T0) == why
        assert not renewed(broken).ca_renewed  # the CA is fine: only the certificate is replaced


def test_a_certificate_the_current_ca_did_not_issue_is_renewed() -> None:
    first, second = renewed(None).material, renewed(None).material
    foreign = TlsMaterial(second.tls_crt, second.tls_key, first.ca_crt, first.ca_key)
    renewal = renewed(foreign)
    assert renewal.reason == "tls.crt was not issued by the current CA"
    assert ca_bundle.issued_by(leaf_of(renewal.material), cas_of(first)[0])


def test_renewal_on_request_keeps_the_ca_and_a_new_ca_on_request_replaces_it() -> None:
    material = renewed(None).material
    again = renewed(material, renew=True).material
    assert leaf_of(again).serial_number != leaf_of(material).serial_number and again.ca_crt == material.ca_crt
    rolled = renewed(material, renew_ca=True)
    assert rolled.ca_renewed and len(cas_of(rolled.material)) == 2


# --- the CA's rollover ---


def test_a_ca_rollover_bundles_both_cas_and_every_client_still_verifies(tmp_path: Path) -> None:
    # OpenSSL checks validity against the real clock: the rollover happens now.
    at = datetime.now(timezone.utc).replace(microsecond=0)
    begin = at - days(201)
    start = renewed(None, SHORT, begin).material
    [old_ca] = cas_of(start)
    assert decide(start, SHORT, begin + days(19)) is None  # the certificate is renewed from day 20 of its 30
    assert not renewed(start, SHORT, begin + days(21)).ca_renewed
    assert not renewed(start, SHORT, begin + days(199)).ca_renewed
    renewal = renewed(start, SHORT, at)
    assert renewal.ca_renewed and "less than 33% of its lifetime left" in renewal.reason
    new_ca, kept = cas_of(renewal.material)
    assert kept == old_ca and new_ca.subject != old_ca.subject
    assert ca_bundle.issued_by(leaf_of(renewal.material), new_ca)
    key = ca_bundle.load_ec_key(renewal.material.ca_key)
    assert key is not None and ca_bundle.same_public_key(new_ca, key)
    # A sidecar that has only the old bundle, one that has only the new CA, one with both.
    for roots in ([old_ca], [new_ca], [new_ca, old_ca]):
        verify(renewal.material, roots, at)
        handshake(renewal.material, roots, tmp_path)
    # The served chain carries the new CA cross-signed by the old one, for as long as the old one lives.
    [cross] = ca_bundle.load_certificates(renewal.material.tls_crt)[1:]
    assert ca_bundle.issued_by(cross, old_ca) and cross.not_valid_after_utc == old_ca.not_valid_after_utc
    # A stranger's CA is refused, as ever.
    stranger = cas_of(renewed(None, SHORT, begin).material)
    with pytest.raises(VerificationError):
        verify(renewal.material, stranger, at)
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer certificate"):
        handshake(renewal.material, stranger, tmp_path)


def test_the_bundle_drops_the_old_ca_once_it_has_expired() -> None:
    start = renewed(None, SHORT).material
    [old_ca] = cas_of(start)
    rolled = renewed(start, SHORT, T0 + days(201)).material
    new_ca = cas_of(rolled)[0]
    # Renewed after the rollover, before the old CA expires: the cross-signed certificate is carried over.
    late = T0 + days(290)
    renewal = renewed(rolled, SHORT, late, renew=True)
    assert len(ca_bundle.load_certificates(renewal.material.tls_crt)) == 2
    verify(renewal.material, [old_ca], late)
    # A day after the old CA expired, with a fresh certificate: only the bundle changes.
    after = old_ca.not_valid_after_utc + days(1)
    dropped = renewed(renewal.material, SHORT, after)
    assert dropped.reason == "expired CAs dropped from ca.crt" and not dropped.ca_renewed
    assert cas_of(dropped.material) == [new_ca]
    assert dropped.material.tls_crt == renewal.material.tls_crt
    assert decide(dropped.material, SHORT, after) is None
    # The next certificate no longer carries the expired cross-signed one.
    nxt = renewed(dropped.material, SHORT, after, renew=True).material
    assert len(ca_bundle.load_certificates(nxt.tls_crt)) == 1
    verify(nxt, [new_ca], after)


def test_a_lost_ca_key_mints_a_new_ca_and_keeps_the_old_ca_trusted() -> None:
    material = renewed(None).material
    without_key = TlsMaterial(material.tls_crt, material.tls_key, material.ca_crt)
    renewal = renewed(without_key, now=T0 + days(1))
    assert renewal.ca_renewed and renewal.reason == "new CA: no ca.key (or not an ECDSA key)"
    new_ca, old_ca = cas_of(renewal.material)
    assert old_ca == cas_of(material)[0]
    # Nothing vouches for the new CA (the old key is lost), so only a new bundle verifies it.
    assert len(ca_bundle.load_certificates(renewal.material.tls_crt)) == 1
    verify(renewal.material, [new_ca], T0 + days(1))


# --- certificates from elsewhere (cert-manager) ---


def _rsa_certificate(sans: list[x509.GeneralName]) -> TlsMaterial:
    """A self-signed RSA certificate, as cert-manager's default key algorithm makes."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "external")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(T0).not_valid_after(T0 + days(90))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False).sign(key, hashes.SHA256()))
    return TlsMaterial(pem_cert(cert), pem_key(key), pem_cert(cert))


def test_an_rsa_certificate_is_usable_and_a_wildcard_covers_one_label() -> None:
    material = _rsa_certificate([x509.DNSName("*.agentops.svc")])
    assert unusable(material) is None
    policy = CertPolicy(("agentops-operator.agentops.svc", "a.b.agentops.svc", "agentops.svc", "127.0.0.1"))
    assert uncovered_hosts(leaf_of(material), policy) == ["a.b.agentops.svc", "agentops.svc", "127.0.0.1"]
