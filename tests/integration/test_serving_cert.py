"""The operator's serving certificate and its CA's publication, on the real kube-apiserver.

The Secret and ConfigMaps are written and read through the API server; the TLS is real
(an aiohttp server on 127.0.0.1 serving the context `ServingCert.start` returns, clients
verifying against the CA bundle it publishes); nothing is faked.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import ssl
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from cryptography import x509

from agentops.kubeconfig import service_account_kubeconfig
from agentops.local_pki import pem_cert
from agentops_operator import ca_bundle
from agentops_operator.cert_renewal import CertPolicy, TlsMaterial, decide
from agentops_operator.kube_client import KubeClient
from agentops_operator.serving_cert import CaPublisher, ServingCert, ServingCertError

SECRET = "agentops-operator-tls"
OPERATOR_RBAC = Path(__file__).resolve().parents[2] / "manifests" / "base" / "operator-rbac.yaml"
HOSTS = ["localhost", "127.0.0.1"]
# Small, so that a run loop notices a changed Secret within a test's patience.
CHECK_S = 0.1


@pytest.fixture
def client(cluster: Any) -> Iterator[KubeClient]:
    kube = KubeClient(str(cluster.kubeconfig))
    yield kube
    kube.close()


def serving(client: KubeClient, namespace: str, name: str = SECRET, **kwargs: Any) -> ServingCert:
    return ServingCert(client, namespace, name, hosts=HOSTS, check_interval_s=CHECK_S, **kwargs)


@contextlib.asynccontextmanager
async def running(cert: ServingCert) -> AsyncIterator[None]:
    """`cert.run()` in the background for the block, cancelled and awaited after it."""
    task = asyncio.create_task(cert.run())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert task.cancelled(), "run() ended on its own"


@contextlib.asynccontextmanager
async def https_server(context: ssl.SSLContext) -> AsyncIterator[int]:
    """An aiohttp server on 127.0.0.1 serving TLS with `context`; yields its port."""
    async def hello(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
    try:
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()


def trusting(ca_pem: bytes) -> ssl.SSLContext:
    return ssl.create_default_context(cadata=ca_pem.decode())


async def served(port: int, ca_pem: bytes) -> x509.Certificate:
    """The certificate a new TLS connection gets, verified against `ca_pem` (raises if it does not verify)."""
    _, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, ssl=trusting(ca_pem), server_hostname="localhost"), 10)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()
    return x509.load_der_x509_certificate(der)


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.05)


def get(cluster: Any, namespace: str, kind: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads(cluster.kubectl("get", kind, name, "-n", namespace, "-o", "json").stdout)
    return obj


def secret_material(cluster: Any, namespace: str, name: str = SECRET) -> TlsMaterial:
    data = get(cluster, namespace, "secret", name)["data"]
    return TlsMaterial.from_data({k: base64.b64decode(v) for k, v in data.items()})


def leaf(material: TlsMaterial) -> x509.Certificate:
    return ca_bundle.load_certificates(material.tls_crt)[0]


# --- managed: the operator makes and renews its certificate ---


async def test_start_creates_the_secret_and_serves_what_clients_verify_against_its_ca(
        cluster: Any, namespace: str, client: KubeClient) -> None:
    cert = serving(client, namespace)
    context = await cert.start()
    secret = get(cluster, namespace, "secret", SECRET)
    assert secret["type"] == "kubernetes.io/tls"
    assert set(secret["data"]) == {"tls.crt", "tls.key", "ca.crt", "ca.key"}
    assert secret["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "agentops-operator"}
    assert base64.b64decode(secret["data"]["ca.crt"]) == cert.ca_pem
    expected = datetime.now(timezone.utc) + timedelta(days=90)
    assert abs(cert.not_after - expected) < timedelta(minutes=1)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2

    async with https_server(context) as port, aiohttp.ClientSession() as session:
        async with session.get(f"https://127.0.0.1:{port}/", ssl=trusting(cert.ca_pem)) as resp:
            assert (resp.status, await resp.text()) == (200, "ok")
        # A client with only the system's CAs refuses it.
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            async with session.get(f"https://127.0.0.1:{port}/", ssl=ssl.create_default_context()):
                pass
    # A second start (an operator restart) finds the certificate and keeps it.
    again = serving(client, namespace)
    await again.start()
    assert again.ca_pem == cert.ca_pem and again.not_after == cert.not_after
    assert get(cluster, namespace, "secret", SECRET)["metadata"]["resourceVersion"] == \
        secret["metadata"]["resourceVersion"]


async def test_a_renewed_certificate_is_served_without_a_restart(
        cluster: Any, namespace: str, client: KubeClient) -> None:
    cert, other_replica = serving(client, namespace), serving(client, namespace)
    context = await cert.start()
    await other_replica.start()
    ca_before = cert.ca_pem
    async with https_server(context) as port, running(cert):
        first = await served(port, ca_before)
        # Renewed by the other replica: this one's run loop reads it and loads it.
        await other_replica.renew_now()
        renewed = leaf(secret_material(cluster, namespace))
        assert renewed.serial_number != first.serial_number

        async def new_one_served() -> bool:
            return (await served(port, ca_before)).serial_number == renewed.serial_number

        await eventually(new_one_served, "the renewed certificate to be served")
        assert cert.reloads == 1 and cert.not_after == renewed.not_valid_after_utc
        # Renewed by this replica: served at once.
        await cert.renew_now()
        assert (await served(port, ca_before)).serial_number == leaf(secret_material(cluster, namespace)).serial_number
        assert cert.reloads == 2 and cert.ca_pem == ca_before
        # Deleted under the running operator: recreated with what it serves, the CA included.
        serving_now = secret_material(cluster, namespace)
        cluster.kubectl("delete", "secret", SECRET, "-n", namespace)

        async def recreated() -> bool:
            found = await asyncio.to_thread(cluster.kubectl, "get", "secret", SECRET, "-n", namespace,
                                            "--ignore-not-found", "-o", "name")
            return bool(found.stdout.strip())

        await eventually(recreated, "the deleted Secret to be recreated")
        assert secret_material(cluster, namespace) == serving_now and cert.reloads == 2


async def test_a_new_ca_is_served_and_clients_with_the_old_bundle_still_verify(
        cluster: Any, namespace: str, client: KubeClient) -> None:
    cert, other_replica = serving(client, namespace), serving(client, namespace)
    context = await cert.start()
    await other_replica.start()
    [old_ca] = ca_bundle.load_certificates(cert.ca_pem)
    old_bundle = cert.ca_pem
    async with https_server(context) as port, running(cert):
        await other_replica.renew_now(renew_ca=True)

        async def new_ca_served() -> bool:
            return (await served(port, old_bundle)).issuer != old_ca.subject

        await eventually(new_ca_served, "a certificate of the new CA to be served")
        new_ca, kept = ca_bundle.load_certificates(cert.ca_pem)
        assert kept == old_ca and (await served(port, cert.ca_pem)).issuer == new_ca.subject
        assert (await served(port, pem_cert(new_ca))).issuer == new_ca.subject


async def test_replicas_starting_together_share_one_secret(cluster: Any, namespace: str, client: KubeClient) -> None:
    replicas = [serving(client, namespace) for _ in range(3)]
    contexts = await asyncio.gather(*(r.start() for r in replicas))
    items = json.loads(cluster.kubectl("get", "secrets", "-n", namespace, "-o", "json").stdout)["items"]
    assert [s["metadata"]["name"] for s in items if s["type"] == "kubernetes.io/tls"] == [SECRET]
    assert {r.ca_pem for r in replicas} == {secret_material(cluster, namespace).ca_crt}
    in_secret = leaf(secret_material(cluster, namespace)).serial_number
    for context in contexts:
        async with https_server(context) as port:
            assert (await served(port, replicas[0].ca_pem)).serial_number == in_secret


async def test_replicas_renewing_together_end_up_serving_what_the_secret_holds(
        cluster: Any, namespace: str, client: KubeClient) -> None:
    replicas = [serving(client, namespace) for _ in range(3)]
    contexts = [await r.start() for r in replicas]
    ca_pem = replicas[0].ca_pem
    async with contextlib.AsyncExitStack() as stack:
        ports = [await stack.enter_async_context(https_server(c)) for c in contexts]
        for r in replicas:
            await stack.enter_async_context(running(r))
        # Updates from the same resourceVersion: all but one get a 409 and decide again.
        await asyncio.gather(*(r.renew_now() for r in replicas))
        in_secret = leaf(secret_material(cluster, namespace)).serial_number

        async def all_serve_it() -> bool:
            return [(await served(p, ca_pem)).serial_number for p in ports] == [in_secret] * len(ports)

        await eventually(all_serve_it, "every replica to serve the certificate in the Secret")


# --- external: another tool (cert-manager) writes the Secret ---


def apply_tls_secret(cluster: Any, namespace: str, name: str, material: TlsMaterial) -> None:
    """Write the Secret as cert-manager does: tls.crt, tls.key, ca.crt, and no CA key."""
    data = {k: base64.b64encode(v).decode() for k, v in material.to_data().items() if k != "ca.key"}
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls", "data": data,
              "metadata": {"name": name, "namespace": namespace}}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(secret))


async def test_external_mode_waits_for_the_secret_and_reloads_it_when_it_changes(
        cluster: Any, namespace: str, client: KubeClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="agentops_operator.serving_cert")
    cert = serving(client, namespace, "external-tls", manage=False, start_timeout_s=60)
    starting = asyncio.create_task(cert.start())
    try:
        async def waiting() -> bool:
            return "waiting up to 60s for a usable certificate in Secret" in caplog.text

        await eventually(waiting, "the log line saying start() waits for the Secret")
        assert not starting.done()
        policy = CertPolicy(tuple(HOSTS))
        first = decide(None, policy, datetime.now(timezone.utc))
        assert first is not None
        apply_tls_secret(cluster, namespace, "external-tls", first.material)
        context = await asyncio.wait_for(starting, 30)
    finally:
        starting.cancel()
    assert cert.ca_pem == first.material.ca_crt
    async with https_server(context) as port, running(cert):
        assert (await served(port, cert.ca_pem)).serial_number == leaf(first.material).serial_number
        second = decide(first.material, policy, datetime.now(timezone.utc), renew=True)
        assert second is not None
        apply_tls_secret(cluster, namespace, "external-tls", second.material)
        version = get(cluster, namespace, "secret", "external-tls")["metadata"]["resourceVersion"]

        async def reloaded() -> bool:
            return (await served(port, cert.ca_pem)).serial_number == leaf(second.material).serial_number

        await eventually(reloaded, "the changed Secret's certificate to be served")
        assert cert.reloads == 1
        with pytest.raises(ServingCertError, match="written by another tool"):
            await cert.renew_now()
        # It read the Secret at every check since, and never wrote it.
        secret = get(cluster, namespace, "secret", "external-tls")
        assert secret["metadata"]["resourceVersion"] == version and "ca.key" not in secret["data"]


async def test_external_mode_gives_up_naming_the_secret(namespace: str, client: KubeClient) -> None:
    cert = serving(client, namespace, "never-written", manage=False, start_timeout_s=0.5)
    with pytest.raises(ServingCertError, match=f"no usable certificate in Secret {namespace}/never-written after 0s"):
        await cert.start()


# --- the CA, published to the sidecars' namespaces ---


async def test_the_ca_is_published_once_per_namespace_and_again_when_it_changes(
        cluster: Any, namespace: str, client: KubeClient) -> None:
    other = f"t-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", other)
    try:
        policy = CertPolicy(tuple(HOSTS))
        first = decide(None, policy, datetime.now(timezone.utc))
        assert first is not None
        rolled = decide(first.material, policy, datetime.now(timezone.utc), renew_ca=True)
        assert rolled is not None
        ca1, ca2 = first.material.ca_crt, rolled.material.ca_crt
        publisher = CaPublisher(client)

        def configmaps() -> dict[str, dict[str, Any]]:
            return {ns: get(cluster, ns, "configmap", "agentops-ca") for ns in (namespace, other)}

        await publisher.sync([namespace, other], ca1)
        published = configmaps()
        assert publisher.writes == 2
        for cm in published.values():
            assert cm["data"] == {"ca.crt": ca1.decode()}
            assert cm["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "agentops-operator"}

        # The same CA again: nothing written, by this publisher or a fresh one (a restarted operator).
        await publisher.sync([namespace, other], ca1)
        restarted = CaPublisher(client)
        await restarted.sync([other, namespace], ca1)
        assert (publisher.writes, restarted.writes) == (2, 0)
        assert configmaps() == published

        # A new CA bundle: rewritten everywhere; a namespace that does not exist is skipped quietly;
        # what others put on the ConfigMap stays.
        cluster.kubectl("annotate", "configmap", "agentops-ca", "-n", other, "example.com/owner=gitops")
        await publisher.sync([namespace, other, f"gone-{uuid.uuid4().hex[:8]}"], ca2)
        assert publisher.writes == 4
        rewritten = configmaps()
        assert all(cm["data"] == {"ca.crt": ca2.decode()} for cm in rewritten.values())
        assert rewritten[other]["metadata"]["annotations"] == {"example.com/owner": "gitops"}
    finally:
        cluster.kubectl("delete", "namespace", other, "--wait=false", "--ignore-not-found", check=False)


# --- with only the rights the operator's manifests grant ---


def operator_rules_for(resources: set[str]) -> list[dict[str, Any]]:
    """The rules of the operator's RBAC manifests (Roles and ClusterRoles) that name any of `resources`."""
    rules = []
    for doc in yaml.safe_load_all(OPERATOR_RBAC.read_text()):
        if doc and doc["kind"] in ("Role", "ClusterRole"):
            rules += [r for r in doc.get("rules", []) if resources & set(r.get("resources", []))]
    return rules


