"""Whether a new pod gets the AgentOps sidecar, and the JSONPatch that adds it (pure).

The admission webhook hands `decide` the pod of a CREATE request; the answer is an RFC 6902
patch, or None with the reason. Whether a pod is *in scope* (its namespace or its own label
says `agentops.dev/inject=enabled`) is the webhook configuration's selectors' business, not
this module's: `decide` injects every pod it is given unless the pod opted out, already has
the sidecar, or cannot be injected safely. The last case is refused rather than patched on
a guess, because a patch that makes the pod invalid fails the pod's creation outright
(`failurePolicy: Ignore` covers only an unreachable webhook, not a bad answer), while a pod
left bare still runs and is reported on its Agent as SidecarMissing.

The sidecar is a native sidecar (an init container with `restartPolicy: Always`), inserted
first so it starts, and passes its startup probe, before any other init container and
before the agent; the kubelet stops it after the agent. Port convention: Services target
the port NAMED `http`. The sidecar takes that name (its proxy), the agent keeps its port
number under the name `agent-http`, so a Service written for the bare agent goes through
the sidecar without being edited. Kubernetes resolves a named port in the pod's containers
before its restartable init containers, which is why the agent's `http` must be renamed
and not merely shadowed (and EndpointSlices resolve init containers' named ports only from
Kubernetes 1.33, kubernetes/kubernetes#128850, the release where native sidecars are GA).

The sidecar container mirrors what the kustomize patch of issue 14 gave each pod: the
projected ServiceAccount token for the audience "agentops", the operator's CA from the
ConfigMap `agentops-ca`, and a securityContext of its own that passes the "restricted" Pod
Security Standard whatever the pod's own context says.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

SIDECAR_NAME = "agentops-sidecar"
INJECT_KEY = "agentops.dev/inject"  # label (namespace or pod) or pod annotation
DISABLED = "disabled"
AGENT_KEY = "agentops.dev/agent"  # pod label, else pod annotation
INJECTED_ANNOTATION = "agentops.dev/injected"  # set by the patch to the agent's name
AGENT_PORT_ANNOTATION = "agentops.dev/agent-port"
PROXY_PORT_ANNOTATION = "agentops.dev/proxy-port"
HEALTH_PATH_ANNOTATION = "agentops.dev/health-path"
# (section, resource) → the annotation that overrides the configured value.
RESOURCE_ANNOTATIONS: Mapping[tuple[str, str], str] = {
    ("requests", "cpu"): "agentops.dev/sidecar-cpu-request",
    ("limits", "cpu"): "agentops.dev/sidecar-cpu-limit",
    ("requests", "memory"): "agentops.dev/sidecar-memory-request",
    ("limits", "memory"): "agentops.dev/sidecar-memory-limit",
}

HTTP_PORT_NAME = "http"  # what Services target; the sidecar's proxy after injection
AGENT_HTTP_PORT_NAME = "agent-http"  # the agent's former `http`, same number
ADMIN_PORT_NAME = "admin"  # the sidecar's /healthz, /readyz, /metrics, /v1/state

IDENTITY_VOLUME = "agentops-identity"
CA_VOLUME = "agentops-ca"
TMP_VOLUME = "agentops-sidecar-tmp"
IDENTITY_DIR = "/var/run/secrets/agentops.dev/identity"
CA_DIR = "/var/run/secrets/agentops.dev/ca"
TOKEN_FILE, CA_FILE = "token", "ca.crt"

# A Kubernetes quantity as resources accept it: no sign, a decimal number, then a binary
# (Ki..Ei) or decimal (n..E) suffix or a decimal exponent (three digits at most, so a
# hostile annotation cannot ask for a number with a billion zeros).
_QUANTITY = re.compile(r"(?P<number>\d+(?:\.\d*)?|\.\d+)(?P<suffix>[KMGTPE]i|[numkMGTPE]|[eE][+-]?\d{1,3})?")
_SUFFIX = {"": Decimal(1), "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "k": Decimal(10) ** 3,
           "M": Decimal(10) ** 6, "G": Decimal(10) ** 9, "T": Decimal(10) ** 12, "P": Decimal(10) ** 15,
           "E": Decimal(10) ** 18, "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30,
           "Ti": Decimal(2) ** 40, "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60}
QUANTITY_HELP = "a Kubernetes quantity such as 250m or 0.5 (cpu), 128Mi or 1G (memory)"
# An Agent is a Kubernetes object: its name is a DNS subdomain (RFC 1123), at most 253 characters.
_OBJECT_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
_PORT = re.compile(r"[0-9]{1,5}")


def quantity(text: str) -> Decimal | None:
    """The value of a Kubernetes resource quantity (cores, bytes), or None when `text` is not one."""
    match = _QUANTITY.fullmatch(text)
    if match is None:
        return None
    suffix = match["suffix"] or ""
    scale = _SUFFIX[suffix] if suffix in _SUFFIX else Decimal(10) ** int(suffix[1:])
    return Decimal(match["number"]) * scale


@dataclass(frozen=True)
class SidecarResources:
    """Requests and limits of the sidecar; `make bench` measured about 41 MB RSS under load."""

    cpu_request: str = "50m"
    cpu_limit: str = "500m"
    memory_request: str = "64Mi"
    memory_limit: str = "128Mi"

    def render(self) -> dict[str, dict[str, str]]:
        return {"requests": {"cpu": self.cpu_request, "memory": self.memory_request},
                "limits": {"cpu": self.cpu_limit, "memory": self.memory_limit}}


@dataclass(frozen=True)
class InjectionConfig:
    """What every injected sidecar gets; a pod's annotations may tune ports, health path and resources."""

    image: str  # the operator's own image by default: operator and sidecar ship together
    image_pull_policy: str = "IfNotPresent"
    operator_url: str = "https://agentops-operator.agentops-system.svc:8080"
    audience: str = "agentops"  # of the projected token; the operator's TokenReview checks it
    ca_configmap: str = "agentops-ca"  # published into each namespace by the operator (CaPublisher)
    # The kubelet rotates the token at 80% of this; an hour is what the TokenRequest API
    # grants by default and keeps a stolen token's use short.
    token_expiration_s: int = 3600
    proxy_port: int = 8080
    admin_port: int = 9901
    default_agent_port: int = 8000  # the agent port when the pod neither names nor annotates one
    health_path: str = "/healthz"  # the agent's, probed by the sidecar
    resources: SidecarResources = field(default_factory=SidecarResources)
    run_as_user: int = 10001  # the image's user (Dockerfile)

    def __post_init__(self) -> None:
        problems = []
        if not self.image:
            problems.append("image must not be empty")
        # The API server refuses projected tokens valid for less than 10 minutes.
        if self.token_expiration_s < 600:
            problems.append(f"token_expiration_s must be at least 600, got {self.token_expiration_s}")
        ports = {"proxy_port": self.proxy_port, "admin_port": self.admin_port,
                 "default_agent_port": self.default_agent_port}
        problems += [f"{name} must be 1..65535, got {port}" for name, port in ports.items() if not 0 < port < 65536]
        if len(set(ports.values())) != len(ports):
            problems.append(f"proxy_port, admin_port and default_agent_port must differ, got {sorted(ports.values())}")
        if not self.health_path.startswith("/"):
            problems.append(f"health_path must start with '/', got {self.health_path!r}")
        if self.run_as_user <= 0:
            problems.append(f"run_as_user must be a non-root user id, got {self.run_as_user}")
        limits = self.resources.render()
        for section, resource in RESOURCE_ANNOTATIONS:
            if quantity(limits[section][resource]) is None:
                problems.append(f"resources {section}.{resource} must be {QUANTITY_HELP}, "
                                f"got {limits[section][resource]!r}")
        if problems:
            raise ValueError("invalid injection configuration: " + "; ".join(problems))


