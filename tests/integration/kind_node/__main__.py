"""The node agent: kubelet, scheduler binding, kube-proxy and DNS for one node.

    ip netns exec agentops-node-<pid> python -m kind_node --server https://127.0.0.1:6443 \\
        --pki DIR --workdir DIR --logdir DIR --test-pid PID

It registers the Node (Ready), binds every unscheduled pod that asks for the default
scheduler to itself (a scheduler with one node and no filters: no resources, taints or
affinity are judged), runs the pods bound to it (pods.py), and serves Services
(services.py). SIGTERM stops every pod (SIGTERM to its containers, a short grace,
SIGKILL), removes their namespaces and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp

from . import image, network
from .api import Api, ApiError, Obj
from .pods import NodeContext, PodRunner, now
from .services import ServiceProxy

log = logging.getLogger("kind_node")
NODE_NAME = "agentops-control-plane"  # what kind names the node of the cluster "agentops"
SHUTDOWN_GRACE = 5.0  # seconds each container gets when the whole node stops


class Node:
    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        self.runners: dict[str, PodRunner] = {}

    def rewrite_hosts(self) -> None:
        for runner in self.runners.values():
            with contextlib.suppress(OSError):
                runner.write_hosts()

    async def register(self) -> None:
        node = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": NODE_NAME, "labels": {
                    "kubernetes.io/hostname": NODE_NAME, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                    "node-role.kubernetes.io/control-plane": ""}},
                "spec": {"podCIDR": str(network.POD_CIDR), "podCIDRs": [str(network.POD_CIDR)]}}
        with contextlib.suppress(ApiError):
            await self.ctx.api.post("/api/v1/nodes", node)
        await self.heartbeat()

    async def heartbeat(self) -> None:
        capacity = {"cpu": str(os.cpu_count() or 1), "memory": "8Gi", "pods": "110", "ephemeral-storage": "10Gi"}
        stamp = now()
        await self.ctx.api.merge_patch(f"/api/v1/nodes/{NODE_NAME}/status", {"status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "agentops test node agent is posting ready status",
                            "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}],
            "addresses": [{"type": "InternalIP", "address": network.NODE_IP}, {"type": "Hostname", "address": NODE_NAME}],
            "capacity": capacity, "allocatable": capacity,
            "nodeInfo": {"kubeletVersion": "v1.34.4", "containerRuntimeVersion": "processes://namespaces",
                         "operatingSystem": "linux", "architecture": "amd64", "osImage": "agentops test node",
                         "kernelVersion": os.uname().release, "kubeProxyVersion": "", "machineID": "", "systemUUID": "",
                         "bootID": ""}}})

    async def on_pod(self, kind: str, pod: Obj) -> None:
        if kind == "SYNC":
            present = set(pod["keys"])
            for uid, running in list(self.runners.items()):
                if running.key not in present:
                    running.terminate(0, delete=False)
                    self.runners.pop(uid)
            return
        uid = pod["metadata"]["uid"]
        if kind == "DELETED":
            if (gone := self.runners.pop(uid, None)) is not None:
                gone.terminate(0, delete=False)
            return
        spec, meta = pod["spec"], pod["metadata"]
        if not spec.get("nodeName"):
            if not meta.get("deletionTimestamp") and spec.get("schedulerName", "default-scheduler") == "default-scheduler":
                await self._bind(pod)
            return
        if spec["nodeName"] != NODE_NAME:
            return
        runner = self.runners.get(uid)
        if runner is None:
            if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
                return
            if meta.get("deletionTimestamp"):  # never started here: nothing to stop
                with contextlib.suppress(ApiError):
                    await self.ctx.api.delete(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                                              {"gracePeriodSeconds": 0, "preconditions": {"uid": uid}})
                return
            log.info("starting pod %s/%s", meta["namespace"], meta["name"])
            runner = self.runners[uid] = PodRunner(self.ctx, pod)
            runner.task.add_done_callback(lambda _t: self.runners.pop(uid, None))
        runner.update(pod)

    async def _bind(self, pod: Obj) -> None:
        meta = pod["metadata"]
        try:
            await self.ctx.api.post(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/binding", {
                "apiVersion": "v1", "kind": "Binding", "metadata": {"name": meta["name"], "uid": meta["uid"]},
                "target": {"apiVersion": "v1", "kind": "Node", "name": NODE_NAME}})
            log.info("bound %s/%s to %s", meta["namespace"], meta["name"], NODE_NAME)
        except ApiError as e:
            if e.status != 409:  # 409: bound already (an event we saw late)
                log.warning("binding %s/%s: %s", meta["namespace"], meta["name"], e)

    async def shutdown(self) -> None:
        runners = list(self.runners.values())
        for r in runners:
            r.terminate(SHUTDOWN_GRACE, delete=False)
        await asyncio.gather(*(r.task for r in runners), return_exceptions=True)


async def _follow(events: AsyncIterator[tuple[str, Obj]], handle: Callable[[str, Obj], Awaitable[None]],
                  synced: asyncio.Event | None = None) -> None:
    async for kind, obj in events:
        try:
            await handle(kind, obj)
        except Exception:  # one bad object never stops the node
            log.exception("handling %s %s", kind, obj.get("metadata", {}).get("name"))
        if kind == "SYNC" and synced is not None:
            synced.set()


async def run(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    hosts = [str(h) for h in network.POD_CIDR.hosts()][1:]  # .1 is the node's
    async with Api(args.server, args.pki) as api, aiohttp.ClientSession() as probes:
        node: Node | None = None
        proxy = ServiceProxy(lambda: node.rewrite_hosts() if node else None)
        ctx = NodeContext(api=api, proxy=proxy, image=image.load(), node_name=NODE_NAME, test_pid=args.test_pid,
                          workdir=args.workdir, logdir=args.logdir, probes=probes, free_ips=hosts)
        node = Node(ctx)
        await node.register()

        async def on_service(kind: str, obj: Obj) -> None:
            await proxy.service_event(kind, obj)

        async def on_slice(kind: str, obj: Obj) -> None:
            proxy.slice_event(kind, obj)

        async def beat() -> None:
            while True:
                await asyncio.sleep(10)
                with contextlib.suppress(ApiError, aiohttp.ClientError, asyncio.TimeoutError):
                    await node.heartbeat()

        services_synced, slices_synced = asyncio.Event(), asyncio.Event()
        tasks = [
            asyncio.create_task(_follow(api.list_and_watch("/api/v1/services"), on_service, services_synced)),
            asyncio.create_task(_follow(api.list_and_watch("/apis/discovery.k8s.io/v1/endpointslices"), on_slice,
                                        slices_synced)),
            asyncio.create_task(beat()),
        ]
        # Services first: a container's environment has the Service links of its start.
        await asyncio.wait_for(asyncio.gather(services_synced.wait(), slices_synced.wait()), timeout=30)
        tasks.append(asyncio.create_task(_follow(api.list_and_watch("/api/v1/pods"), node.on_pod)))
        log.info("node %s ready", NODE_NAME)
        await stop.wait()
        log.info("stopping: %d pods", len(node.runners))
        for t in tasks:
            t.cancel()
        await node.shutdown()
        await proxy.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kind_node", description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--server", required=True)
    parser.add_argument("--pki", type=Path, required=True, help="ca.crt, admin.crt, admin.key of the control plane")
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--logdir", type=Path, required=True, help="container logs: <namespace>_<pod>/<container>.log")
    parser.add_argument("--test-pid", type=int, required=True, help="names the pods' network namespaces")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args.workdir.mkdir(parents=True, exist_ok=True)
    try:
        asyncio.run(run(args))
    finally:
        shutil.rmtree(args.workdir / "pods", ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

