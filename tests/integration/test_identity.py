"""Workload identity on the sidecar API, with real tokens from the real API server.

Kubernetes callers carry ServiceAccount tokens minted by TokenRequest (`kubectl create
token`, as the kubelet gets a projected one) and are verified by TokenReview; Cloud Run
callers carry ID tokens signed by a key this test holds, whose certificate a local
server publishes the way Google's certificate endpoint does. Every refusal is checked
to change nothing: the Agent's status stays as it was.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import requests
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from google.auth import crypt
from google.auth import jwt as google_jwt
from operator_harness import (AUDIENCE, Kube, OperatorProcess, agent_manifest, fault_manifest, free_port, mint_token, report,
                              wait_for)
from sidecar_harness import SidecarProcess
from upstream_agent import UpstreamAgent

from agentops.local_pki import issue_certificate, pem_cert, pem_key

pytestmark = pytest.mark.timeout(180)

ARGS = ("--status-heartbeat", "2s", "--lease", "10s")


def post(op: OperatorProcess, token: str | None, body: dict[str, Any]) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return op.post("/v1/telemetry", json=body, headers=headers)


def assignments(op: OperatorProcess, token: str, namespace: str, agent: str) -> requests.Response:
    return op.get(f"/v1/assignments/{namespace}/{agent}", headers={"Authorization": f"Bearer {token}"})


def status_of(kube: Kube, agent: str) -> dict[str, Any]:
    return kube.status("agent", agent)


@pytest.fixture
def other_namespace(make_namespace: Callable[[], str]) -> str:
    return make_namespace()


# ---------------------------------------------------------------- Kubernetes ServiceAccounts


def test_a_service_account_speaks_only_for_agents_of_its_own_namespace(
        cluster: Any, namespace: str, other_namespace: str, start_operator: Callable[..., OperatorProcess], kube: Kube) -> None:
    other = Kube(cluster, other_namespace)
    kube.apply(agent_manifest("chat"))
    other.apply(agent_manifest("chat"))
    op = start_operator("--namespace", other_namespace, *ARGS)
    ours = mint_token(cluster, namespace, "chat-sidecar")

    assert post(op, ours, report("chat", namespace)).status_code == 202
    assert assignments(op, ours, namespace, "chat").status_code == 200
    wait_for(lambda: status_of(kube, "chat").get("phase") == "Healthy", what="our chat Healthy")

    theirs_before = status_of(other, "chat")
    for response in (post(op, ours, report("chat", other_namespace, errors=20)), assignments(op, ours, other_namespace, "chat")):
        assert response.status_code == 403, response.text
        message = response.json()["error"]
        assert f"ServiceAccount {namespace}/chat-sidecar" in message and "own namespace" in message, message
    # A 403 even for an Agent that does not exist there: another namespace learns nothing.
    assert assignments(op, ours, other_namespace, "nobody").status_code == 403
    assert op.metric("agentops_api_refusals_total", reason="namespace_mismatch") == 3
    # The refused report changed nothing; the refusal is on record where B's owners look.
    wait_for(lambda: "CallerRefused" in other.event_reasons("chat"), what="a CallerRefused Event on their chat")
    assert status_of(other, "chat") == theirs_before
    (event,) = [e for e in other.events("chat") if e["reason"] == "CallerRefused"]
    assert event["type"] == "Warning" and namespace in event["message"]


def test_an_agent_listing_its_service_accounts_hears_only_them(
        cluster: Any, namespace: str, start_operator: Callable[..., OperatorProcess], kube: Kube) -> None:
    body = json.loads(agent_manifest("chat"))
    body["spec"]["identity"] = {"serviceAccounts": ["chat-sidecar"]}
    kube.apply(json.dumps(body))
    op = start_operator()
    allowed, stranger = mint_token(cluster, namespace, "chat-sidecar"), mint_token(cluster, namespace, "batch-job")
    before = status_of(kube, "chat")
    refused = post(op, stranger, report("chat", namespace))
    assert refused.status_code == 403, refused.text
    assert "not in its spec.identity.serviceAccounts [chat-sidecar]" in refused.json()["error"]
    assert assignments(op, stranger, namespace, "chat").status_code == 403
    assert op.metric("agentops_api_refusals_total", reason="service_account_not_allowed") == 2
    time.sleep(1)  # a report, had it been taken, is written within the status heartbeat's first pass
    assert status_of(kube, "chat") == before
    assert post(op, allowed, report("chat", namespace)).status_code == 202
    assert assignments(op, allowed, namespace, "chat").status_code == 200


def _signed_service_account_token(cluster: Any, namespace: str, account: dict[str, Any], *, expired: bool) -> str:
    """A ServiceAccount token signed by the API server's own key — past its expiry — as TokenRequest would have made it."""
    assert cluster.pki is not None
    signer = crypt.RSASigner.from_string((cluster.pki / "sa.key").read_text())
    now = int(time.time())
    exp, iat = (now - 600, now - 4200) if expired else (now + 600, now)
    claims = {
        "iss": "https://kubernetes.default.svc.cluster.local", "aud": [AUDIENCE], "iat": iat, "nbf": iat, "exp": exp,
        "sub": f"system:serviceaccount:{namespace}:{account['metadata']['name']}",
        "kubernetes.io": {"namespace": namespace,
                          "serviceaccount": {"name": account["metadata"]["name"], "uid": account["metadata"]["uid"]}},
    }
    return str(google_jwt.encode(signer, claims).decode())