@dataclass(frozen=True)
class Decision:
    """The webhook's answer: `patch` None means the pod is admitted unchanged, for `reason`."""

    patch: list[dict[str, Any]] | None
    agent: str | None
    reason: str  # "injected", or why not
    warnings: list[str] = field(default_factory=list)  # for the AdmissionReview response's warnings

    @property
    def injected(self) -> bool:
        return self.patch is not None


class _Refused(Exception):
    """A pod that cannot be injected safely: the Decision's reason and the warning a user acts on."""

    def __init__(self, reason: str, warning: str) -> None:
        super().__init__(warning)
        self.reason, self.warning = reason, warning


def _meta(pod: Mapping[str, Any], key: str) -> Mapping[str, str]:
    return (pod.get("metadata") or {}).get(key) or {}


def _spec_list(pod: Mapping[str, Any], key: str) -> Sequence[Mapping[str, Any]]:
    return (pod.get("spec") or {}).get(key) or []


def opted_out(pod: Mapping[str, Any]) -> bool:
    """The pod said no: annotation or label agentops.dev/inject=disabled."""
    return DISABLED in (_meta(pod, "annotations").get(INJECT_KEY), _meta(pod, "labels").get(INJECT_KEY))


def has_sidecar(pod: Mapping[str, Any]) -> bool:
    """The pod already carries the injected sidecar (a second webhook call, or a copy of an injected pod)."""
    return any(c.get("name") == SIDECAR_NAME for c in _spec_list(pod, "initContainers"))


