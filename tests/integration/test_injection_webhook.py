"""Sidecar injection on the real API server: the operator's webhook, its caBundle, Pod Security, the scan.

Each test registers a MutatingWebhookConfiguration of its own, shaped like
manifests/base/sidecar-injector.yaml (one webhook for labelled namespaces, one for
labelled pods elsewhere; fail-open, 5 s, reinvocationPolicy IfNeeded, the opt-out label
excluded), but pointing at its own operator by URL and selecting only its own namespaces
by name, so that tests never meet each other's webhooks. No caBundle: the operator fills
it in. The real kube-apiserver calls the real operator over TLS for every pod created
(or dry-run created), applies its JSONPatch, and then runs its own Pod Security
admission on the result.

No kubelet or scheduler runs here: pods stay Pending, which is all admission needs. A
Deployment's pod is created as its ReplicaSet controller would create it (generateName,
pod-template-hash label, a controller owner reference to a real ReplicaSet object); the
whole Deployment path with a real kube-controller-manager and the pods running is
test_kind_path.py's.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import ipaddress
import json
import socket
import ssl
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from operator_harness import Kube, OperatorProcess, agent_manifest, free_port, secret_ca, wait_for

from agentops.local_pki import issue_certificate, pem_cert, pem_key
from agentops_operator.injection import SIDECAR_NAME
from agentops_operator.kube_client import KubeClient, KubeError
from agentops_operator.resources import Key
from agentops_operator.sidecar_scan import missing_sidecars, scan
from agentops_operator.webhook_config import RETRY_S, REREAD_S, WebhookCaBundle

pytestmark = pytest.mark.timeout(120)

INJECT = "agentops.dev/inject"
SIDECAR_IMAGE = "agentops:test"
JSON_HEADERS = {"Content-Type": "application/json"}
# As tests/integration/conftest.py starts operators: fast heartbeats, a short lease.
OPERATOR_ARGS = ("--status-heartbeat", "2s", "--lease", "10s")
# The "restricted" Pod Security Standard, for the agent's own container.
RESTRICTED = {"allowPrivilegeEscalation": False, "runAsNonRoot": True, "runAsUser": 1000,
              "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


# ------------------------------------------------------------------ objects


def webhook_configuration(name: str, url: str, namespaces: list[str], ca_bundle: str | None = None,
                          *, reinvocation: str = "IfNeeded", failure: str = "Ignore") -> dict[str, Any]:
    """The manifests' two webhooks, by URL, confined to `namespaces`."""
    def hook(kind: str, namespace_labelled: str, pod_selector: dict[str, Any]) -> dict[str, Any]:
        client: dict[str, Any] = {"url": url, **({"caBundle": ca_bundle} if ca_bundle else {})}
        return {
            "name": f"{kind}.{name}.agentops.dev",
            "admissionReviewVersions": ["v1"],
            "clientConfig": client,
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"],
                       "scope": "Namespaced"}],
            "namespaceSelector": {"matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "In", "values": namespaces},
                {"key": INJECT, "operator": namespace_labelled, "values": ["enabled"]}]},
            "objectSelector": pod_selector,
            "failurePolicy": failure, "sideEffects": "None", "timeoutSeconds": 5, "reinvocationPolicy": reinvocation,
            "matchPolicy": "Equivalent",
        }

    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": name},
            "webhooks": [
                hook("namespaces", "In", {"matchExpressions": [{"key": INJECT, "operator": "NotIn", "values": ["disabled"]}]}),
                hook("pods", "NotIn", {"matchExpressions": [{"key": INJECT, "operator": "In", "values": ["enabled"]}]}),
            ]}