def test_bad_tokens_are_refused_with_401_and_change_nothing(
        cluster: Any, namespace: str, start_operator: Callable[..., OperatorProcess], kube: Kube) -> None:
    kube.apply(agent_manifest("chat"))
    op = start_operator()
    good = mint_token(cluster, namespace, "chat-sidecar")
    wrong_audience = mint_token(cluster, namespace, "chat-sidecar", audience="vault")
    deleted = mint_token(cluster, namespace, "short-lived")
    cluster.kubectl("delete", "serviceaccount", "short-lived", "-n", namespace)
    cases: dict[str, tuple[str | None, str]] = {
        "no token": (None, "missing_token"),
        "garbage": ("not-a-token-at-all", "invalid_token"),
        "a JWT of no one": ("eyJhbGciOiJub25lIn0.eyJzdWIiOiJtZSJ9.c2ln", "invalid_token"),
        "another audience": (wrong_audience, "wrong_audience"),
        "a deleted ServiceAccount's": (deleted, "invalid_token"),
        "a good token, tampered": (good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB"), "invalid_token"),
    }
    if cluster.pki is not None:  # a local control plane: this test holds its signing key
        account = kube.get("serviceaccount", "chat-sidecar")
        cases["an expired one"] = (_signed_service_account_token(cluster, namespace, account, expired=True), "expired")
        # The same key makes a good token: the expired one is refused for its age alone.
        assert post(op, _signed_service_account_token(cluster, namespace, account, expired=False),
                    report("chat", namespace, requests_=0)).status_code == 202
    before = status_of(kube, "chat")
    for case, (token, reason) in cases.items():
        refused_before = op.metric("agentops_api_refusals_total", reason=reason)
        r = post(op, token, report("chat", namespace, errors=20))
        assert r.status_code == 401, (case, r.status_code, r.text)
        assert r.headers["WWW-Authenticate"].startswith("Bearer"), case
        assert r.json()["error"] and (token is None or token not in r.text), case
        assert op.metric("agentops_api_refusals_total", reason=reason) == refused_before + 1, case
    time.sleep(1)
    assert status_of(kube, "chat") == before
    assert post(op, good, report("chat", namespace)).status_code == 202


def test_verdicts_are_cached_briefly_and_a_deleted_service_account_stops_within_that(
        cluster: Any, namespace: str, start_operator: Callable[..., OperatorProcess], kube: Kube) -> None:
    cache_s = 4.0
    kube.apply(agent_manifest("chat"))
    op = start_operator("--token-review-cache", f"{cache_s:g}s", *ARGS)
    token = mint_token(cluster, namespace, "chat-sidecar")
    reviews_before = op.metric("agentops_token_reviews_total")  # the harness's own readiness probe
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    body = report("chat", namespace)

    def send(count: int) -> list[int]:
        # verify per call: a Session's own would lose to REQUESTS_CA_BUNDLE from the environment.
        return [session.post(f"{op.url}/v1/telemetry", json=body, timeout=10, verify=op.ca_file).status_code
                for _ in range(count)]

    started = time.monotonic()
    codes: list[int] = []
    threads = [threading.Thread(target=lambda: codes.extend(send(250))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.monotonic() - started
    assert codes.count(202) == 1000, {c: codes.count(c) for c in set(codes)}
    reviews = op.metric("agentops_token_reviews_total") - reviews_before
    # One review per cache lifetime (plus one per thread racing a just-expired entry, at most).
    assert 1 <= reviews <= 4 * (1 + took / cache_s), (reviews, took)

    cluster.kubectl("delete", "serviceaccount", "chat-sidecar", "-n", namespace)
    deleted_at = time.monotonic()
    # Our cache, plus the API server's own cache of token verdicts (about 10 s).
    wait_for(lambda: post(op, token, body).status_code == 401, timeout=cache_s + 20, interval=0.2,
             what="the deleted ServiceAccount's token refused")
    print(f"deleted ServiceAccount refused after {time.monotonic() - deleted_at:.1f}s (cache {cache_s:g}s)")


# ---------------------------------------------------------------- Cloud Run: Google ID tokens


class GoogleCerts:
    """Google's ID-token certificate endpoint for a key this test holds (JSON {kid: PEM})."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = datetime.now(timezone.utc)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-google-signer")])
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(self.key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(hours=1))
                .not_valid_after(now + timedelta(days=1)).sign(self.key, hashes.SHA256()))
        self.kid = uuid.uuid4().hex
        self.certs = {self.kid: pem_cert(cert).decode()}
        self.fetches = 0
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._loop_thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/oauth2/v1/certs"

    def token(self, *, email: str, audience: str = AUDIENCE, expires_in: int = 600, kid: str | None = None,
              issuer: str = "https://accounts.google.com") -> str:
        signer = crypt.RSASigner.from_string(pem_key(self.key).decode(), key_id=kid or self.kid)
        now = int(time.time())
        claims = {"iss": issuer, "aud": audience, "azp": "1234567890", "sub": "1234567890", "email": email,
                  "email_verified": True, "iat": min(now, now + expires_in - 60), "exp": now + expires_in}
        return str(google_jwt.encode(signer, claims).decode())

    def __enter__(self) -> GoogleCerts:
        ready = threading.Event()

        async def certs(_: web.Request) -> web.Response:
            self.fetches += 1
            return web.json_response(self.certs, headers={"Cache-Control": "public, max-age=3600"})

        def serve() -> None:
            loop = self._loop
            app = web.Application()
            app.router.add_get("/oauth2/v1/certs", certs)
            runner = web.AppRunner(app)
            loop.run_until_complete(runner.setup())
            loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.close()

        self._loop_thread = threading.Thread(target=serve, daemon=True)
        self._loop_thread.start()
        assert ready.wait(10)
        return self

    def __exit__(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        assert self._loop_thread is not None
        self._loop_thread.join(10)


def cloud_run_agent(name: str, service_account: str) -> str:
    body = json.loads(agent_manifest(name))
    body["spec"]["runtime"] = {"type": "CloudRun", "cloudRun": {"project": "demo-project", "region": "europe-west1",
                                                                "service": name, "serviceAccount": service_account}}
    return json.dumps(body)


def test_cloud_run_sidecars_prove_their_google_service_account(
        cluster: Any, namespace: str, start_operator: Callable[..., OperatorProcess], kube: Kube) -> None:
    ours, theirs = "support-bot@demo-project.iam.gserviceaccount.com", "billing-bot@demo-project.iam.gserviceaccount.com"
    kube.apply(cloud_run_agent("support-bot", ours))
    kube.apply(cloud_run_agent("billing-bot", theirs))
    with GoogleCerts() as google:
        op = start_operator("--google-certs-url", google.url, *ARGS)
        good = google.token(email=ours)
        assert post(op, good, report("support-bot", namespace)).status_code == 202
        assert assignments(op, good, namespace, "support-bot").status_code == 200
        wait_for(lambda: status_of(kube, "support-bot").get("phase") == "Healthy", what="support-bot Healthy")

        before = status_of(kube, "billing-bot")
        refusals: dict[str, tuple[str, int, str]] = {
            "another agent's": (good, 403, "google_account_mismatch"),  # ours, used for billing-bot
            "another audience": (google.token(email=theirs, audience="https://billing.example.com"), 401, "wrong_audience"),
            "expired": (google.token(email=theirs, expires_in=-120), 401, "expired"),
            "an unknown key": (google.token(email=theirs, kid="not-a-key-of-google"), 401, "invalid_token"),
            "not Google's issuer": (google.token(email=theirs, issuer="https://evil.example.com"), 401, "invalid_token"),
        }
        for case, (token, status, reason) in refusals.items():
            counted = op.metric("agentops_api_refusals_total", reason=reason)
            r = post(op, token, report("billing-bot", namespace, errors=20))
            assert (r.status_code, op.metric("agentops_api_refusals_total", reason=reason)) == (status, counted + 1), (case, r.text)
        # A Google identity is never one of a namespace's ServiceAccounts, nor any Kubernetes agent's.
        kube.apply(agent_manifest("k8s-agent"))
        assert post(op, good, report("k8s-agent", namespace)).status_code == 403
        time.sleep(1)
        assert status_of(kube, "billing-bot") == before
        # The certificates were fetched once (and once more for the unknown key), not per call.
        assert 1 <= google.fetches <= 2, google.fetches


# ---------------------------------------------------------------- TLS


def _server_serial(port: int, ca_file: str) -> int:
    context = ssl.create_default_context(cafile=ca_file)
    with context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5),
                             server_hostname="127.0.0.1") as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


class OwnCA:
    """A CA held by the test, issuing serving certificates as cert-manager would."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-issuer")])
        now = datetime.now(timezone.utc)
        self.cert = issue_certificate(self.name, self.key, self.name, self.key, ca=True,
                                      not_before=now - timedelta(hours=1), not_after=now + timedelta(days=30))

    def secret(self, namespace: str, name: str) -> str:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(timezone.utc)
        cert = issue_certificate(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "agentops-operator")]), key, self.name,
                                 self.key, usage=ExtendedKeyUsageOID.SERVER_AUTH,
                                 sans=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
                                 not_before=now - timedelta(minutes=5), not_after=now + timedelta(days=1))
        data = {"tls.crt": pem_cert(cert), "tls.key": pem_key(key), "ca.crt": pem_cert(self.cert)}
        return json.dumps({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                           "metadata": {"name": name, "namespace": namespace},
                           "data": {k: base64.b64encode(v).decode() for k, v in data.items()}})