def agent_name(pod: Mapping[str, Any]) -> str | None:
    """The Agent the pod serves: its label, its annotation, else the name of what owns it.

    A Deployment's pods are owned by a ReplicaSet named `<deployment>-<pod-template-hash>`,
    and carry that hash as a label: strip it to get the Deployment's name. Other owners
    (StatefulSet, Job, a bare ReplicaSet) name the agent themselves.
    """
    for source in (_meta(pod, "labels"), _meta(pod, "annotations")):
        if source.get(AGENT_KEY):
            return source[AGENT_KEY]
    owners: Sequence[Mapping[str, Any]] = (pod.get("metadata") or {}).get("ownerReferences") or []
    owner = next((o for o in owners if o.get("controller")), owners[0] if owners else None)
    if owner is None or not owner.get("name"):
        return None
    name: str = owner["name"]
    suffix = "-" + str(_meta(pod, "labels").get("pod-template-hash") or "")
    if owner.get("kind") == "ReplicaSet" and len(suffix) > 1 and name.endswith(suffix) and len(name) > len(suffix):
        return name[:-len(suffix)]
    return name


def pointer(*parts: str | int) -> str:
    """An RFC 6901 JSON pointer: `~` and `/` inside a part escaped as `~0` and `~1`."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


@dataclass(frozen=True)
class _Tuning:
    """The pod's choices, read from its annotations and ports and checked."""

    agent_port: int
    proxy_port: int
    health_path: str
    resources: dict[str, dict[str, str]]
    renamed: tuple[int, int] | None  # (container, port) index of the agent's `http`, renamed to agent-http
    warnings: tuple[str, ...]


def _port_annotation(annotations: Mapping[str, str], key: str) -> int | None:
    value = annotations.get(key)
    if value is None:
        return None
    if not _PORT.fullmatch(value) or not 0 < int(value) < 65536:
        raise _Refused(f"bad annotation {key}", f"annotation {key}: {value!r} is not a port number (1-65535)")
    return int(value)


def _named_ports(containers: Sequence[Mapping[str, Any]], name: str) -> Iterator[tuple[int, int, Mapping[str, Any]]]:
    for ci, container in enumerate(containers):
        for pi, port in enumerate(container.get("ports") or []):
            if port.get("name") == name:
                yield ci, pi, port


def _resources(annotations: Mapping[str, str], config: InjectionConfig) -> dict[str, dict[str, str]]:
    resources = config.resources.render()
    values: dict[tuple[str, str], Decimal] = {}
    for (section, resource), key in RESOURCE_ANNOTATIONS.items():
        text = annotations.get(key, resources[section][resource])
        value = quantity(text)
        if value is None:
            raise _Refused(f"bad annotation {key}", f"annotation {key}: {text!r} is not {QUANTITY_HELP}")
        resources[section][resource], values[(section, resource)] = text, value
    # The API server refuses a container whose request exceeds its limit, which would fail the
    # pod's creation: refuse the injection instead.
    for resource in ("cpu", "memory"):
        if values[("requests", resource)] > values[("limits", resource)]:
            request, limit = RESOURCE_ANNOTATIONS[("requests", resource)], RESOURCE_ANNOTATIONS[("limits", resource)]
            raise _Refused(f"bad annotation {request}",
                           f"the sidecar's {resource} request {resources['requests'][resource]} exceeds its limit "
                           f"{resources['limits'][resource]}: set annotations {request} and {limit} so that "
                           "request <= limit")
    return resources