def pod(name: str | None = None, *, agent: str | None = "web", labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None, owner: dict[str, Any] | None = None, restricted: bool = False,
        init: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """An agent's pod: one container listening on the port named http (8000)."""
    container: dict[str, Any] = {"name": "agent", "image": "agent:1", "ports": [{"name": "http", "containerPort": 8000}]}
    if restricted:
        container["securityContext"] = RESTRICTED
    metadata: dict[str, Any] = {"labels": {**({"agentops.dev/agent": agent} if agent else {}), **(labels or {})},
                                "annotations": annotations or {}}
    metadata.update({"name": name} if name else {"generateName": "pod-"})
    if owner is not None:
        metadata["generateName"] = f"{owner['metadata']['name']}-"
        metadata["labels"]["pod-template-hash"] = owner["spec"]["selector"]["matchLabels"]["pod-template-hash"]
        metadata["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner["metadata"]["name"],
                                        "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}]
    # What the ServiceAccount admission plugin sets before any webhook runs (it is off on this
    # control plane); the projected token the sidecar gets needs it.
    spec: dict[str, Any] = {"serviceAccountName": "default", "containers": [container],
                            **({"initContainers": init} if init else {})}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def replicaset(deployment: str, template_hash: str) -> dict[str, Any]:
    """The ReplicaSet a Deployment controller would make (no controller runs: it never makes pods itself)."""
    labels = {"app": deployment, "pod-template-hash": template_hash}
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": f"{deployment}-{template_hash}"},
            "spec": {"replicas": 0, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "agent", "image": "agent:1"}]}}}}


def sidecars(created: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in created["spec"].get("initContainers") or [] if c["name"] == SIDECAR_NAME]


def injected_once(created: dict[str, Any]) -> dict[str, Any]:
    """The pod's one sidecar, checked to be a native sidecar in first place."""
    found = sidecars(created)
    assert len(found) == 1, f"{len(found)} sidecars in {created['metadata'].get('name')}"
    assert created["spec"]["initContainers"][0]["name"] == SIDECAR_NAME
    assert found[0]["restartPolicy"] == "Always"
    return found[0]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env") or []}


def label(cluster: Any, namespace: str, *labels: str) -> None:
    cluster.kubectl("label", "namespace", namespace, "--overwrite", *labels)


# ------------------------------------------------------------------ the harness


@dataclass
class Injection:
    """One test's operator and its webhook configuration."""

    cluster: Any
    api: KubeClient
    op: OperatorProcess
    configuration: str

    def ca_bundles(self) -> list[str | None]:
        out = self.cluster.kubectl("get", "mutatingwebhookconfiguration", self.configuration, "-o", "json").stdout
        return [w["clientConfig"].get("caBundle") for w in json.loads(out)["webhooks"]]

    def trusts(self, ca_pem: bytes) -> bool:
        return self.ca_bundles() == [base64.b64encode(ca_pem).decode()] * 2

    def create(self, namespace: str, body: dict[str, Any], *, dry_run: bool = False, version: str = "v1",
               plural: str = "pods") -> dict[str, Any]:
        created: dict[str, Any] = self.api.call("POST", version=version, namespace=namespace, url=plural,
                                                data=json.dumps(body), headers=JSON_HEADERS,
                                                params={"dryRun": "All"} if dry_run else {})
        return created

    def probe(self, namespace: str) -> bool:
        """A server-side dry-run create is injected: the API server trusts and reaches the operator."""
        return bool(sidecars(self.create(namespace, pod(restricted=True), dry_run=True)))


@pytest.fixture
def api(cluster: Any) -> Iterator[KubeClient]:
    client = KubeClient(str(cluster.kubeconfig))
    yield client
    client.close()


