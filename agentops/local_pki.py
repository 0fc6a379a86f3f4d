"""The local control plane's throwaway PKI, and the admin kubeconfig that carries it.

``write_pki`` mints, into one directory, everything kube-apiserver and its clients need:

* ``ca.crt`` — the CA that signs the two certificates below (its key is not written:
  nothing here signs anything after start-up);
* ``apiserver.crt`` / ``apiserver.key`` — the serving certificate, valid for localhost,
  127.0.0.1 and the in-cluster names and first service IP of the ``kubernetes`` Service;
* ``admin.crt`` / ``admin.key`` — a client certificate in ``system:masters``;
* ``sa.key`` / ``sa.pub`` — the service-account token signing key pair.

Trade-offs, chosen on purpose: it is minted fresh on every start (nothing to rotate,
nothing left behind), TLS keys are ECDSA P-256 because generating them is near-instant
(unlike RSA), certificates are backdated an hour against clock skew and last a week
(a control plane lives for one test session or one demo), and every file is 0600.

``issue_certificate`` is the one place certificates are built, shared with the operator's
own serving certificate (``agentops_operator.cert_renewal``), which passes its own
validity.

``write_admin_kubeconfig`` sits here because it is how the admin credentials minted
here leave the directory: it embeds ``ca.crt``, ``admin.crt`` and ``admin.key`` into one
self-contained file. (kube-apiserver's flags in ``agentops.envtest`` name the files too.)
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CONTEXT = "agentops-envtest"


def pem_key(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def issue_certificate(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
    ca: bool = False,
    usage: x509.ObjectIdentifier | None = None,
    sans: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    """`subject`'s certificate for `key`, signed by `issuer_key` (self-signed when it is `key`)."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        # Key identifiers let a verifier pick the right issuer when two CAs are trusted at
        # once (the operator's CA rollover) and are required by strict RFC 5280 verifiers.
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        builder = builder.add_extension(
            x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True
        )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def write_pki(pki: Path) -> None:
    """Create the directory `pki` (it must not exist yet) and mint the files listed above into it."""
    pki.mkdir()
    now = datetime.datetime.now(datetime.timezone.utc)
    # Backdated an hour so clock skew between us and the apiserver cannot bite; a week
    # outlives any test session or demo.
    start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=7)
    # ECDSA P-256 for TLS: key generation is near-instant, unlike RSA.
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "agentops-envtest-ca")])
    ca = issue_certificate(ca_name, ca_key, ca_name, ca_key, ca=True, not_before=start, not_after=end)
    srv_key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        # In-cluster names and the first service IP, for anything that dials the Service.
        *(x509.DNSName(n) for n in ("kubernetes", "kubernetes.default", "kubernetes.default.svc",
                                     "kubernetes.default.svc.cluster.local")),
        x509.IPAddress(ipaddress.ip_address("10.0.0.1")),
    ]
    srv = issue_certificate(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]), srv_key, ca_name,
                            ca_key, usage=ExtendedKeyUsageOID.SERVER_AUTH, sans=sans,
                            not_before=start, not_after=end)
    adm_key = ec.generate_private_key(ec.SECP256R1())
    adm_name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
        x509.NameAttribute(NameOID.COMMON_NAME, "agentops-admin"),
    ])
    adm = issue_certificate(adm_name, adm_key, ca_name, ca_key, usage=ExtendedKeyUsageOID.CLIENT_AUTH,
                            not_before=start, not_after=end)
    # Service-account token signing wants RSA (RS256 is what every consumer accepts).
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    files = {
        "ca.crt": pem_cert(ca),
        "apiserver.crt": pem_cert(srv),
        "apiserver.key": pem_key(srv_key),
        "admin.crt": pem_cert(adm),
        "admin.key": pem_key(adm_key),
        "sa.key": pem_key(sa_key),
        "sa.pub": sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    }
    for name, data in files.items():
        (pki / name).write_bytes(data)
        (pki / name).chmod(0o600)


def write_admin_kubeconfig(pki: Path, server: str, path: Path) -> None:
    """Write to `path` a kubeconfig for `server` as the admin of the PKI in `pki` (context ``CONTEXT``)."""

    def b64(name: str) -> str:
        return base64.b64encode((pki / name).read_bytes()).decode()

    # Embedded data makes the file self-contained (copyable, usable from any cwd).
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": server, "certificate-authority-data": b64("ca.crt")}}],
        "users": [{"name": "agentops-admin",
                   "user": {"client-certificate-data": b64("admin.crt"), "client-key-data": b64("admin.key")}}],
        "contexts": [{"name": CONTEXT,
                      "context": {"cluster": CONTEXT, "user": "agentops-admin", "namespace": "default"}}],
        "current-context": CONTEXT,
        "preferences": {},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
