"""What a kubelet prepares before a container starts: volumes, environment, argv, user.

Volumes are directories under the node agent's work directory, filled from the API
(Secrets, ConfigMaps, a ServiceAccount token from the TokenRequest API bound to the
pod, the downward API) and bound into the container at their mountPath by launcher.py.
They are written once, when the pod starts: a changed Secret or an expiring token is
not refreshed (the token's default life, about an hour, outlasts any test).

Supported: volumes emptyDir, secret, configMap, projected (serviceAccountToken,
configMap, secret, downwardAPI), downwardAPI; env value / fieldRef / secretKeyRef /
configMapKeyRef with $(VAR) expansion. Anything else is refused with a message, never
silently ignored.
"""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path
from .api import Api, ApiError, Obj
from .image import Image

# Kubernetes' default for file modes in secret, configMap and projected volumes (0644).
DEFAULT_MODE = 0o644


class PodConfigError(RuntimeError):
    """The pod asks for something this node cannot give (yet, or at all)."""


class NotYet(PodConfigError):
    """Something the pod needs does not exist yet (a Secret, a ConfigMap): try again."""


def field_ref(pod: Obj, path: str, pod_ip: str, host_ip: str) -> str:
    meta = pod["metadata"]
    if m := re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path):
        return str(meta.get(m.group(1), {}).get(m.group(2), ""))
    simple = {
        "metadata.name": meta["name"], "metadata.namespace": meta["namespace"], "metadata.uid": meta["uid"],
        "spec.nodeName": pod["spec"].get("nodeName", ""), "spec.serviceAccountName": pod["spec"].get("serviceAccountName", ""),
        "status.podIP": pod_ip, "status.podIPs": pod_ip, "status.hostIP": host_ip, "status.hostIPs": host_ip,
    }
    if path not in simple:
        raise PodConfigError(f"fieldRef {path!r} is not supported by this node agent")
    return str(simple[path])