@pytest.fixture
def inject(cluster: Any, crds: Any, tmp_path: Path, api: KubeClient) -> Iterator[Callable[..., Injection]]:
    """Start an operator serving the webhook for `namespaces` (the first one it watches) and wait until it works."""
    made: list[Injection] = []

    def start(namespaces: list[str], *extra_args: str, ready: bool = True) -> Injection:
        port = free_port()
        name = f"agentops-injector-{namespaces[0]}"
        cluster.kubectl("create", "-f", "-", input=json.dumps(
            webhook_configuration(name, f"https://127.0.0.1:{port}/mutate-pods", namespaces)))
        op = OperatorProcess(env=cluster.env(), namespace=namespaces[0], log_path=tmp_path / f"operator-{len(made)}.log",
                             cluster=cluster, port=port,
                             extra_args=[*OPERATOR_ARGS, "--webhook-configuration", name,
                                         "--sidecar-image", SIDECAR_IMAGE, *extra_args])
        injection = Injection(cluster, api, op, name)
        made.append(injection)
        op.start()
        if ready:
            ca = Path(op.ca_file).read_bytes()
            wait_for(lambda: injection.trusts(ca), timeout=20, what=f"caBundle filled in (log: {op.log_path})")
            labelled = next((ns for ns in namespaces if _labelled(cluster, ns)), None)
            if labelled is not None:
                wait_for(lambda: injection.probe(labelled), timeout=20, what="the API server to call the operator")
        return injection

    try:
        yield start
    finally:
        for injection in made:
            injection.op.stop()
            cluster.kubectl("delete", "mutatingwebhookconfiguration", injection.configuration, "--ignore-not-found",
                            check=False)
            # Unscheduled pods go at once; the namespaces themselves are never finalized here.
            cluster.kubectl("delete", "pods", "--all", "-n", injection.op.namespace, "--wait=false", check=False)


def _labelled(cluster: Any, namespace: str) -> bool:
    out: str = cluster.kubectl("get", "namespace", namespace, "-o", "jsonpath={.metadata.labels.agentops\\.dev/inject}").stdout
    return out.strip() == "enabled"


def _cleanup_pods(cluster: Any, *namespaces: str) -> None:
    for namespace in namespaces:
        cluster.kubectl("delete", "pods", "--all", "-n", namespace, "--wait=false", check=False)


# ------------------------------------------------------------------ tests


