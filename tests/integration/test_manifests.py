"""What a platform engineer installs (manifests/, crds/Kustomization), on a real API server.

1. Every kustomization renders with kubectl's own kustomize, without a warning
   (deprecated fields warn), with the standard labels on every object.
2. The API server accepts every rendering as it is - server-side dry run, with the CRDs
   installed (CEL rules, schemas) and Pod Security admission judging each pod template
   against the "restricted" profile its namespace asks for (a violation is a warning).
3. RBAC grants what the components use and nothing else: the base's ServiceAccounts,
   roles and bindings are applied for real and asked with `kubectl auth can-i` while
   impersonating each ServiceAccount; the real operator then runs with nothing but its
   own ServiceAccount's token and heals a Deployment without one refused request.
4. kind-config.yaml and the e2e workflow agree with the manifests (the workflow itself
   cannot run here: it needs Docker and kind).

With AGENTOPS_TEST_EXISTING_CLUSTER=1 (the e2e workflow runs this module on kind after
installing AgentOps) only what is missing is created, and only that is deleted.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from operator_harness import Kube, OperatorProcess, TelemetryFeed, mint_token, wait_for
from rendered_manifests import REPO_ROOT, AppliedObjects, Rendering, as_json, labels, manifest, render

from agentops.kubeconfig import service_account_kubeconfig

pytestmark = pytest.mark.timeout(90)

CERT_MANAGER = "manifests/overlays/cert-manager"
KUSTOMIZATIONS = ("crds", "manifests/base", "manifests/samples/cluster", "manifests/overlays/kind", "manifests/overlays/gke", CERT_MANAGER)
SAMPLE_FAULTS = sorted((REPO_ROOT / "manifests" / "samples" / "cluster" / "faults").glob("*.yaml"))
SAMPLE_CHECKS = sorted((REPO_ROOT / "manifests" / "samples").glob("check-*.yaml"))
RBAC_KINDS = ("ServiceAccount", "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")

OPERATOR = "system:serviceaccount:agentops-system:agentops-operator"
UI = "system:serviceaccount:agentops-system:agentops-ui"
SIDECAR = "system:serviceaccount:agents-demo:agentops-sidecar"

AGENTS, FAULTS, CHECKS = "agents.agentops.dev", "faults.agentops.dev", "resiliencechecks.agentops.dev"
DEPLOYMENTS, CRDS = "deployments.apps", "customresourcedefinitions.apiextensions.k8s.io"
CLUSTERROLES = "clusterroles.rbac.authorization.k8s.io"
WEBHOOKS = "mutatingwebhookconfigurations.admissionregistration.k8s.io"

# (verb, resource, subresource), asked cluster-wide. Why each is needed:
# manifests/base/operator-rbac.yaml, next to each rule.
OPERATOR_NEEDS = [
    *[(verb, resource, "") for resource in (AGENTS, FAULTS, CHECKS, "namespaces") for verb in ("get", "list", "watch")],
    ("patch", AGENTS, "status"), ("patch", FAULTS, "status"), ("patch", CHECKS, "status"),
    # A ResilienceCheck's experiments: each one's Fault, created and deleted.
    ("create", FAULTS, ""), ("delete", FAULTS, ""),
    ("create", "events", ""),
    ("get", DEPLOYMENTS, ""), ("patch", DEPLOYMENTS, ""),
    ("list", CRDS, ""), ("watch", CRDS, ""),
    # Who a sidecar is (TokenReview), and the CA bundle it is given (ConfigMap agentops-ca).
    ("create", "tokenreviews.authentication.k8s.io", ""),
    ("create", "configmaps", ""), ("get", "configmaps/agentops-ca", ""), ("update", "configmaps/agentops-ca", ""),
    # Sidecar injection: its webhook configuration's caBundle, and the pods that lack the sidecar.
    ("get", f"{WEBHOOKS}/agentops-sidecar-injector", ""), ("update", f"{WEBHOOKS}/agentops-sidecar-injector", ""),
    ("list", "pods", ""),
]
OPERATOR_REFUSED = [
    # Spec and lifecycle of the custom resources belong to people and GitOps - but for
    # the Faults of a check's experiments, which are created and deleted, never changed.
    *[(verb, resource, "") for resource in (AGENTS, CHECKS) for verb in ("create", "update", "patch", "delete", "deletecollection")],
    *[(verb, FAULTS, "") for verb in ("update", "patch", "deletecollection")],
    ("update", AGENTS, "status"), ("update", FAULTS, "status"), ("update", CHECKS, "status"),
    ("update", CHECKS, "finalizers"),  # the Faults' owner reference does not block deletion
    # No secrets, no config, no pods, no exec.
    *[(verb, "secrets", "") for verb in ("get", "list", "watch")],
    ("get", "configmaps", ""), ("list", "configmaps", ""), ("get", "configmaps/kube-root-ca.crt", ""),
    ("delete", "configmaps/agentops-ca", ""), ("patch", "configmaps/agentops-ca", ""),
    ("get", "pods", ""), ("watch", "pods", ""), ("delete", "pods", ""), ("create", "pods", "exec"),
    # Only its own webhook configuration's caBundle; no other admission webhook, none created.
    ("get", WEBHOOKS, ""), ("list", WEBHOOKS, ""), ("create", WEBHOOKS, ""), ("delete", f"{WEBHOOKS}/agentops-sidecar-injector", ""),
    ("update", f"{WEBHOOKS}/someone-elses", ""), ("update", "validatingwebhookconfigurations.admissionregistration.k8s.io", ""),
    # Authentication only: no authorization reviews on others' behalf.
    ("create", "subjectaccessreviews.authorization.k8s.io", ""),
    # A restart patches the pod template; nothing else on Deployments.
    *[(verb, DEPLOYMENTS, "") for verb in ("list", "watch", "create", "update", "delete")],
    ("patch", DEPLOYMENTS, "scale"), ("update", DEPLOYMENTS, "scale"),
    # Its own Events are created, never read back or changed.
    *[(verb, "events", "") for verb in ("list", "update", "patch", "delete")],
    # The halt annotations are set by people.
    *[(verb, "namespaces", "") for verb in ("create", "update", "patch", "delete")],
    *[(verb, CRDS, "") for verb in ("create", "update", "delete")],
    # No way to more rights.
    ("create", "serviceaccounts", "token"), ("impersonate", "serviceaccounts", ""), ("impersonate", "users", ""),
    ("bind", CLUSTERROLES, ""), ("escalate", CLUSTERROLES, ""), ("create", "clusterrolebindings.rbac.authorization.k8s.io", ""),
]
UI_READS = [(verb, resource, "") for resource in (AGENTS, FAULTS, "events") for verb in ("get", "list", "watch")]
UI_REFUSED = [
    *[(verb, resource, "") for resource in (AGENTS, FAULTS, "events", "pods", DEPLOYMENTS, "namespaces", "configmaps", "secrets")
      for verb in ("create", "update", "patch", "delete", "deletecollection")],
    ("patch", AGENTS, "status"), ("get", "secrets", ""), ("list", "pods", ""), ("get", "namespaces", ""),
]


@pytest.fixture(scope="module")
def renderings(cluster: Any) -> dict[str, Rendering]:
    return {path: render(cluster, path) for path in KUSTOMIZATIONS}


@pytest.fixture(scope="module")
def applied(cluster: Any, crds: Any) -> Iterator[AppliedObjects]:
    objects = AppliedObjects(cluster)
    try:
        yield objects
    finally:
        objects.delete_created()


@pytest.fixture(scope="module")
def namespaces(applied: AppliedObjects, renderings: dict[str, Rendering]) -> None:
    """Every Namespace the renderings declare, for real: a dry run cannot put an object
    into a namespace that does not exist, and Pod Security reads the namespace's labels."""
    unique = {ns["metadata"]["name"]: ns for r in renderings.values() for ns in r.of_kind("Namespace")}
    applied.apply(list(unique.values()))