def expand(text: str, mapping: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: $$ is a literal $, an unknown $(VAR) stays as written."""
    def one(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return mapping.get(m.group(1), m.group(0))

    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)", one, text)


async def _get(api: Api, path: str, what: str) -> Obj:
    try:
        return await api.get(path)
    except ApiError as e:
        if e.status == 404:
            raise NotYet(f"{what} not found") from e
        raise


def _decoded(obj: Obj) -> dict[str, bytes]:
    if obj["kind"] == "Secret":
        return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
    return {**{k: v.encode() for k, v in (obj.get("data") or {}).items()},
            **{k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()}}


def _write(directory: Path, rel: str, data: bytes, mode: int, gid: int | None) -> None:
    path = directory / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)
    if gid is not None:
        os.chown(path, 0, gid)


async def _key_files(api: Api, ns: str, source: Obj, kind: str, default_mode: int) -> list[tuple[str, bytes, int]]:
    name = source["name"]
    resource = "secrets" if kind == "Secret" else "configmaps"
    try:
        data = _decoded(await _get(api, f"/api/v1/namespaces/{ns}/{resource}/{name}", f"{kind} {ns}/{name}"))
    except NotYet:
        if source.get("optional"):
            return []
        raise
    items = source.get("items") or [{"key": k, "path": k} for k in sorted(data)]
    out = []
    for item in items:
        if item["key"] not in data:
            raise NotYet(f"{kind} {ns}/{name} has no key {item['key']!r}")
        out.append((item["path"], data[item["key"]], item.get("mode", default_mode)))
    return out


async def prepare_volume(api: Api, pod: Obj, volume: Obj, directory: Path, pod_ip: str) -> None:
    ns, pod_sc = pod["metadata"]["namespace"], pod["spec"].get("securityContext") or {}
    fs_group = pod_sc.get("fsGroup")
    directory.mkdir(parents=True, exist_ok=True)
    if "emptyDir" in volume:
        directory.chmod(0o777)  # as the kubelet makes it: writable for any container user
        if fs_group is not None:
            os.chown(directory, 0, fs_group)
        return
    files: list[tuple[str, bytes, int]] = []
    token_paths: set[str] = set()
    if "secret" in volume or "configMap" in volume:
        kind = "Secret" if "secret" in volume else "ConfigMap"
        source = dict(volume["secret" if kind == "Secret" else "configMap"])
        source.setdefault("name", source.get("secretName"))
        files = await _key_files(api, ns, source, kind, source.get("defaultMode", DEFAULT_MODE))
    elif "projected" in volume or "downwardAPI" in volume:
        spec = volume.get("projected") or {"sources": [{"downwardAPI": volume["downwardAPI"]}],
                                          "defaultMode": volume["downwardAPI"].get("defaultMode")}
        default_mode = spec.get("defaultMode") or DEFAULT_MODE
        for source in spec["sources"]:
            if "serviceAccountToken" in source:
                files.append(await _token_file(api, pod, source["serviceAccountToken"], default_mode))
                token_paths.add(source["serviceAccountToken"]["path"])
            elif "configMap" in source or "secret" in source:
                kind = "Secret" if "secret" in source else "ConfigMap"
                files += await _key_files(api, ns, source["secret" if kind == "Secret" else "configMap"], kind, default_mode)
            elif "downwardAPI" in source:
                for item in source["downwardAPI"]["items"]:
                    if "fieldRef" not in item:
                        raise PodConfigError(f"volume {volume['name']}: only fieldRef items are supported")
                    value = field_ref(pod, item["fieldRef"]["fieldPath"], pod_ip, "")
                    files.append((item["path"], value.encode(), item.get("mode", default_mode)))
            else:
                raise PodConfigError(f"volume {volume['name']}: projected source {sorted(source)} is not supported")
    else:
        raise PodConfigError(f"volume {volume['name']}: {sorted(set(volume) - {'name'})} is not supported by this node agent")
    run_as_user = pod_sc.get("runAsUser")
    for rel, data, mode in files:
        if rel in token_paths and fs_group is None and run_as_user is not None:
            # The kubelet's rule for a projected token without fsGroup: the pod's user owns it, 0600.
            _write(directory, rel, data, 0o600, None)
            os.chown(directory / rel, run_as_user, -1)
        else:
            _write(directory, rel, data, mode, fs_group)


async def _token_file(api: Api, pod: Obj, source: Obj, mode: int) -> tuple[str, bytes, int]:
    meta = pod["metadata"]
    sa = pod["spec"].get("serviceAccountName") or "default"
    spec: Obj = {"expirationSeconds": source.get("expirationSeconds", 3600),
                 "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]}}
    if source.get("audience"):
        spec["audiences"] = [source["audience"]]
    answer = await api.post(f"/api/v1/namespaces/{meta['namespace']}/serviceaccounts/{sa}/token",
                            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec})
    return source["path"], answer["status"]["token"].encode(), mode


async def container_env(api: Api, pod: Obj, container: Obj, image: Image, service_env: dict[str, str],
                        pod_ip: str, host_ip: str) -> dict[str, str]:
    """The process environment: the image's, the Service links, then the container's own."""
    if container.get("envFrom"):
        raise PodConfigError(f"container {container['name']}: envFrom is not supported by this node agent")
    ns = pod["metadata"]["namespace"]
    own: dict[str, str] = {}
    for var in container.get("env") or []:
        if "value" in var:
            own[var["name"]] = expand(var["value"], {**service_env, **own})
        elif "valueFrom" in var:
            source = var["valueFrom"]
            if "fieldRef" in source:
                own[var["name"]] = field_ref(pod, source["fieldRef"]["fieldPath"], pod_ip, host_ip)
            elif "secretKeyRef" in source or "configMapKeyRef" in source:
                kind = "Secret" if "secretKeyRef" in source else "ConfigMap"
                ref = source["secretKeyRef" if kind == "Secret" else "configMapKeyRef"]
                resource = "secrets" if kind == "Secret" else "configmaps"
                obj = await _get(api, f"/api/v1/namespaces/{ns}/{resource}/{ref['name']}", f"{kind} {ns}/{ref['name']}")
                data = _decoded(obj)
                if ref["key"] not in data:
                    raise NotYet(f"{kind} {ns}/{ref['name']} has no key {ref['key']!r}")
                own[var["name"]] = data[ref["key"]].decode()
            else:
                raise PodConfigError(f"env {var['name']}: {sorted(source)} is not supported by this node agent")
        else:
            own[var["name"]] = ""
    links = service_env if pod["spec"].get("enableServiceLinks", True) else {
        k: v for k, v in service_env.items() if k.startswith("KUBERNETES_")}
    return {**image.env, **links, **own}


def container_argv(container: Obj, image: Image, env: dict[str, str]) -> list[str]:
    """command replaces the ENTRYPOINT, args the CMD (a command alone drops the CMD too)."""
    command = container.get("command")
    args = container.get("args")
    if command:
        argv = [*command, *(args or [])]
    else:
        argv = [*image.entrypoint, *(args if args is not None else image.cmd)]
    return [expand(a, env) for a in argv]


def container_user(pod: Obj, container: Obj, image: Image) -> tuple[int, int, list[int]]:
    pod_sc = pod["spec"].get("securityContext") or {}
    sc = container.get("securityContext") or {}
    uid = sc.get("runAsUser", pod_sc.get("runAsUser", image.uid))
    gid = sc.get("runAsGroup", pod_sc.get("runAsGroup", image.gid))
    if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) and uid == 0:
        raise PodConfigError(f"container {container['name']}: runAsNonRoot and the user is root")
    groups = [gid, *([pod_sc["fsGroup"]] if "fsGroup" in pod_sc else []), *pod_sc.get("supplementalGroups", [])]
    return uid, gid, sorted(set(groups))