def _tuning(pod: Mapping[str, Any], config: InjectionConfig) -> _Tuning:
    annotations = _meta(pod, "annotations")
    containers = _spec_list(pod, "containers")
    warnings: list[str] = []
    http_ports = list(_named_ports(containers, HTTP_PORT_NAME))
    annotated = _port_annotation(annotations, AGENT_PORT_ANNOTATION)
    if annotated is not None:
        agent_port, source = annotated, f"annotation {AGENT_PORT_ANNOTATION}"
    elif http_ports:
        ci, _, port = http_ports[0]
        agent_port = int(port.get("containerPort", 0))
        source = f"container {containers[ci].get('name')}'s port named http"
    else:
        agent_port, source = config.default_agent_port, "the default agent port"
    proxy_port = _port_annotation(annotations, PROXY_PORT_ANNOTATION) or config.proxy_port
    taken = {agent_port: source, config.admin_port: "the sidecar's admin port"}
    if proxy_port in taken:
        raise _Refused("port conflict",
                       f"the sidecar's proxy port {proxy_port} is also {taken[proxy_port]}: set annotation "
                       f"{PROXY_PORT_ANNOTATION} to another port (1-65535, not {agent_port} nor {config.admin_port})")
    if agent_port == config.admin_port:
        raise _Refused("port conflict",
                       f"the agent's port {agent_port} ({source}) is the sidecar's admin port: the agent must "
                       f"listen on another port, named in annotation {AGENT_PORT_ANNOTATION}")
    health_path = annotations.get(HEALTH_PATH_ANNOTATION, config.health_path)
    if not health_path.startswith("/") or any(ch.isspace() for ch in health_path):
        raise _Refused(f"bad annotation {HEALTH_PATH_ANNOTATION}", f"annotation {HEALTH_PATH_ANNOTATION}: "
                       f"{health_path!r} is not a URL path (it starts with '/' and holds no spaces)")
    renamed = None
    for ci, pi, port in http_ports:
        if renamed is None and int(port.get("containerPort", 0)) == agent_port:
            renamed = (ci, pi)
        else:
            # Named ports resolve in containers before init containers: this one keeps the name.
            warnings.append(f"container {containers[ci].get('name')}'s port named http ({port.get('containerPort')}) "
                            f"is not the agent port {agent_port}: Services that target the port named http reach "
                            "it directly, not through the AgentOps sidecar; rename that port")
    return _Tuning(agent_port, proxy_port, health_path, _resources(annotations, config), renamed, tuple(warnings))


def _check_conflicts(pod: Mapping[str, Any], tuning: _Tuning, config: InjectionConfig) -> None:
    """Refuse what would make the injected pod invalid or leave the sidecar unable to bind its ports."""
    containers, init = _spec_list(pod, "containers"), _spec_list(pod, "initContainers")
    # What the pod can do about each: the proxy moves by annotation, the admin port does not
    # (it is the operator's setting, the same in every pod, where monitoring finds it).
    ours = {tuning.proxy_port: f"proxy port: free it, or move the proxy with annotation {PROXY_PORT_ANNOTATION}",
            config.admin_port: "admin port: the pod must not use it"}
    for container in (*init, *containers):
        for port in container.get("ports") or []:
            number = port.get("containerPort")
            # A UDP port of the same number does not stop the sidecar's TCP listener.
            if number in ours and port.get("protocol", "TCP") == "TCP":
                raise _Refused("port conflict", f"container {container.get('name')} declares port {number}, the "
                               f"sidecar's {ours[number]}")
    if tuning.renamed is not None:
        ci, _ = tuning.renamed
        if any(p.get("name") == AGENT_HTTP_PORT_NAME for p in containers[ci].get("ports") or []):
            raise _Refused("port conflict", f"container {containers[ci].get('name')} already has a port named "
                           f"{AGENT_HTTP_PORT_NAME}, the name its http port would be given")
    in_use = {str(v.get("name")) for v in _spec_list(pod, "volumes")} & {IDENTITY_VOLUME, CA_VOLUME, TMP_VOLUME}
    if in_use:
        raise _Refused("volume name in use", f"the pod already has volume(s) {', '.join(sorted(in_use))}, which the "
                       "sidecar needs (a copied sidecar patch?): remove them, or opt out with annotation "
                       f"{INJECT_KEY}: {DISABLED}")