@pytest.fixture(scope="module")
def rbac(applied: AppliedObjects, namespaces: None, renderings: dict[str, Rendering]) -> None:
    """The base's ServiceAccounts, roles and bindings and the sample agents' ServiceAccount, for real."""
    applied.apply([*renderings["manifests/base"].of_kind(*RBAC_KINDS),
                   *renderings["manifests/samples/cluster"].of_kind("ServiceAccount")])


def can_i(cluster: Any, who: str, verb: str, resource: str, subresource: str = "") -> bool:
    args = ["auth", "can-i", verb, resource, f"--as={who}", "--all-namespaces", *([f"--subresource={subresource}"] if subresource else [])]
    proc = cluster.kubectl(*args, check=False)
    answer: str = proc.stdout.strip()
    assert answer in ("yes", "no"), f"kubectl {' '.join(args)}: {proc.stdout}{proc.stderr}"
    return answer == "yes"


def wrong_answers(cluster: Any, who: str, checks: list[tuple[str, str, str]], *, expected: bool) -> list[str]:
    """The checks `kubectl auth can-i` does not answer with `expected` (asked a few at a time)."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda check: can_i(cluster, who, *check), checks))
    return [" ".join(filter(None, check)) for check, answer in zip(checks, answers) if answer != expected]


# --- 1. rendering ---


@pytest.mark.parametrize("path", KUSTOMIZATIONS)
def test_renders_without_warnings_and_labels_everything(renderings: dict[str, Rendering], path: str) -> None:
    rendering = renderings[path]
    assert rendering.objects, f"{path} rendered nothing"
    assert rendering.stderr.strip() == "", f"kubectl kustomize {path} warned:\n{rendering.stderr}"
    for obj in rendering.objects:
        templates = [obj["spec"]["template"]] if obj["kind"] == "Deployment" else []
        for where in (obj, *templates):
            missing = {"app.kubernetes.io/name", "app.kubernetes.io/part-of", "app.kubernetes.io/component"} - set(labels(where))
            assert not missing, f"{path}: {obj['kind']} {obj['metadata']['name']} lacks {sorted(missing)}"


def test_base_installs_what_the_operator_needs(renderings: dict[str, Rendering]) -> None:
    base = renderings["manifests/base"]
    assert {o["metadata"]["name"] for o in base.of_kind("CustomResourceDefinition")} == {AGENTS, FAULTS, CHECKS}
    operator = base.find("Deployment", "agentops-operator")
    assert operator["spec"]["replicas"] == 1 and operator["spec"]["strategy"] == {"type": "Recreate"}
    pod = operator["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["AGENTOPS_ALL_NAMESPACES"]["value"] == "1"
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["AGENTOPS_LIVENESS"]["value"] == "http://0.0.0.0:8081/healthz"
    assert env["AGENTOPS_TOKEN_AUDIENCE"]["value"] == "agentops"
    # No shared secret anywhere: no Secret is rendered, none is mounted, no static token is set.
    assert not [o for r in renderings.values() for o in r.of_kind("Secret")]
    for r in renderings.values():
        for name, pod in r.pod_specs():
            assert not [v for v in pod.get("volumes", []) if "secret" in v], name
            assert not [e for c in pod["containers"] for e in c.get("env", []) if "STATIC_TOKEN" in e["name"]], name
    assert container["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    service = base.find("Service", "agentops-operator")
    assert service["spec"]["ports"] == [{"name": "api", "port": 8080, "targetPort": "api"}]
    # The samples carry no sidecar: the operator's webhook injects it (tests/integration/test_injection_webhook.py).
    for name in ("chat", "summary"):
        pod = renderings["manifests/samples/cluster"].find("Deployment", name)["spec"]["template"]["spec"]
        assert [c["name"] for c in pod["containers"]] == ["agent"] and not pod.get("initContainers"), name
    (webhook_config,) = base.of_kind("MutatingWebhookConfiguration")
    for webhook in webhook_config["webhooks"]:
        assert (webhook["failurePolicy"], webhook["sideEffects"], webhook["timeoutSeconds"]) == ("Ignore", "None", 5), webhook
        assert webhook["clientConfig"]["service"] == {"name": "agentops-operator", "namespace": "agentops-system", "port": 8080,
                                                      "path": "/mutate-pods"}
        assert "caBundle" not in webhook["clientConfig"]  # the operator fills it in
        never = next(e for e in webhook["namespaceSelector"]["matchExpressions"] if e["key"] == "kubernetes.io/metadata.name")
        assert never["operator"] == "NotIn" and {"kube-system", "agentops-system"} <= set(never["values"])
        assert webhook["rules"] == [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"],
                                     "scope": "Namespaced"}]


@pytest.mark.parametrize("path", [p for p in KUSTOMIZATIONS if p != "crds"])
def test_pods_run_restricted_with_a_read_only_root(renderings: dict[str, Rendering], path: str) -> None:
    user = re.search(r"^USER (\d+)", (REPO_ROOT / "Dockerfile").read_text(), re.M)
    assert user is not None, "the Dockerfile sets no numeric USER"
    uid = int(user.group(1))
    for name, pod in renderings[path].pod_specs():
        context = pod["securityContext"]
        assert context["runAsNonRoot"] is True and context["runAsUser"] == uid, (name, context)
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}, name
        writable = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
        for container in pod["containers"]:
            where = f"{path}: {name}/{container['name']}"
            assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                                    "capabilities": {"drop": ["ALL"]}}, where
            tmp = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
            assert len(tmp) == 1 and tmp[0]["name"] in writable, f"{where}: no emptyDir on /tmp"
            assert container["resources"]["requests"] and container["resources"]["limits"], where


# --- 2. the API server accepts them ---


@pytest.mark.parametrize("path", KUSTOMIZATIONS)
def test_the_api_server_accepts_each_rendering(cluster: Any, renderings: dict[str, Rendering], namespaces: None, path: str) -> None:
    # cert-manager's kinds need cert-manager's CRDs, which this control plane does not have:
    # the overlay's other objects are checked here, its Certificates by the test after this one.
    objects = [o for o in renderings[path].objects if not o["apiVersion"].startswith("cert-manager.io/")]
    proc = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=manifest(objects))
    assert len(proc.stdout.splitlines()) == len(objects)
    # Pod Security admission answers a template that breaks "restricted" with a warning.
    assert "warning" not in proc.stderr.lower(), proc.stderr


@pytest.mark.parametrize("fault", SAMPLE_FAULTS, ids=lambda p: p.stem)
def test_the_api_server_accepts_each_sample_fault(cluster: Any, namespaces: None, fault: Path) -> None:
    proc = cluster.kubectl("apply", "--dry-run=server", "-f", str(fault))
    assert "created (server dry run)" in proc.stdout or "configured (server dry run)" in proc.stdout, proc.stdout
    assert proc.stderr.strip() == "", proc.stderr


@pytest.mark.parametrize("check", SAMPLE_CHECKS, ids=lambda p: p.stem)
def test_the_api_server_accepts_each_sample_check(cluster: Any, namespaces: None, check: Path) -> None:
    """In the namespace of the cluster samples, where the e2e workflow runs them."""
    proc = cluster.kubectl("apply", "--dry-run=server", "-n", "agents-demo", "-f", str(check))
    assert "created (server dry run)" in proc.stdout or "configured (server dry run)" in proc.stdout, proc.stdout
    assert proc.stderr.strip() == "", proc.stderr


def test_the_api_server_checks_the_syntax_of_a_schedule(cluster: Any, namespaces: None) -> None:
    """The CRD's pattern for spec.schedule refuses what is no cron expression; ranges and
    impossible dates are left to the operator (agentops/cron.py)."""
    check = yaml.safe_load((REPO_ROOT / "manifests" / "samples" / "check-summary.yaml").read_text())

    def dry_run(schedule: str) -> Any:
        body = {**check, "spec": {**check["spec"], "schedule": schedule}}
        return cluster.kubectl("apply", "--dry-run=server", "-n", "agents-demo", "-f", "-", input=manifest([body]), check=False)

    for good in ("*/15 9-17 * * MON-FRI", "0 0 1,15 jan-jun *", "@weekly", "5-55/10 */2 1-31/3 * 0-7/2"):
        assert dry_run(good).returncode == 0, (good, dry_run(good).stderr)
    for bad in ("every 5 minutes", "* * * *", "5/10 * * * *", "@reboot", "* * * * * *"):
        proc = dry_run(bad)
        assert proc.returncode != 0 and "spec.schedule" in proc.stderr, (bad, proc.stderr)


def test_sample_checks_test_the_sample_agents_and_say_how_to_run_them() -> None:
    from agentops_operator.check_settings import CheckSettings  # the operator's own reading of a spec

    local = {d["metadata"]["name"] for d in yaml.safe_load_all((REPO_ROOT / "manifests/samples/agents.yaml").read_text())}
    on_cluster = {d["metadata"]["name"] for path in (REPO_ROOT / "manifests/samples/cluster").glob("*.yaml")
                  for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == "Agent"}
    assert len(SAMPLE_CHECKS) >= 2
    for path in SAMPLE_CHECKS:
        text = path.read_text()
        check = yaml.safe_load(text)
        assert check["spec"]["agent"] in local & on_cluster, path.name
        assert "namespace" not in check["metadata"], f"{path.name}: the namespace is chosen with -n"
        settings = CheckSettings.from_spec(check["spec"])
        assert len(settings.experiments) >= 3 and any(e.fault_type == "Crash" for e in settings.experiments), path.name
        rel = path.relative_to(REPO_ROOT)
        assert f"#   agentops check run -f {rel} --min-score " in text and "--wait" in text, f"{path.name}: how to run it"


# --- 3. RBAC ---


def test_no_role_uses_a_wildcard(renderings: dict[str, Rendering]) -> None:
    roles = [role for r in renderings.values() for role in r.of_kind("Role", "ClusterRole")]
    assert {role["metadata"]["name"] for role in roles} >= {"agentops-operator", "agentops-ui"}
    for role in roles:
        assert "aggregationRule" not in role, role["metadata"]["name"]
        for rule in role["rules"]:
            for key in ("verbs", "apiGroups", "resources", "resourceNames", "nonResourceURLs"):
                assert not [v for v in rule.get(key, []) if "*" in v], f"{role['metadata']['name']}: {key} {rule[key]}"


def test_the_operator_may_do_exactly_what_it_uses(cluster: Any, rbac: None) -> None:
    assert wrong_answers(cluster, OPERATOR, OPERATOR_NEEDS, expected=True) == [], "refused, but the operator needs it"
    assert wrong_answers(cluster, OPERATOR, OPERATOR_REFUSED, expected=False) == [], "allowed, but the operator must not"


def test_the_operator_keeps_its_own_certificate_and_reads_no_other_secret(cluster: Any, rbac: None) -> None:
    def can(verb: str, resource: str, namespace: str) -> bool:
        out = str(cluster.kubectl("auth", "can-i", verb, resource, f"--as={OPERATOR}", "-n", namespace, check=False).stdout).strip()
        assert out in ("yes", "no"), out
        return out == "yes"

    allowed = [("get", "secrets/agentops-operator-tls"), ("update", "secrets/agentops-operator-tls"), ("create", "secrets")]
    assert [c for c in allowed if not can(*c, "agentops-system")] == []
    refused = [("get", "secrets/agentops-ui-token", "agentops-system"), ("list", "secrets", "agentops-system"),
               ("watch", "secrets", "agentops-system"), ("delete", "secrets/agentops-operator-tls", "agentops-system"),
               ("get", "secrets/agentops-operator-tls", "agents-demo"), ("create", "secrets", "agents-demo")]
    assert [c for c in refused if can(*c)] == []


def test_the_cert_manager_overlay_reads_its_certificate_and_writes_none(renderings: dict[str, Rendering]) -> None:
    overlay = renderings[CERT_MANAGER]
    (certificate,) = [c for c in overlay.of_kind("Certificate") if c["spec"]["secretName"] == "agentops-operator-tls"]
    assert set(certificate["spec"]["dnsNames"]) == {"agentops-operator.agentops-system.svc",
                                                   "agentops-operator.agentops-system.svc.cluster.local"}
    issuer = certificate["spec"]["issuerRef"]["name"]
    assert overlay.find("Issuer", issuer)["spec"]["ca"]["secretName"] == "agentops-ca"
    env = {e["name"]: e.get("value") for e in overlay.find("Deployment", "agentops-operator")["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["AGENTOPS_TLS"] == "secret"
    assert overlay.find("Role", "agentops-operator-tls")["rules"] == [
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["agentops-operator-tls"], "verbs": ["get"]}]


def test_the_ui_reads_agents_faults_and_events_and_writes_nothing(cluster: Any, rbac: None) -> None:
    assert wrong_answers(cluster, UI, UI_READS, expected=True) == [], "refused, but the UI shows it"
    assert wrong_answers(cluster, UI, UI_REFUSED, expected=False) == [], "allowed, but the UI is read-only"


def test_the_sidecar_identity_has_no_rights_at_all(cluster: Any, rbac: None, renderings: dict[str, Rendering]) -> None:
    def rights(user: str) -> str:
        return str(cluster.kubectl("auth", "can-i", "--list", f"--as={user}", "-n", "agents-demo").stdout)

    # Exactly what every authenticated identity may do (discovery, self-reviews).
    fresh = f"system:serviceaccount:agents-demo:nobody-{uuid.uuid4().hex[:8]}"
    assert rights(SIDECAR) == rights(fresh)
    assert "agentops.dev" not in rights(SIDECAR)
    samples = renderings["manifests/samples/cluster"]
    assert samples.find("ServiceAccount", "agentops-sidecar")["automountServiceAccountToken"] is False
    for name in ("chat", "summary"):
        pod = samples.find("Deployment", name)["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == "agentops-sidecar" and pod["automountServiceAccountToken"] is False, name
    bindings = [b for r in renderings.values() for b in r.of_kind("RoleBinding", "ClusterRoleBinding")]
    assert not [b for b in bindings for s in b["subjects"] if s["name"] == "agentops-sidecar"]


@pytest.mark.timeout(120)
def test_the_operator_heals_and_runs_checks_with_nothing_but_its_own_rights(
        cluster: Any, rbac: None, renderings: dict[str, Rendering], namespace: str, tmp_path: Path) -> None:
    """The real operator, with only its ServiceAccount's token, watches, writes status
    and Events, restarts a Deployment and runs a ResilienceCheck (creates its
    experiment's Fault, deletes it once judged) - and not one request of it is refused."""
    if os.environ.get("AGENTOPS_TEST_EXISTING_CLUSTER") == "1":
        pytest.skip("an installed operator watches every namespace and would heal the same agent")
    kubeconfig = service_account_kubeconfig(str(cluster.kubectl_path), cluster.env(), namespace="agentops-system",
                                            service_account="agentops-operator", path=tmp_path / "operator.kubeconfig",
                                            duration="1h")
    samples = renderings["manifests/samples/cluster"]
    agent = samples.find("Agent", "chat")
    quick = {**agent, "spec": {**agent["spec"], "healing": {"unhealthyFor": "1s", "verifyTimeout": "30s"}}}
    kube = Kube(cluster, namespace)
    kube.apply(as_json(samples.find("Deployment", "chat"), namespace=namespace))
    kube.apply(as_json(quick, namespace=namespace))
    kube.apply(as_json(yaml.safe_load((REPO_ROOT / "manifests/samples/cluster/faults/latency.yaml").read_text()), namespace=namespace))
    operator = OperatorProcess(env={**cluster.env(), "KUBECONFIG": str(kubeconfig)}, namespace=namespace, cluster=cluster,
                               log_path=tmp_path / "operator.log", extra_args=["--status-heartbeat", "1s"],
                               tls_secret="agentops-system/agentops-operator-tls",  # where its Role lets it write
                               token=mint_token(cluster, namespace, "agentops-sidecar"))  # the sample Agent's identity
    operator.start()
    try:
        # Fault status (faults/status), then a restart (deployments get + patch,
        # agents/status, events) for an agent whose sidecar reports it sick.
        wait_for(lambda: kube.status("fault", "chat-latency").get("phase") == "Active", timeout=20, what="the fault Active")
        with TelemetryFeed(operator, namespace) as telemetry:
            telemetry.set("chat", sick=True)
            wait_for(lambda: kube.status("agent", "chat").get("restartCount", 0) >= 1, timeout=30, what="a restart")
        annotations = kube.get("deployment", "chat")["spec"]["template"]["metadata"].get("annotations") or {}
        assert "agentops.dev/restart-token" in annotations
        assert "RestartStarted" in kube.event_reasons("chat")
        # A check of one short experiment on the healed agent (resiliencechecks watch and
        # status, faults create and delete).
        check = {"apiVersion": "agentops.dev/v1alpha1", "kind": "ResilienceCheck", "metadata": {"name": "rights"},
                 "spec": {"agent": "chat", "steadyState": {"baseline": "2s", "settle": "1s"},
                          "experiments": [{"name": "errors", "fault": {"type": "Error", "error": {}, "duration": "2s"},
                                           "expect": {"recoveryDeadline": "20s"}}]}}
        kube.delete("fault", "chat-latency")  # a check waits while a fault of others strikes its agent
        with TelemetryFeed(operator, namespace) as telemetry:
            telemetry.set("chat", sick=False, instance="i-2")  # the restarted instance
            kube.apply(as_json(check, namespace=namespace))
            wait_for(lambda: (kube.status("resiliencecheck", "rights").get("runs") or [{}])[0].get("phase") == "Completed",
                     timeout=60, what="the check's run Completed")
        (judged,) = kube.status("resiliencecheck", "rights")["runs"][0]["experiments"]
        assert judged.get("faultPhase") == "Expired" and "verdict" in judged, judged
        gone = ("get", "fault", judged["fault"], "-n", namespace, "--ignore-not-found", "-o", "name")
        wait_for(lambda: cluster.kubectl(*gone).stdout.strip() == "", timeout=20, what="the experiment's Fault deleted")
    finally:
        operator.stop()
    log = operator.log_path.read_text()
    # Past the timestamp ("2026-01-01 10:00:00,403 INFO ..."), whose milliseconds can read 403.
    refused = [line for line in log.splitlines() if re.search(r"\b403\b|forbidden|permission", line.split(" ", 2)[-1], re.I)]
    assert refused == [], "\n".join(refused)


# --- 4. kind and the e2e workflow ---


def test_kind_config_pins_a_node_image_and_forwards_the_ui(renderings: dict[str, Rendering]) -> None:
    config = yaml.safe_load((REPO_ROOT / "kind-config.yaml").read_text())
    (node,) = config["nodes"]
    image = re.fullmatch(r"kindest/node:v1\.(\d+)\.\d+@sha256:[0-9a-f]{64}", node["image"])
    assert image and int(image.group(1)) >= 29, node["image"]  # CEL validation rules in the CRDs
    (mapping,) = node["extraPortMappings"]
    ui = renderings["manifests/overlays/kind"].find("Service", "agentops-ui")["spec"]
    assert ui["type"] == "NodePort" and ui["ports"][0]["nodePort"] == mapping["containerPort"]
    assert mapping["listenAddress"] == "127.0.0.1"


def test_the_e2e_workflow_walks_the_original_workflow_on_kind() -> None:
    workflow = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "e2e-kind.yaml").read_text())
    (job,) = workflow["jobs"].values()
    steps = job["steps"]
    assert all(re.search(r"@[0-9a-f]{40}$", s["uses"]) for s in steps if "uses" in s), "actions pinned by commit"
    script = "\n".join(s.get("run", "") for s in steps if s.get("if") != "failure()")
    assert "create secret" not in script, "no shared secret: sidecars prove who they are"
    in_order = [
        "kind create cluster --config kind-config.yaml",
        "docker build -t agentops:dev .",
        "kind load docker-image agentops:dev",
        "kubectl apply -k manifests/overlays/kind",
        "--for=condition=Established",
        "--for=condition=Available deployment/agentops-operator",
        "kubectl label namespace \"$NS\" agentops.dev/inject=enabled",
        "kubectl apply -k manifests/samples/cluster",
        "initContainers[0].name",
        "--for=condition=Ready agent/chat",
        "faults/latency.yaml",
        "=Degraded agent/chat",
        "faults/crash.yaml",
        "restartCount",
        "--for=condition=Ready agent/chat",
        "agentops check run -f manifests/samples/check-chat.yaml -n \"$NS\" --min-score 0 --wait",
        "--junit check-report.xml",
    ]
    at = 0
    for text in in_order:
        found = script.find(text, at)
        assert found >= 0, f"the workflow does not {text!r} after the steps before it"
        at = found + len(text)
    for path in re.findall(r"(?:manifests/[\w./-]+|kind-config\.yaml)", script):
        assert (REPO_ROOT / path).exists(), path
    # The check's JUnit report is kept also when its gate fails (not on a cancelled run).
    (upload,) = [s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert upload["if"] == "${{ !cancelled() }}" and "check-report.xml" in upload["with"]["path"]
    diagnostics = [s for s in steps if s.get("if") == "failure()"]
    assert diagnostics and "deployment/agentops-operator" in diagnostics[0]["run"]