def test_pods_of_a_labelled_namespace_get_exactly_one_native_sidecar(
        cluster: Any, make_namespace: Callable[[], str], inject: Callable[..., Injection]) -> None:
    ns, plain = make_namespace(), make_namespace()
    label(cluster, ns, f"{INJECT}=enabled")
    injection = inject([ns, plain])
    try:
        # A Deployment's pod, as its ReplicaSet controller creates it, with an init container of its own.
        owner = injection.create(ns, replicaset("chat", "5f6d8b9c7"), version="apps/v1", plural="replicasets")
        migrate = {"name": "migrate", "image": "agent:1", "command": ["true"]}
        created = injection.create(ns, pod(agent=None, labels={"app": "chat"}, owner=owner, init=[migrate]))
        sidecar = injected_once(created)
        assert [c["name"] for c in created["spec"]["initContainers"]] == [SIDECAR_NAME, "migrate"]
        env = env_of(sidecar)
        assert env["AGENTOPS_AGENT"] == "chat"  # the Deployment's name, from the owner ReplicaSet's
        assert env["AGENTOPS_OPERATOR_URL"].startswith("https://agentops-operator.")
        assert env["AGENTOPS_UPSTREAM"] == "http://127.0.0.1:8000"
        assert sidecar["image"] == SIDECAR_IMAGE
        assert {p["name"]: p["containerPort"] for p in sidecar["ports"]} == {"http": 8080, "admin": 9901}
        assert created["spec"]["containers"][0]["ports"] == [{"name": "agent-http", "containerPort": 8000, "protocol": "TCP"}]
        volumes = {v["name"]: v for v in created["spec"]["volumes"]}
        token = volumes["agentops-identity"]["projected"]["sources"][0]["serviceAccountToken"]
        assert token["audience"] == "agentops"
        assert volumes["agentops-ca"]["configMap"]["name"] == "agentops-ca"
        assert created["metadata"]["annotations"]["agentops.dev/injected"] == "chat"

        # kubectl apply: created injected, applied again and changed (UPDATEs): still one sidecar.
        # (Its agent port is annotated, not named http: re-applying a bare pod whose http port
        # the injection renamed is refused by the API server, since kubectl apply would
        # rename it back and a pod's ports are immutable. A Deployment's template is never
        # mutated, so re-applying a Deployment is unaffected.)
        applied = pod("web-1", annotations={"agentops.dev/agent-port": "8000"})
        applied["spec"]["containers"][0]["ports"] = [{"containerPort": 8000}]
        manifest = json.dumps(applied)
        cluster.kubectl("apply", "-n", ns, "-f", "-", input=manifest)
        cluster.kubectl("apply", "-n", ns, "-f", "-", input=manifest)
        cluster.kubectl("label", "pod", "web-1", "-n", ns, "tier=front")
        web = json.loads(cluster.kubectl("get", "pod", "web-1", "-n", ns, "-o", "json").stdout)
        assert env_of(injected_once(web))["AGENTOPS_AGENT"] == "web" and web["metadata"]["labels"]["tier"] == "front"

        # A copy of an injected pod (the webhook called again on what it made): left as it is.
        copied = copy.deepcopy(created)
        copied["metadata"] = {k: copied["metadata"][k] for k in ("generateName", "labels", "annotations", "ownerReferences")}
        copied.pop("status", None)
        copied["spec"].pop("priority", None)  # computed by the Priority admission plugin; not for a client to set
        again = injection.create(ns, copied)
        injected_once(again)
        assert [v["name"] for v in again["spec"]["volumes"]].count("agentops-identity") == 1

        # Opted out by annotation (the webhook says no) or label (the webhook is not even called).
        quiet = injection.create(ns, pod("quiet-1", annotations={INJECT: "disabled"}))
        quieter = injection.create(ns, pod("quiet-2", labels={INJECT: "disabled"}))
        assert sidecars(quiet) == [] == sidecars(quieter)
        # An unlabelled namespace: only a pod that asks for it.
        assert sidecars(injection.create(plain, pod("web-2"))) == []
        injected_once(injection.create(plain, pod("web-3", labels={INJECT: "enabled"})))

        op = injection.op
        # web-1, web-3, the owned pod, and every readiness probe of the fixture (dry runs).
        assert op.metric("agentops_admission_reviews_total", result="injected") >= 3
        assert op.metric("agentops_admission_reviews_total", result="invalid") == 0
        assert op.metric("agentops_admission_review_duration_seconds_count") >= 5
    finally:
        _cleanup_pods(cluster, plain)