def _sidecar_container(agent: str, tuning: _Tuning, config: InjectionConfig) -> dict[str, Any]:
    def field_ref(path: str) -> dict[str, Any]:
        return {"fieldRef": {"fieldPath": path}}

    def probe(path: str, **timing: int) -> dict[str, Any]:
        return {"httpGet": {"path": path, "port": ADMIN_PORT_NAME}, **timing}

    return {
        "name": SIDECAR_NAME,
        "image": config.image,
        "imagePullPolicy": config.image_pull_policy,
        "args": ["sidecar"],
        "restartPolicy": "Always",  # native sidecar: up before the agent, stopped after it
        "env": [
            {"name": "AGENTOPS_AGENT", "value": agent},
            {"name": "AGENTOPS_NAMESPACE", "valueFrom": field_ref("metadata.namespace")},
            {"name": "POD_NAME", "valueFrom": field_ref("metadata.name")},
            # One identity per pod, so a rolling restart's old and new pods are told apart.
            {"name": "AGENTOPS_SIDECAR_ID", "value": "$(POD_NAME)"},
            {"name": "AGENTOPS_OPERATOR_URL", "value": config.operator_url},
            {"name": "AGENTOPS_IDENTITY_TOKEN_FILE", "value": f"{IDENTITY_DIR}/{TOKEN_FILE}"},
            {"name": "AGENTOPS_OPERATOR_CA_FILE", "value": f"{CA_DIR}/{CA_FILE}"},
            {"name": "AGENTOPS_UPSTREAM", "value": f"http://127.0.0.1:{tuning.agent_port}"},
            {"name": "AGENTOPS_LISTEN", "value": f"0.0.0.0:{tuning.proxy_port}"},
            {"name": "AGENTOPS_ADMIN_LISTEN", "value": f"0.0.0.0:{config.admin_port}"},
            {"name": "AGENTOPS_HEALTH_PATH", "value": tuning.health_path},
        ],
        "ports": [{"name": HTTP_PORT_NAME, "containerPort": tuning.proxy_port},
                  {"name": ADMIN_PORT_NAME, "containerPort": config.admin_port}],
        # The sidecar process is up: what lets the kubelet start the next container. 30 × 1 s
        # covers a cold Python start on a busy node without delaying a normal one.
        "startupProbe": probe("/healthz", periodSeconds=1, failureThreshold=30),
        # Ready while the sidecar's last probe of the agent passed: the pod gets traffic only then.
        "readinessProbe": probe("/readyz", periodSeconds=5, timeoutSeconds=2),
        # The sidecar process itself; never depends on the agent.
        "livenessProbe": probe("/healthz", periodSeconds=10, timeoutSeconds=5),
        "resources": tuning.resources,
        # Container-level, so the pod passes the "restricted" Pod Security Standard even when
        # its own securityContext says nothing.
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
            "runAsUser": config.run_as_user,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": IDENTITY_VOLUME, "mountPath": IDENTITY_DIR, "readOnly": True},
            {"name": CA_VOLUME, "mountPath": CA_DIR, "readOnly": True},
            {"name": TMP_VOLUME, "mountPath": "/tmp"},
        ],
    }