async def test_the_manifests_rbac_is_enough(cluster: Any, namespace: str, tmp_path: Path) -> None:
    rules = operator_rules_for({"secrets", "configmaps"})
    assert rules, f"no rules for secrets or configmaps in {OPERATOR_RBAC}"
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "tls-writer", "namespace": namespace}, "rules": rules}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "tls-writer", "namespace": namespace},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "tls-writer"},
               "subjects": [{"kind": "ServiceAccount", "name": "tls-writer", "namespace": namespace}]}
    cluster.kubectl("create", "serviceaccount", "tls-writer", "-n", namespace)
    cluster.kubectl("apply", "-f", "-",
                    input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [role, binding]}))
    kubeconfig = service_account_kubeconfig(str(cluster.kubectl_path), cluster.env(), namespace=namespace,
                                            service_account="tls-writer", path=tmp_path / "kubeconfig", duration="1h")
    client = KubeClient(str(kubeconfig))
    try:
        cert = serving(client, namespace)
        await cert.start()  # create
        await cert.renew_now(renew_ca=True)  # get and update
        publisher = CaPublisher(client)
        await publisher.sync([namespace], cert.ca_pem)  # get and create
        await cert.renew_now(renew_ca=True)
        await publisher.sync([namespace], cert.ca_pem)  # get and update
        assert publisher.writes == 2
        assert get(cluster, namespace, "configmap", "agentops-ca")["data"]["ca.crt"] == cert.ca_pem.decode()
        # Any other Secret stays out of reach.
        with pytest.raises(ServingCertError, match="RBAC"):
            await serving(client, namespace, "someone-elses-tls", manage=False).start()
    finally:
        client.close()