def test_a_sidecar_refuses_an_operator_it_cannot_verify(
        cluster: Any, namespace: str, start_operator: Callable[..., OperatorProcess], kube: Kube, tmp_path: Any) -> None:
    kube.apply(agent_manifest("web"))
    op = start_operator()
    stranger = tmp_path / "someone-elses-ca.crt"
    stranger.write_bytes(pem_cert(OwnCA().cert))
    with UpstreamAgent(free_port()) as upstream:
        sidecar = SidecarProcess(agent="web", namespace=namespace, operator_url=op.url, token=mint_token(cluster, namespace, "web"),
                                 ca_file=str(stranger), upstream_port=upstream.port, log_path=tmp_path / "sidecar.log")
        sidecar.start()
        try:
            problem = wait_for(lambda: sidecar.state().get("operatorProblem") or None, timeout=20,
                               what="the sidecar's problem with the operator")
            assert "certificate" in str(problem).lower(), problem
            assert sidecar.state()["reports"]["accepted"] == 0
            assert op.metric("agentops_telemetry_reports_total", result="accepted") == 0
        finally:
            sidecar.stop()


def test_a_rotated_certificate_is_served_without_a_restart_and_sidecars_keep_working(
        cluster: Any, namespace: str, start_operator: Callable[..., OperatorProcess], kube: Kube, tmp_path: Any) -> None:
    """cert-manager's way (--tls secret): someone else writes the Secret; the operator reloads it."""
    issuer = OwnCA()
    kube.apply(issuer.secret(namespace, "agentops-operator-tls"))
    kube.apply(agent_manifest("web"))
    op = start_operator("--tls", "secret", "--tls-check-interval", "1s", *ARGS)
    pid = op.proc.pid if op.proc else None
    first = _server_serial(op.port, op.ca_file)
    with UpstreamAgent(free_port()) as upstream:
        sidecar = SidecarProcess(agent="web", namespace=namespace, operator_url=op.url, token=mint_token(cluster, namespace, "web"),
                                 ca_file=op.ca_file, upstream_port=upstream.port, log_path=tmp_path / "sidecar.log")
        sidecar.start()
        try:
            wait_for(lambda: sidecar.state()["reports"]["accepted"] >= 2, timeout=20, what="reports accepted")
            kube.apply(issuer.secret(namespace, "agentops-operator-tls"))  # a renewal: new key, same CA
            wait_for(lambda: _server_serial(op.port, op.ca_file) != first, timeout=20, what="the new certificate served")
            assert op.proc is not None and op.proc.pid == pid and op.proc.poll() is None, "the operator was not restarted"
            accepted = sidecar.state()["reports"]["accepted"]
            wait_for(lambda: sidecar.state()["reports"]["accepted"] >= accepted + 2, timeout=20,
                     what="reports accepted after the rotation")
            kube.apply(fault_manifest("slow-web", agent="web"))
            wait_for(lambda: sidecar.enforced() == ["slow-web"], timeout=20, what="a fault applied after the rotation")
        finally:
            sidecar.stop()