def _sidecar_volumes(config: InjectionConfig) -> list[dict[str, Any]]:
    return [
        # Who this pod is: a token of its ServiceAccount for the operator's audience only.
        {"name": IDENTITY_VOLUME, "projected": {"sources": [{"serviceAccountToken": {
            "audience": config.audience, "expirationSeconds": config.token_expiration_s, "path": TOKEN_FILE}}]}},
        {"name": CA_VOLUME, "configMap": {"name": config.ca_configmap, "items": [{"key": CA_FILE, "path": CA_FILE}]}},
        # The root filesystem is read-only; 32Mi bounds what a runaway temp file can take from the node.
        {"name": TMP_VOLUME, "emptyDir": {"sizeLimit": "32Mi"}},
    ]


def _patch(pod: Mapping[str, Any], agent: str, tuning: _Tuning, config: InjectionConfig) -> list[dict[str, Any]]:
    container = _sidecar_container(agent, tuning, config)
    # "add" on a missing (or null) member creates it; on an array index it inserts.
    ops: list[dict[str, Any]]
    if _spec_list(pod, "initContainers"):
        ops = [{"op": "add", "path": pointer("spec", "initContainers", 0), "value": container}]
    else:
        ops = [{"op": "add", "path": pointer("spec", "initContainers"), "value": [container]}]
    volumes = _sidecar_volumes(config)
    if _spec_list(pod, "volumes"):
        ops += [{"op": "add", "path": pointer("spec", "volumes", "-"), "value": v} for v in volumes]
    else:
        ops.append({"op": "add", "path": pointer("spec", "volumes"), "value": volumes})
    if tuning.renamed is not None:
        ci, pi = tuning.renamed
        ops.append({"op": "replace", "path": pointer("spec", "containers", ci, "ports", pi, "name"),
                    "value": AGENT_HTTP_PORT_NAME})
    if _meta(pod, "annotations"):
        ops.append({"op": "add", "path": pointer("metadata", "annotations", INJECTED_ANNOTATION), "value": agent})
    else:
        ops.append({"op": "add", "path": pointer("metadata", "annotations"), "value": {INJECTED_ANNOTATION: agent}})
    # The agent's name as a label too, when it came from elsewhere (annotation, owner): what
    # the PodMonitor and `kubectl get pods -l agentops.dev/agent=...` select by.
    labels = _meta(pod, "labels")
    if AGENT_KEY not in labels:
        if labels:
            ops.append({"op": "add", "path": pointer("metadata", "labels", AGENT_KEY), "value": agent})
        else:
            ops.append({"op": "add", "path": pointer("metadata", "labels"), "value": {AGENT_KEY: agent}})
    return ops


def decide(pod: Mapping[str, Any], namespace: str, config: InjectionConfig) -> Decision:
    """The patch that injects the sidecar into `pod` (from a CREATE AdmissionReview), or None and why not.

    `namespace` is the request's: a pod created through a controller has none of its own yet.
    """
    if opted_out(pod):
        return Decision(None, None, "opted out")
    if has_sidecar(pod):
        return Decision(None, None, "already injected")
    agent = agent_name(pod)
    if agent is None:
        return Decision(None, None, "no agent name", [
            f"pod in namespace {namespace} has no label or annotation {AGENT_KEY} and no owner to name its Agent: "
            f"not injected; set {AGENT_KEY}, or opt out with annotation {INJECT_KEY}: {DISABLED}"])
    if not _OBJECT_NAME.fullmatch(agent):
        return Decision(None, agent, "bad agent name", [
            f"{agent!r} (from {AGENT_KEY} or the pod's owner) is not an Agent name (lowercase letters, digits, "
            "'-' and '.', at most 253 characters): not injected"])
    if (pod.get("spec") or {}).get("hostNetwork"):
        return Decision(None, agent, "host network", [
            "the pod uses the host's network: the sidecar's ports would be the node's, so it is not injected"])
    try:
        tuning = _tuning(pod, config)
        _check_conflicts(pod, tuning, config)
    except _Refused as refused:
        return Decision(None, agent, refused.reason, [f"AgentOps sidecar not injected: {refused.warning}"])
    return Decision(_patch(pod, agent, tuning, config), agent, "injected", list(tuning.warnings))