class Relabeller:
    """A second webhook server of the test's own (real TLS, real HTTP): it adds a label to every
    pod, after the injector has run, so that the API server calls the injector again."""

    def __init__(self, tmp_path: Path) -> None:
        now = datetime.now(timezone.utc)
        ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "relabeller-ca")])
        ca = issue_certificate(ca_name, ca_key, ca_name, ca_key, ca=True, not_before=now - timedelta(hours=1),
                               not_after=now + timedelta(hours=1))
        leaf = issue_certificate(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "relabeller")]), key, ca_name, ca_key,
                                 usage=ExtendedKeyUsageOID.SERVER_AUTH,
                                 sans=[x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
                                 not_before=now - timedelta(hours=1), not_after=now + timedelta(hours=1))
        (tmp_path / "relabeller.crt").write_bytes(pem_cert(leaf))
        (tmp_path / "relabeller.key").write_bytes(pem_key(key))
        self.ca_bundle = base64.b64encode(pem_cert(ca)).decode()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tmp_path / "relabeller.crt", tmp_path / "relabeller.key")
        self.calls = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 — http.server's name
                review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.calls += 1
                patch = [{"op": "add", "path": "/metadata/labels/relabelled", "value": "yes"}]
                body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": {
                    "uid": review["request"]["uid"], "allowed": True, "patchType": "JSONPatch",
                    "patch": base64.b64encode(json.dumps(patch).encode()).decode()}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}/relabel"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Relabeller:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_later_webhook_that_changes_the_pod_calls_the_injector_again_and_it_adds_nothing(
        cluster: Any, make_namespace: Callable[[], str], inject: Callable[..., Injection], tmp_path: Path) -> None:
    """reinvocationPolicy IfNeeded on the real API server: injector, relabeller, injector again."""
    ns = make_namespace()
    label(cluster, ns, f"{INJECT}=enabled")
    injection = inject([ns])
    op = injection.op
    # Sorted after the injector's configuration by name, which is the order the API server calls them in.
    name = f"zz-relabel-{ns}"
    with Relabeller(tmp_path) as relabeller:
        config = webhook_configuration(name, relabeller.url, [ns], relabeller.ca_bundle, reinvocation="Never",
                                       failure="Fail")
        cluster.kubectl("create", "-f", "-", input=json.dumps(config))
        try:
            wait_for(lambda: injection.create(ns, pod(), dry_run=True)["metadata"]["labels"].get("relabelled") == "yes",
                     timeout=20, what="the API server to call the relabeller")
            before = {r: op.metric("agentops_admission_reviews_total", result=r) for r in ("injected", "skipped")}
            created = injection.create(ns, pod("web-1"))
            injected_once(created)
            assert created["metadata"]["labels"]["relabelled"] == "yes"
            after = {r: op.metric("agentops_admission_reviews_total", result=r) for r in ("injected", "skipped")}
            # Called twice for one pod: injected the first time, "already injected" the second.
            assert (after["injected"] - before["injected"], after["skipped"] - before["skipped"]) == (1, 1)
        finally:
            cluster.kubectl("delete", "mutatingwebhookconfiguration", name, "--ignore-not-found", check=False)


def test_with_the_operator_down_pods_are_created_bare_and_the_scan_finds_them(
        cluster: Any, make_namespace: Callable[[], str], inject: Callable[..., Injection], api: KubeClient) -> None:
    ns = make_namespace()
    label(cluster, ns, f"{INJECT}=enabled")
    kube = Kube(cluster, ns)
    kube.apply(agent_manifest("chat"))
    injection = inject([ns], "--sidecar-scan-interval", "1s")
    owner = injection.create(ns, replicaset("chat", "6c8f7d5b4"), version="apps/v1", plural="replicasets")
    covered = injection.create(ns, pod(agent=None, owner=owner))
    injected_once(covered)

    injection.op.stop()
    started = time.monotonic()
    bare = injection.create(ns, pod(agent=None, owner=owner))  # failurePolicy Ignore: created all the same
    took = time.monotonic() - started
    assert sidecars(bare) == []
    print(f"\npod create with the operator down: {took * 1000:.0f} ms")

    pods, labels = asyncio.run(scan(api, [ns, "no-such-namespace"]))
    chat, idle = Key(ns, "chat"), Key(ns, "idle")
    assert missing_sidecars(pods, labels, [chat, idle]) == {chat: [bare["metadata"]["name"]], idle: []}

    injection.op.start()  # the same port: the webhook configuration still points at it
    wait_for(lambda: injection.probe(ns), timeout=20, what="injection back with the operator")
    injected_once(injection.create(ns, pod(agent=None, owner=owner)))
    # The operator, back, reports the bare pod on its Agent - condition and Event - until it is gone.
    missing = wait_for(lambda: kube.condition("agent", "chat", "SidecarMissing").get("status") == "True"
                       and kube.condition("agent", "chat", "SidecarMissing"), timeout=30, what="SidecarMissing=True")
    assert missing["reason"] == "PodsWithoutSidecar" and bare["metadata"]["name"] in missing["message"], missing
    (event,) = [e for e in kube.events("chat") if e["reason"] == "SidecarMissing"]
    assert event["type"] == "Warning" and bare["metadata"]["name"] in event["message"]
    cluster.kubectl("delete", "pod", bare["metadata"]["name"], "-n", ns, "--grace-period=0", "--force")
    wait_for(lambda: kube.condition("agent", "chat", "SidecarMissing").get("status") == "False", timeout=30,
             what="SidecarMissing=False once the bare pod is gone")


