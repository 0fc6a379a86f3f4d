"""kube-proxy and cluster DNS for one node, in userspace.

kube-proxy's part: each Service's ClusterIP is an address of the node namespace (on its
loopback) and a listener on ClusterIP:port forwards each connection to one of
the Service's ready endpoints, read from its EndpointSlices as the real
endpointslice controller writes them (the port number there is the resolved targetPort,
also for named ports). A NodePort is a listener on the node's addresses. Pods reach all
of it through their default route to the node. TCP only; no session affinity, no
topology, no terminating-endpoint fallback.

DNS's part: names in each pod's /etc/hosts instead of a DNS server - ``svc.ns``,
``svc.ns.svc`` and ``svc.ns.svc.cluster.local`` for every Service, plus the short
``svc`` for the pod's own namespace (what the search path of a real resolv.conf gives).
The files are rewritten in place when Services change, so a bind-mounted /etc/hosts
follows. Headless Services and the names of single pods are not served.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable

from .api import Obj, key
from .network import NODE_IP, SERVICES_LINK, ip

log = logging.getLogger(__name__)
CLUSTER_DOMAIN = "cluster.local"


def _keep(index: dict[str, Obj], kind: str, obj: Obj) -> None:
    """Apply one list_and_watch event to an index of objects by key (a SYNC drops the absent)."""
    if kind == "SYNC":
        for k in set(index) - set(obj["keys"]):
            del index[k]
    elif kind == "DELETED":
        index.pop(key(obj), None)
    else:
        index[key(obj)] = obj


class ServiceProxy:
    def __init__(self, on_services_changed: Callable[[], None]) -> None:
        self.services: dict[str, Obj] = {}
        self.slices: dict[str, Obj] = {}
        self._listeners: dict[tuple[str, int], asyncio.Server] = {}
        self._addresses: set[str] = set()
        self._on_services_changed = on_services_changed

    # --- informer callbacks ---

    async def service_event(self, kind: str, obj: Obj) -> None:
        _keep(self.services, kind, obj)
        await self._reconcile()
        self._on_services_changed()

    def slice_event(self, kind: str, obj: Obj) -> None:
        _keep(self.slices, kind, obj)

    # --- what pods see ---

    def hosts_lines(self, namespace: str) -> list[str]:
        lines = []
        for svc in sorted(self.services.values(), key=key):
            cluster_ip = svc["spec"].get("clusterIP")
            if not cluster_ip or cluster_ip == "None":
                continue
            name, ns = svc["metadata"]["name"], svc["metadata"]["namespace"]
            names = [f"{name}.{ns}.svc.{CLUSTER_DOMAIN}", f"{name}.{ns}.svc", f"{name}.{ns}"]
            if ns == namespace:
                names.append(name)
            lines.append(f"{cluster_ip}\t{' '.join(names)}")
        return lines

    def environment(self, namespace: str) -> dict[str, str]:
        """The Service links a kubelet puts into every container (enableServiceLinks).

        Those of the pod's namespace, and always those of default/kubernetes, which is
        how in-cluster clients find the API server (KUBERNETES_SERVICE_HOST/PORT).
        """
        env: dict[str, str] = {}
        for svc in sorted(self.services.values(), key=key):
            ns = svc["metadata"]["namespace"]
            cluster_ip = svc["spec"].get("clusterIP")
            is_master = ns == "default" and svc["metadata"]["name"] == "kubernetes"
            if (ns != namespace and not is_master) or not cluster_ip or cluster_ip == "None":
                continue
            prefix = svc["metadata"]["name"].upper().replace("-", "_")
            ports = svc["spec"].get("ports", [])
            env[f"{prefix}_SERVICE_HOST"] = cluster_ip
            env[f"{prefix}_SERVICE_PORT"] = str(ports[0]["port"])
            for p in ports:
                if p.get("name"):
                    env[f"{prefix}_SERVICE_PORT_{p['name'].upper().replace('-', '_')}"] = str(p["port"])
            first = ports[0]
            env[f"{prefix}_PORT"] = f"{first.get('protocol', 'TCP').lower()}://{cluster_ip}:{first['port']}"
            for p in ports:
                proto = p.get("protocol", "TCP")
                base = f"{prefix}_PORT_{p['port']}_{proto}"
                env[base] = f"{proto.lower()}://{cluster_ip}:{p['port']}"
                env[f"{base}_PROTO"] = proto.lower()
                env[f"{base}_PORT"] = str(p["port"])
                env[f"{base}_ADDR"] = cluster_ip
        return env

    # --- the proxy ---

    def endpoints(self, service: Obj, port_name: str) -> list[tuple[str, int]]:
        name, ns = service["metadata"]["name"], service["metadata"]["namespace"]
        found = []
        for s in self.slices.values():
            if s["metadata"]["namespace"] != ns or s["metadata"].get("labels", {}).get("kubernetes.io/service-name") != name:
                continue
            number = next((p["port"] for p in s.get("ports") or [] if (p.get("name") or "") == port_name), None)
            if number is None:
                continue
            for e in s.get("endpoints") or []:
                if e.get("conditions", {}).get("ready", True) is not False:
                    found += [(a, number) for a in e["addresses"]]
        return found

    async def _reconcile(self) -> None:
        wanted: dict[tuple[str, int], tuple[str, str]] = {}
        for k, svc in self.services.items():
            cluster_ip = svc["spec"].get("clusterIP")
            if not cluster_ip or cluster_ip == "None":
                continue
            for p in svc["spec"].get("ports", []):
                if p.get("protocol", "TCP") != "TCP":
                    continue
                wanted[(cluster_ip, p["port"])] = (k, p.get("name") or "")
                if p.get("nodePort"):
                    wanted[(NODE_IP, p["nodePort"])] = (k, p.get("name") or "")
        for where in set(self._listeners) - set(wanted):
            server = self._listeners.pop(where)
            server.close()
        for address in {a for a, _ in wanted} - self._addresses - {NODE_IP}:
            await asyncio.to_thread(ip, "addr", "add", f"{address}/32", "dev", SERVICES_LINK)
            self._addresses.add(address)
        for where, (svc_key, port_name) in wanted.items():
            if where not in self._listeners:
                self._listeners[where] = await asyncio.start_server(
                    self._handler(svc_key, port_name), host=where[0], port=where[1], reuse_address=True)
                log.info("proxy %s:%s -> %s port %r", *where, svc_key, port_name)

    def _handler(self, svc_key: str, port_name: str) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter],
                                                                  Awaitable[None]]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            service = self.services.get(svc_key)
            targets = self.endpoints(service, port_name) if service else []
            if not targets:  # no ready endpoint: refuse, as kube-proxy's REJECT rule does
                writer.close()
                return
            address, port = random.choice(targets)
            try:
                up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(address, port), timeout=5)
            except (OSError, asyncio.TimeoutError) as e:
                log.info("proxy %s -> %s:%s: %s", svc_key, address, port, e)
                writer.close()
                return
            try:
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            finally:
                for w in (up_writer, writer):
                    with contextlib.suppress(OSError):
                        w.close()

        return handle

    async def close(self) -> None:
        for server in self._listeners.values():
            server.close()
        self._listeners.clear()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:  # the other side went away; the handler closes both
        pass
