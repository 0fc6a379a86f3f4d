"""The sidecar injection decision and its JSONPatch (injection.decide), without an API server.

Patches are applied with the `jsonpatch` package (kopf's own dependency, an RFC 6902
implementation), so each test checks the pod the API server would store, not the ops.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import jsonpatch
import pytest

from agentops_operator.injection import (SIDECAR_NAME, Decision, InjectionConfig, SidecarResources, agent_name, decide,
                                         has_sidecar, opted_out, pointer, quantity)

CONFIG = InjectionConfig(image="agentops:1.2.3")
NS = "agents-demo"

Pod = dict[str, Any]


def deployment_pod(*, labels: Mapping[str, str] | None = None, annotations: Mapping[str, str] | None = None,
                   ports: list[dict[str, Any]] | None = None, **spec: Any) -> Pod:
    """A pod as the ReplicaSet controller sends it to admission: generateName, no name, an owner."""
    metadata: dict[str, Any] = {
        "generateName": "chat-7d9c5b6f48-",
        "labels": {"app": "chat", "pod-template-hash": "7d9c5b6f48", **(labels or {})},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "chat-7d9c5b6f48",
                             "uid": "u-1", "controller": True, "blockOwnerDeletion": True}],
    }
    if annotations is not None:
        metadata["annotations"] = dict(annotations)
    agent = {"name": "agent", "image": "chat:1",
             "ports": [{"name": "http", "containerPort": 8000}] if ports is None else ports}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": {"containers": [agent], **spec}}


def injected(pod: Pod, config: InjectionConfig = CONFIG) -> tuple[Pod, Decision]:
    decision = decide(pod, NS, config)
    assert decision.patch is not None, f"not injected: {decision.reason} {decision.warnings}"
    assert decision.reason == "injected"
    return jsonpatch.apply_patch(pod, decision.patch), decision


def refused(pod: Pod, reason: str, config: InjectionConfig = CONFIG) -> Decision:
    decision = decide(pod, NS, config)
    assert decision.patch is None and decision.reason == reason, decision
    return decision


def sidecar(pod: Pod) -> dict[str, Any]:
    first: dict[str, Any] = pod["spec"]["initContainers"][0]
    assert first["name"] == SIDECAR_NAME
    return first


def env(container: Mapping[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def ports(container: Mapping[str, Any]) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container.get("ports") or []}


# --- agent name -------------------------------------------------------------------------

def test_the_agent_label_wins_over_the_annotation_and_the_owner() -> None:
    pod = deployment_pod(labels={"agentops.dev/agent": "from-label"}, annotations={"agentops.dev/agent": "from-ann"})
    assert agent_name(pod) == "from-label"
    del pod["metadata"]["labels"]["agentops.dev/agent"]
    assert agent_name(pod) == "from-ann"


def test_a_deployment_pod_is_named_for_its_deployment_by_stripping_the_template_hash() -> None:
    assert agent_name(deployment_pod()) == "chat"
    # A Deployment whose own name ends in something hash-like keeps it: only `-<hash>` goes.
    pod = deployment_pod()
    pod["metadata"]["ownerReferences"][0]["name"] = "chat-v2-7d9c5b6f48"
    assert agent_name(pod) == "chat-v2"


def test_other_owners_name_the_agent_as_they_are() -> None:
    pod = deployment_pod()
    pod["metadata"]["ownerReferences"] = [{"kind": "StatefulSet", "name": "memory-7d9c5b6f48", "controller": True}]
    assert agent_name(pod) == "memory-7d9c5b6f48"  # the hash is only stripped from a ReplicaSet
    del pod["metadata"]["labels"]["pod-template-hash"]
    pod["metadata"]["ownerReferences"] = [{"kind": "ReplicaSet", "name": "bare-rs", "controller": True}]
    assert agent_name(pod) == "bare-rs"  # a ReplicaSet of no Deployment
    pod["metadata"]["labels"]["pod-template-hash"] = "zzz"
    assert agent_name(pod) == "bare-rs"  # its name does not end in the hash


def test_the_controlling_owner_is_the_one_that_counts() -> None:
    pod = deployment_pod()
    pod["metadata"]["ownerReferences"].insert(0, {"kind": "ConfigMap", "name": "not-me"})
    assert agent_name(pod) == "chat"
    pod["metadata"]["ownerReferences"] = [{"kind": "Job", "name": "nightly-eval"}]  # no controller flag
    assert agent_name(pod) == "nightly-eval"


def test_a_bare_pod_without_a_name_source_is_not_injected() -> None:
    pod: Pod = {"metadata": {"name": "lonely"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    assert agent_name(pod) is None
    decision = refused(pod, "no agent name")
    assert "agentops.dev/agent" in decision.warnings[0]


def test_an_agent_name_that_is_no_object_name_is_refused() -> None:
    decision = refused(deployment_pod(labels={"agentops.dev/agent": "Chat_Bot"}), "bad agent name")
    assert decision.agent == "Chat_Bot" and "lowercase" in decision.warnings[0]


# --- opting out, idempotence --------------------------------------------------------------

@pytest.mark.parametrize("where", ["annotations", "labels"])
def test_a_pod_opts_out_by_annotation_or_label(where: str) -> None:
    pod = deployment_pod(annotations={})
    pod["metadata"][where]["agentops.dev/inject"] = "disabled"
    assert opted_out(pod)
    refused(pod, "opted out")


def test_enabled_is_not_opting_out() -> None:
    pod = deployment_pod(labels={"agentops.dev/inject": "enabled"})
    assert not opted_out(pod)
    injected(pod)


def test_an_injected_pod_is_left_alone_on_reinvocation() -> None:
    pod, _ = injected(deployment_pod())
    assert has_sidecar(pod)
    refused(pod, "already injected")
    # Another webhook changed the pod after ours (why the API server calls again): still alone.
    pod["spec"]["initContainers"].append({"name": "istio-init", "image": "proxyv2"})
    pod["metadata"]["annotations"]["other.example/touched"] = "yes"
    refused(pod, "already injected")


def test_a_pod_is_not_changed_by_deciding() -> None:
    pod = deployment_pod(annotations={"a": "b"}, initContainers=[{"name": "migrate", "image": "m"}], volumes=[])
    before = copy.deepcopy(pod)
    injected(pod)
    assert pod == before


# --- the patch's shape --------------------------------------------------------------------

def test_a_pod_without_init_containers_volumes_or_annotations_gets_them_created() -> None:
    pod = deployment_pod()
    assert "annotations" not in pod["metadata"] and "volumes" not in pod["spec"]
    out, decision = injected(pod)
    paths = {op["path"] for op in decision.patch or []}
    assert {"/spec/initContainers", "/spec/volumes", "/metadata/annotations"} <= paths
    assert [c["name"] for c in out["spec"]["initContainers"]] == [SIDECAR_NAME]
    assert [v["name"] for v in out["spec"]["volumes"]] == ["agentops-identity", "agentops-ca", "agentops-sidecar-tmp"]
    assert out["metadata"]["annotations"] == {"agentops.dev/injected": "chat"}
    assert decision.agent == "chat" and decision.warnings == []


def test_null_members_are_created_as_if_absent() -> None:
    pod = deployment_pod(initContainers=None, volumes=None)
    pod["metadata"]["annotations"] = None
    out, _ = injected(pod)
    assert sidecar(out)["restartPolicy"] == "Always"
    assert out["metadata"]["annotations"] == {"agentops.dev/injected": "chat"}


def test_existing_init_containers_volumes_and_annotations_are_kept_after_ours() -> None:
    pod = deployment_pod(annotations={"team": "search"},
                         initContainers=[{"name": "migrate", "image": "m"}, {"name": "warm", "image": "w"}],
                         volumes=[{"name": "data", "emptyDir": {}}])
    out, decision = injected(pod)
    assert [c["name"] for c in out["spec"]["initContainers"]] == [SIDECAR_NAME, "migrate", "warm"]
    assert [v["name"] for v in out["spec"]["volumes"]] == ["data", "agentops-identity", "agentops-ca",
                                                           "agentops-sidecar-tmp"]
    assert out["metadata"]["annotations"] == {"team": "search", "agentops.dev/injected": "chat"}
    ops = {op["path"]: op for op in decision.patch or []}
    assert ops["/spec/initContainers/0"]["op"] == "add"
    # The annotation key holds a '/', escaped as ~1 (RFC 6901) or it would name a nested member.
    assert ops["/metadata/annotations/agentops.dev~1injected"]["value"] == "chat"


def test_pointers_escape_tilde_before_slash() -> None:
    assert pointer("metadata", "annotations", "a~b/c") == "/metadata/annotations/a~0b~1c"
    assert pointer("spec", "containers", 0, "ports", 1, "name") == "/spec/containers/0/ports/1/name"


def test_the_sidecar_mirrors_the_former_kustomize_patch() -> None:
    out, _ = injected(deployment_pod())
    container = sidecar(out)
    assert container["image"] == "agentops:1.2.3" and container["imagePullPolicy"] == "IfNotPresent"
    assert container["args"] == ["sidecar"]
    assert env(container) == {
        "AGENTOPS_AGENT": "chat",
        "AGENTOPS_NAMESPACE": {"fieldRef": {"fieldPath": "metadata.namespace"}},
        "POD_NAME": {"fieldRef": {"fieldPath": "metadata.name"}},
        "AGENTOPS_SIDECAR_ID": "$(POD_NAME)",
        "AGENTOPS_OPERATOR_URL": "https://agentops-operator.agentops-system.svc:8080",
        "AGENTOPS_IDENTITY_TOKEN_FILE": "/var/run/secrets/agentops.dev/identity/token",
        "AGENTOPS_OPERATOR_CA_FILE": "/var/run/secrets/agentops.dev/ca/ca.crt",
        "AGENTOPS_UPSTREAM": "http://127.0.0.1:8000",
        "AGENTOPS_LISTEN": "0.0.0.0:8080",
        "AGENTOPS_ADMIN_LISTEN": "0.0.0.0:9901",
        "AGENTOPS_HEALTH_PATH": "/healthz",
    }
    # $(POD_NAME) expands only from a variable defined earlier in the list.
    names = [e["name"] for e in container["env"]]
    assert names.index("POD_NAME") < names.index("AGENTOPS_SIDECAR_ID")
    assert ports(container) == {"http": 8080, "admin": 9901}
    assert container["startupProbe"] == {"httpGet": {"path": "/healthz", "port": "admin"}, "periodSeconds": 1,
                                         "failureThreshold": 30}
    assert container["readinessProbe"] == {"httpGet": {"path": "/readyz", "port": "admin"}, "periodSeconds": 5,
                                           "timeoutSeconds": 2}
    assert container["livenessProbe"] == {"httpGet": {"path": "/healthz", "port": "admin"}, "periodSeconds": 10,
                                          "timeoutSeconds": 5}
    assert container["resources"] == {"requests": {"cpu": "50m", "memory": "64Mi"},
                                      "limits": {"cpu": "500m", "memory": "128Mi"}}
    assert {m["name"]: (m["mountPath"], m.get("readOnly", False)) for m in container["volumeMounts"]} == {
        "agentops-identity": ("/var/run/secrets/agentops.dev/identity", True),
        "agentops-ca": ("/var/run/secrets/agentops.dev/ca", True),
        "agentops-sidecar-tmp": ("/tmp", False)}
    volumes = {v["name"]: v for v in out["spec"]["volumes"]}
    assert volumes["agentops-identity"]["projected"]["sources"] == [
        {"serviceAccountToken": {"audience": "agentops", "expirationSeconds": 3600, "path": "token"}}]
    assert volumes["agentops-ca"]["configMap"] == {"name": "agentops-ca",
                                                   "items": [{"key": "ca.crt", "path": "ca.crt"}]}
    assert volumes["agentops-sidecar-tmp"]["emptyDir"] == {"sizeLimit": "32Mi"}


def test_the_configuration_reaches_the_container() -> None:
    config = InjectionConfig(image="registry.example/agentops:9", image_pull_policy="Always",
                             operator_url="https://ops.example:9443", audience="ops", ca_configmap="ops-ca",
                             token_expiration_s=1800, proxy_port=18080, admin_port=19901, default_agent_port=7000,
                             health_path="/health", resources=SidecarResources(cpu_limit="1"), run_as_user=20000)
    out, _ = injected(deployment_pod(ports=[]), config)
    container = sidecar(out)
    assert env(container)["AGENTOPS_UPSTREAM"] == "http://127.0.0.1:7000"
    assert env(container)["AGENTOPS_ADMIN_LISTEN"] == "0.0.0.0:19901"
    assert env(container)["AGENTOPS_HEALTH_PATH"] == "/health"
    assert ports(container) == {"http": 18080, "admin": 19901}
    assert container["resources"]["limits"]["cpu"] == "1"
    assert container["securityContext"]["runAsUser"] == 20000
    volumes = {v["name"]: v for v in out["spec"]["volumes"]}
    assert volumes["agentops-identity"]["projected"]["sources"][0]["serviceAccountToken"]["audience"] == "ops"
    assert volumes["agentops-ca"]["configMap"]["name"] == "ops-ca"


# --- ports: the convention ----------------------------------------------------------------

def test_the_agents_http_port_is_renamed_and_its_name_moves_to_the_sidecar() -> None:
    out, decision = injected(deployment_pod(ports=[{"name": "metrics", "containerPort": 9090},
                                                   {"name": "http", "containerPort": 3000}]))
    assert ports(out["spec"]["containers"][0]) == {"metrics": 9090, "agent-http": 3000}
    assert ports(sidecar(out))["http"] == 8080
    assert env(sidecar(out))["AGENTOPS_UPSTREAM"] == "http://127.0.0.1:3000"
    rename = [op for op in decision.patch or [] if op["op"] == "replace"]
    assert rename == [{"op": "replace", "path": "/spec/containers/0/ports/1/name", "value": "agent-http"}]


def test_the_first_container_with_an_http_port_is_the_agent() -> None:
    pod = deployment_pod(ports=[])
    pod["spec"]["containers"] += [{"name": "app", "image": "a", "ports": [{"name": "http", "containerPort": 5000}]},
                                  {"name": "helper", "image": "h", "ports": [{"name": "http", "containerPort": 5001}]}]
    out, decision = injected(pod)
    assert env(sidecar(out))["AGENTOPS_UPSTREAM"] == "http://127.0.0.1:5000"
    assert ports(out["spec"]["containers"][1]) == {"agent-http": 5000}
    # The other keeps its name, and would take Services past the sidecar: the user is told.
    assert ports(out["spec"]["containers"][2]) == {"http": 5001}
    assert len(decision.warnings) == 1 and "helper" in decision.warnings[0]


def test_an_annotated_agent_port_renames_only_a_matching_http_port() -> None:
    out, _ = injected(deployment_pod(annotations={"agentops.dev/agent-port": "8000"}))
    assert ports(out["spec"]["containers"][0]) == {"agent-http": 8000}
    out, decision = injected(deployment_pod(annotations={"agentops.dev/agent-port": "8001"}))
    assert env(sidecar(out))["AGENTOPS_UPSTREAM"] == "http://127.0.0.1:8001"
    assert ports(out["spec"]["containers"][0]) == {"http": 8000}
    assert "not the agent port 8001" in decision.warnings[0]


def test_without_an_http_port_the_agent_port_is_the_default() -> None:
    out, decision = injected(deployment_pod(ports=[{"name": "grpc", "containerPort": 9000}]))
    assert env(sidecar(out))["AGENTOPS_UPSTREAM"] == "http://127.0.0.1:8000"
    assert not [op for op in decision.patch or [] if op["op"] == "replace"]


def test_annotations_tune_proxy_port_health_path_and_resources() -> None:
    out, _ = injected(deployment_pod(annotations={
        "agentops.dev/proxy-port": "8081", "agentops.dev/health-path": "/ping?deep=1",
        "agentops.dev/sidecar-cpu-request": "0.1", "agentops.dev/sidecar-cpu-limit": "2",
        "agentops.dev/sidecar-memory-request": "100M", "agentops.dev/sidecar-memory-limit": "1Gi"}))
    container = sidecar(out)
    assert ports(container)["http"] == 8081 and env(container)["AGENTOPS_LISTEN"] == "0.0.0.0:8081"
    assert env(container)["AGENTOPS_HEALTH_PATH"] == "/ping?deep=1"
    assert container["resources"] == {"requests": {"cpu": "0.1", "memory": "100M"},
                                      "limits": {"cpu": "2", "memory": "1Gi"}}


# --- refusals -------------------------------------------------------------------------------

@pytest.mark.parametrize(("annotations", "reason", "named"), [
    ({"agentops.dev/agent-port": "http"}, "bad annotation agentops.dev/agent-port", "1-65535"),
    ({"agentops.dev/agent-port": "0"}, "bad annotation agentops.dev/agent-port", "1-65535"),
    ({"agentops.dev/proxy-port": "65536"}, "bad annotation agentops.dev/proxy-port", "1-65535"),
    ({"agentops.dev/proxy-port": " 8081"}, "bad annotation agentops.dev/proxy-port", "1-65535"),
    ({"agentops.dev/proxy-port": "8000"}, "port conflict", "agentops.dev/proxy-port"),  # the agent's port
    ({"agentops.dev/proxy-port": "9901"}, "port conflict", "agentops.dev/proxy-port"),  # the admin port
    ({"agentops.dev/agent-port": "9901"}, "port conflict", "agentops.dev/agent-port"),
    ({"agentops.dev/health-path": "healthz"}, "bad annotation agentops.dev/health-path", "starts with '/'"),
    ({"agentops.dev/health-path": "/a b"}, "bad annotation agentops.dev/health-path", "no spaces"),
    ({"agentops.dev/sidecar-cpu-limit": "lots"}, "bad annotation agentops.dev/sidecar-cpu-limit", "250m"),
    ({"agentops.dev/sidecar-memory-request": "-64Mi"}, "bad annotation agentops.dev/sidecar-memory-request",
     "128Mi"),
    ({"agentops.dev/sidecar-memory-request": "256Mi"}, "bad annotation agentops.dev/sidecar-memory-request",
     "request <= limit"),  # above the default limit: the API server would refuse the pod
])
def test_a_bad_annotation_is_refused_with_a_warning_saying_what_is_allowed(
        annotations: dict[str, str], reason: str, named: str) -> None:
    decision = refused(deployment_pod(annotations=annotations), reason)
    assert decision.agent == "chat"
    (warning,) = decision.warnings
    assert named in warning and next(iter(annotations)) in warning


def test_an_agent_on_the_proxy_port_must_move_the_proxy() -> None:
    decision = refused(deployment_pod(ports=[{"name": "http", "containerPort": 8080}]), "port conflict")
    assert "agentops.dev/proxy-port" in decision.warnings[0] and "named http" in decision.warnings[0]
    out, _ = injected(deployment_pod(ports=[{"name": "http", "containerPort": 8080}],
                                     annotations={"agentops.dev/proxy-port": "8081"}))
    assert env(sidecar(out))["AGENTOPS_UPSTREAM"] == "http://127.0.0.1:8080"
    assert ports(out["spec"]["containers"][0]) == {"agent-http": 8080}


def test_a_pod_with_a_copied_sidecar_is_refused_not_doubled() -> None:
    # The former kustomize patch: a regular container with the sidecar's ports and volumes.
    pod = deployment_pod(volumes=[{"name": "agentops-identity", "projected": {"sources": []}}])
    pod["spec"]["containers"].append({"name": "sidecar", "image": "agentops:dev", "args": ["sidecar"],
                                      "ports": [{"name": "http", "containerPort": 8080},
                                                {"name": "admin", "containerPort": 9901}]})
    assert "sidecar" in refused(pod, "port conflict").warnings[0]
    pod["spec"]["containers"].pop()
    assert "agentops-identity" in refused(pod, "volume name in use").warnings[0]


def test_a_udp_port_of_the_same_number_is_no_conflict() -> None:
    pod = deployment_pod()
    pod["spec"]["containers"][0]["ports"].append({"name": "stats", "containerPort": 9901, "protocol": "UDP"})
    injected(pod)


def test_a_container_that_already_has_a_port_named_agent_http_is_refused() -> None:
    pod = deployment_pod(ports=[{"name": "http", "containerPort": 8000}, {"name": "agent-http", "containerPort": 8001}])
    refused(pod, "port conflict")


def test_a_host_network_pod_is_refused() -> None:
    refused(deployment_pod(hostNetwork=True), "host network")


def test_the_configuration_is_checked_when_made() -> None:
    with pytest.raises(ValueError, match="image must not be empty"):
        InjectionConfig(image="")
    with pytest.raises(ValueError, match="must differ"):
        InjectionConfig(image="x", proxy_port=9901)
    with pytest.raises(ValueError, match="memory"):
        InjectionConfig(image="x", resources=SidecarResources(memory_limit="128 Mi"))
    with pytest.raises(ValueError, match="token_expiration_s"):
        InjectionConfig(image="x", token_expiration_s=60)


@pytest.mark.parametrize(("text", "value"), [
    ("50m", Decimal("0.05")), ("0.5", Decimal("0.5")), (".5", Decimal("0.5")), ("2", Decimal(2)),
    ("64Mi", Decimal(64 * 2**20)), ("1G", Decimal(10**9)), ("1e3", Decimal(1000)), ("1E3", Decimal(1000)),
    ("1E", Decimal(10**18)), ("100u", Decimal("0.0001")),
    ("", None), ("-1", None), ("+1", None), ("1 Mi", None), ("1mi", None), ("Mi", None), ("1.2.3", None),
])
def test_quantities(text: str, value: Decimal | None) -> None:
    assert quantity(text) == value


# --- the "restricted" Pod Security Standard ---------------------------------------------------

# Volume types the restricted profile allows (Pod Security Standards, "Volume Types").
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                      "projected", "secret"}


def restricted_violations(pod: Mapping[str, Any], container_names: set[str], volume_names: set[str]) -> list[str]:
    """Where the named containers and volumes of `pod` break the restricted profile's rules.

    Per container, the pod-level securityContext counts where the standard lets it
    (runAsNonRoot, runAsUser, seccompProfile).
    """
    spec = pod["spec"]
    pod_context = spec.get("securityContext") or {}
    problems = []
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            problems.append(f"pod {field}")
    for volume in spec.get("volumes") or []:
        if volume["name"] in volume_names:
            kinds = set(volume) - {"name"}
            if not kinds <= RESTRICTED_VOLUMES:
                problems.append(f"volume {volume['name']}: {sorted(kinds - RESTRICTED_VOLUMES)}")
    for container in [*(spec.get("initContainers") or []), *spec["containers"]]:
        if container["name"] not in container_names:
            continue
        name, context = container["name"], container.get("securityContext") or {}

        def setting(key: str) -> Any:
            return context.get(key, pod_context.get(key))

        if context.get("privileged"):
            problems.append(f"{name}: privileged")
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation must be false")
        capabilities = context.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            problems.append(f"{name}: capabilities must drop ALL")
        if set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: adds capabilities")
        if setting("runAsNonRoot") is not True:
            problems.append(f"{name}: runAsNonRoot must be true")
        if setting("runAsUser") == 0:
            problems.append(f"{name}: runAsUser 0")
        if (setting("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile must be RuntimeDefault or Localhost")
        if any(p.get("hostPort") for p in container.get("ports") or []):
            problems.append(f"{name}: hostPort")
    return problems


def test_what_the_sidecar_adds_passes_the_restricted_standard_in_a_pod_that_says_nothing() -> None:
    out, _ = injected(deployment_pod())
    assert "securityContext" not in out["spec"]  # nothing to lean on: the sidecar's own context does it
    added = {"agentops-identity", "agentops-ca", "agentops-sidecar-tmp"}
    assert restricted_violations(out, {SIDECAR_NAME}, added) == []
    assert sidecar(out)["securityContext"]["readOnlyRootFilesystem"] is True


def test_the_restricted_check_catches_what_it_is_for() -> None:
    # The check itself, on a container that breaks each rule, so a pass above means something.
    pod: Pod = {"spec": {"hostNetwork": True,
                         "volumes": [{"name": "host", "hostPath": {"path": "/"}}],
                         "containers": [{"name": "bad", "ports": [{"containerPort": 80, "hostPort": 80}],
                                         "securityContext": {"privileged": True, "runAsUser": 0,
                                                             "capabilities": {"add": ["SYS_ADMIN"]}}}]}}
    problems = restricted_violations(pod, {"bad"}, {"host"})
    assert len(problems) == 10, problems


def test_an_agent_named_by_its_owner_gets_the_agent_label_for_monitors_and_selectors() -> None:
    patched, decision = injected(deployment_pod())
    assert patched["metadata"]["labels"]["agentops.dev/agent"] == decision.agent == "chat"
    labelled, _ = injected(deployment_pod(labels={"agentops.dev/agent": "support"}))
    assert labelled["metadata"]["labels"]["agentops.dev/agent"] == "support"  # its own label, untouched