class Issuer:
    """A CA of the test's, issuing the operator's serving certificate as cert-manager would."""

    def __init__(self, name: str) -> None:
        now = datetime.now(timezone.utc)
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.pem = pem_cert(issue_certificate(self.name, self.key, self.name, self.key, ca=True,
                                              not_before=now - timedelta(hours=1), not_after=now + timedelta(days=30)))

    def leaf(self) -> tuple[bytes, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(timezone.utc)
        cert = issue_certificate(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "agentops-operator")]), key,
                                 self.name, self.key, usage=ExtendedKeyUsageOID.SERVER_AUTH,
                                 sans=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
                                 not_before=now - timedelta(minutes=5), not_after=now + timedelta(days=1))
        return pem_cert(cert), pem_key(key)


def tls_secret(namespace: str, leaf: tuple[bytes, bytes], ca_pem: bytes) -> str:
    data = {"tls.crt": leaf[0], "tls.key": leaf[1], "ca.crt": ca_pem}
    return json.dumps({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                       "metadata": {"name": "agentops-operator-tls", "namespace": namespace},
                       "data": {k: base64.b64encode(v).decode() for k, v in data.items()}})


@dataclass
class Prober:
    """Dry-run creates in a loop while the CA rolls over: every one must come back injected."""

    injection: Injection
    namespace: str
    results: list[bool] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self._stop.is_set():
            self.results.append(self.injection.probe(self.namespace))
            self._stop.wait(0.05)

    def __enter__(self) -> Prober:
        self._thread = threading.Thread(target=self.run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def test_the_ca_bundle_follows_a_ca_rollover_and_admission_keeps_working(
        cluster: Any, make_namespace: Callable[[], str], inject: Callable[..., Injection]) -> None:
    """cert-manager's way (--tls secret): a new CA is trusted first, then serves, then the old one goes."""
    ns = make_namespace()
    label(cluster, ns, f"{INJECT}=enabled")
    old, new = Issuer("old-ca"), Issuer("new-ca")
    first = old.leaf()
    cluster.kubectl("apply", "-f", "-", input=tls_secret(ns, first, old.pem))
    injection = inject([ns], "--tls", "secret", "--tls-check-interval", "1s")
    assert injection.trusts(old.pem)
    second = new.leaf()
    with Prober(injection, ns) as prober:
        for leaf, bundle in ((first, old.pem + new.pem), (second, old.pem + new.pem), (second, new.pem)):
            cluster.kubectl("apply", "-f", "-", input=tls_secret(ns, leaf, bundle))
            step = len(prober.results)
            wait_for(lambda: injection.trusts(bundle), timeout=20, what="the caBundle to follow the Secret's ca.crt")
            # The operator serves this certificate now (the API server verifies it against the bundle).
            wait_for(lambda: _served_by(injection.op.port, bundle) == leaf[0], timeout=20, what="the certificate served")
            wait_for(lambda: len(prober.results) >= step + 5, timeout=20, what="probes during this step")
    assert all(prober.results), f"{prober.results.count(False)} of {len(prober.results)} creates not injected"
    assert secret_ca(cluster, ns, "agentops-operator-tls") == new.pem
    injected_once(injection.create(ns, pod("after-rollover")))


def _served_by(port: int, bundle: bytes) -> bytes:
    """The PEM of the certificate the operator serves, verified against `bundle`."""
    context = ssl.create_default_context(cadata=bundle.decode())
    with context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5), server_hostname="127.0.0.1") as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return pem_cert(x509.load_der_x509_certificate(der))


def test_the_injected_pod_passes_restricted_pod_security(
        cluster: Any, make_namespace: Callable[[], str], inject: Callable[..., Injection]) -> None:
    """Pod Security admission runs after mutation: it judges the pod with the sidecar in it."""
    ns = make_namespace()
    label(cluster, ns, f"{INJECT}=enabled", "pod-security.kubernetes.io/enforce=restricted")
    injection = inject([ns])
    sidecar = injected_once(injection.create(ns, pod("web-1", restricted=True)))
    assert sidecar["securityContext"]["runAsNonRoot"] is True
    # The control: restricted is enforced here, and blames only the agent's container.
    with pytest.raises(KubeError) as refused:
        injection.create(ns, pod("web-2"))
    assert refused.value.status == 403 and "violates PodSecurity" in str(refused.value), refused.value
    assert '"agent"' in str(refused.value) and SIDECAR_NAME not in str(refused.value)


def test_admission_latency_injected_and_not(
        cluster: Any, make_namespace: Callable[[], str], inject: Callable[..., Injection]) -> None:
    """Printed, not asserted: a create through the webhook against one that skips it, interleaved."""
    ns, plain = make_namespace(), make_namespace()
    label(cluster, ns, f"{INJECT}=enabled")
    injection = inject([ns, plain])
    timings: dict[str, list[float]] = {"injected": [], "not injected": []}
    try:
        for _ in range(200):
            for namespace, kind in ((ns, "injected"), (plain, "not injected")):
                started = time.perf_counter()
                created = injection.create(namespace, pod())
                timings[kind].append(time.perf_counter() - started)
                assert bool(sidecars(created)) == (kind == "injected")
    finally:
        _cleanup_pods(cluster, plain)
    print()
    for kind, values in timings.items():
        ordered = sorted(values)
        p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]  # as tests/bench/bench_common.percentile
        print(f"pod create, {kind:12s}: p50 {statistics.median(ordered) * 1000:6.2f} ms  p99 {p99 * 1000:6.2f} ms  "
              f"(n={len(ordered)}; tests/bench/bench_admission.py measures it in rounds)")


async def test_the_ca_bundle_keeper_reads_only_when_something_may_have_changed(cluster: Any, api: KubeClient) -> None:
    """WebhookCaBundle with a clock of the test's: a 404, the first fill, unchanged rounds, a wiped bundle, a new CA."""
    name = f"agentops-injector-{uuid.uuid4().hex[:8]}"
    now = [1000.0]
    keeper = WebhookCaBundle(api, name, clock=lambda: now[0])
    ca, rolled = Issuer("one").pem, Issuer("two").pem
    # Selects no namespace: nothing ever calls it.
    config = webhook_configuration(name, "https://127.0.0.1:1/mutate-pods", [f"none-{name}"])

    def bundles() -> list[str | None]:
        out = cluster.kubectl("get", "mutatingwebhookconfiguration", name, "-o", "json").stdout
        return [w["clientConfig"].get("caBundle") for w in json.loads(out)["webhooks"]]

    try:
        await keeper.sync(ca)  # not there: said once, no error
        cluster.kubectl("create", "-f", "-", input=json.dumps(config))
        await keeper.sync(ca)  # not looked for again yet
        assert (keeper.writes, bundles()) == (0, [None, None])
        now[0] += RETRY_S
        await keeper.sync(ca)
        assert (keeper.writes, bundles()) == (1, [base64.b64encode(ca).decode()] * 2)
        cluster.kubectl("replace", "-f", "-", input=json.dumps(config))  # someone re-applies it wholesale
        await keeper.sync(ca)  # an unchanged round: no API call at all
        assert (keeper.writes, bundles()) == (1, [None, None])
        now[0] += REREAD_S
        await keeper.sync(ca)
        assert (keeper.writes, bundles()) == (2, [base64.b64encode(ca).decode()] * 2)
        await keeper.sync(rolled)  # a new CA is written at once
        assert (keeper.writes, bundles()) == (3, [base64.b64encode(rolled).decode()] * 2)
        await keeper.sync(b"")  # no CA: left as it is
        assert bundles() == [base64.b64encode(rolled).decode()] * 2
    finally:
        cluster.kubectl("delete", "mutatingwebhookconfiguration", name, "--ignore-not-found", check=False)
