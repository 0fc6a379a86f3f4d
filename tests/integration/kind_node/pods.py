"""One pod on this node: its network namespace, volumes, containers, probes and status.

Each container is a process tree started through launcher.py in the pod's network
namespace and a mount namespace of its own (see launcher.py); all containers of a pod
share the pod's network namespace, so 127.0.0.1 between them works as in a real pod.
restartPolicy Always: a container that exits is started again after the kubelet's
back-off (10 s, doubling, at most 5 min); a failed liveness probe stops it first.

Probes are httpGet and tcpSocket, from the node namespace to the pod's address, as a
kubelet probes from the host. The status is written like a kubelet's (phase, podIP,
conditions, containerStatuses) whenever something in it changes.

Native sidecars (KEP-753: init containers with ``restartPolicy: Always``) as the kubelet
runs them: started in their order, each one started - its startupProbe passed, else
running - before the next and before the regular containers; restarted when they exit;
reported in initContainerStatuses; their readiness counts for the pod's Ready and
ContainersReady, and the pod is Initialized (and leaves Pending) once all have started.
Run-to-completion init containers are refused (below).

Deletion is graceful: SIGTERM to the regular containers, SIGKILL after the grace period;
then the sidecars in reverse order, each with what is left of the grace (at least the
kubelet's 2 s); then the namespace and the volumes are removed and the Pod deleted with
grace 0 (what tells the API server the kubelet is done). No resource limits (no
cgroups), no seccomp, no image pull, no exec/grpc probes, no lifecycle hooks, no
run-to-completion init containers: a pod that asks for one of those is refused with a
message.

The node agent's log records each container's life in order, one line per step, for
tests to read (the kubelet's Events carry whole seconds, too coarse to order them):
``container <namespace>/<pod>/<name> running pid=<pid>|started|stopping|stopped exit=<code>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import os
import shutil
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import aiohttp

from agentops.processes import set_pdeathsig

from . import network
from .api import Api, ApiError, Obj
from .image import Image
from .services import ServiceProxy
from .volumes import NotYet, PodConfigError, container_argv, container_env, container_user, prepare_volume

log = logging.getLogger(__name__)
LAUNCHER = Path(__file__).with_name("launcher.py")
BACKOFF_INITIAL, BACKOFF_MAX = 10.0, 300.0  # the kubelet's container restart back-off
MIN_GRACE = 2.0  # the kubelet's minimumGracePeriodInSeconds: a sidecar whose turn comes late still gets this


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def exit_code(returned: int) -> int:
    """A process's exit status as container runtimes report it: killed by a signal is 128 + its number."""
    return 128 - returned if returned < 0 else returned


@dataclass
class NodeContext:
    api: Api
    proxy: ServiceProxy
    image: Image
    node_name: str
    test_pid: int
    workdir: Path
    logdir: Path
    probes: aiohttp.ClientSession
    free_ips: list[str]
    counter: list[int] = field(default_factory=lambda: [0])


class Container:
    def __init__(self, pod: PodRunner, spec: Obj, *, waiting: str = "ContainerCreating") -> None:
        self.pod, self.spec, self.name = pod, spec, spec["name"]
        self.restart_count = 0
        self.state: Obj = {"waiting": {"reason": waiting}}
        self.last_state: Obj = {}
        self.started = False
        self.has_started = asyncio.Event()  # set while `started` is True: what the next init container waits for
        self.ready = False
        self.proc: asyncio.subprocess.Process | None = None
        self.stopping = False

    def record(self, step: str) -> None:
        """One line of the container's life in the node log (the module docstring gives the format)."""
        log.info("container %s/%s %s", self.pod.key, self.name, step)

    def status(self) -> Obj:
        return {"name": self.name, "image": self.spec["image"], "imageID": "", "ready": self.ready,
                "started": self.started, "restartCount": self.restart_count, "state": self.state,
                "lastState": self.last_state,
                **({"containerID": f"process://{self.proc.pid}"} if self.proc and "running" in self.state else {})}

    async def run(self, launch_spec: Obj) -> None:
        backoff = BACKOFF_INITIAL
        spec_file = self.pod.dir / f"{self.name}.json"
        spec_file.write_text(json.dumps(launch_spec))
        log_path = self.pod.logdir / f"{self.name}.log"
        while not self.stopping:
            log_file: IO[bytes] = open(log_path, "ab")  # noqa: SIM115 - closed below
            try:
                self.proc = await asyncio.create_subprocess_exec(
                    "ip", "netns", "exec", self.pod.netns, sys.executable, str(LAUNCHER), str(spec_file),
                    stdin=asyncio.subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                    start_new_session=True, preexec_fn=set_pdeathsig)
            finally:
                log_file.close()
            started_at = now()
            self.state = {"running": {"startedAt": started_at}}
            self.record(f"running pid={self.proc.pid}")
            self.pod.changed()
            probes = asyncio.create_task(self._probe())
            code = exit_code(await self.proc.wait())
            probes.cancel()
            self.started = self.ready = False
            self.has_started.clear()
            finished = {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                        "startedAt": started_at, "finishedAt": now()}
            # The kubelet restarts nothing in a pod that is terminating: a sidecar that exits
            # while the regular containers stop stays down.
            if self.stopping or self.pod.terminating.is_set():
                self.state = {"terminated": finished}
                self.pod.changed()
                return
            log.info("%s/%s exited with %s; restarting in %.0f s", self.pod.key, self.name, code, backoff)
            self.last_state = {"terminated": finished}
            self.restart_count += 1
            self.state = {"waiting": {"reason": "CrashLoopBackOff",
                                      "message": f"back-off {backoff:.0f}s restarting failed container"}}
            self.pod.changed()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.pod.terminating.wait(), timeout=backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    async def stop(self, grace: float) -> None:
        self.stopping = True
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        self.record(f"stopping grace={grace:.0f}s")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            returned = await asyncio.wait_for(proc.wait(), timeout=grace)
        except asyncio.TimeoutError:
            log.info("%s/%s did not stop within %.0f s; SIGKILL", self.pod.key, self.name, grace)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            returned = await proc.wait()
        self.record(f"stopped exit={exit_code(returned)}")

    # --- probes ---

    async def _probe(self) -> None:
        startup, readiness, liveness = (self.spec.get(p) for p in ("startupProbe", "readinessProbe", "livenessProbe"))
        if startup:
            await self._until(startup, want=True)
        self.started = True
        self.has_started.set()
        self.record("started")
        self.ready = readiness is None
        self.pod.changed()
        tasks = []
        if readiness:
            tasks.append(asyncio.create_task(self._readiness(readiness)))
        if liveness:
            tasks.append(asyncio.create_task(self._liveness(liveness)))
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()

    async def _check(self, probe: Obj) -> bool:
        timeout = probe.get("timeoutSeconds", 1)
        if "httpGet" in probe:
            get = probe["httpGet"]
            url = f"{get.get('scheme', 'HTTP').lower()}://{self.pod.ip}:{self._port(get['port'])}{get.get('path', '/')}"
            try:
                # As the kubelet: an HTTPS probe does not verify the certificate.
                async with self.pod.ctx.probes.get(url, timeout=aiohttp.ClientTimeout(total=timeout),
                                                   allow_redirects=False, ssl=False) as resp:
                    return 200 <= resp.status < 400
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                return False
        if "tcpSocket" in probe:
            try:
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.pod.ip, self._port(probe["tcpSocket"]["port"])), timeout)
                writer.close()
                return True
            except (OSError, asyncio.TimeoutError):
                return False
        raise PodConfigError(f"container {self.name}: only httpGet and tcpSocket probes are supported")

    def _port(self, port: int | str) -> int:
        if isinstance(port, int):
            return port
        for p in self.spec.get("ports") or []:
            if p.get("name") == port:
                return int(p["containerPort"])
        raise PodConfigError(f"container {self.name}: no port named {port!r}")

    async def _until(self, probe: Obj, *, want: bool) -> None:
        """Probe until `threshold` results in a row are `want` (success or failure)."""
        await asyncio.sleep(probe.get("initialDelaySeconds", 0))
        threshold = probe.get("successThreshold", 1) if want else probe.get("failureThreshold", 3)
        streak = 0
        while True:
            streak = streak + 1 if await self._check(probe) == want else 0
            if streak >= threshold:
                return
            await asyncio.sleep(probe.get("periodSeconds", 10))

    async def _readiness(self, probe: Obj) -> None:
        await asyncio.sleep(probe.get("initialDelaySeconds", 0))
        ok_streak = bad_streak = 0
        while True:
            if await self._check(probe):
                ok_streak, bad_streak = ok_streak + 1, 0
                if not self.ready and ok_streak >= probe.get("successThreshold", 1):
                    self.ready = True
                    self.pod.changed()
            else:
                ok_streak, bad_streak = 0, bad_streak + 1
                if self.ready and bad_streak >= probe.get("failureThreshold", 3):
                    self.ready = False
                    self.pod.changed()
            await asyncio.sleep(probe.get("periodSeconds", 10))

    async def _liveness(self, probe: Obj) -> None:
        await self._until(probe, want=False)
        log.info("%s/%s failed its liveness probe; stopping it", self.pod.key, self.name)
        proc = self.proc
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            grace = self.pod.pod["spec"].get("terminationGracePeriodSeconds", 30)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(proc.wait()), grace)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)


class PodRunner:
    def __init__(self, ctx: NodeContext, pod: Obj) -> None:
        self.ctx, self.pod = ctx, pod
        meta = pod["metadata"]
        self.key = f"{meta['namespace']}/{meta['name']}"
        self.uid = meta["uid"]
        ctx.counter[0] += 1
        self.n = ctx.counter[0]
        self.netns = network.pod_netns_name(ctx.test_pid, self.n)
        self.ip = ctx.free_ips.pop(0)
        self.dir = ctx.workdir / "pods" / self.uid
        self.logdir = ctx.logdir / f"{meta['namespace']}_{meta['name']}"
        # Native sidecars (restartPolicy Always); any other init container is refused in _prepare.
        self.sidecars = [Container(self, c) for c in pod["spec"].get("initContainers") or []]
        self.containers = [Container(self, c, waiting="PodInitializing" if self.sidecars else "ContainerCreating")
                           for c in pod["spec"]["containers"]]
        # The kubelet's Initialized: every sidecar has started once (a later restart of one
        # does not undo it, the regular containers have run).
        self.initialized = not self.sidecars
        self.terminating = asyncio.Event()
        self.grace: float = 30
        self._delete_when_done = True
        self.start_time = now()
        self.waiting_message = ""
        self._changed = asyncio.Event()
        self._written: Obj | None = None
        self._conditions: dict[str, Obj] = {}
        self._hosts = self.dir / "hosts"
        self.task = asyncio.create_task(self._run(), name=f"pod {self.key}")
        self._status_task = asyncio.create_task(self._write_status(), name=f"status {self.key}")

    def changed(self) -> None:
        self._changed.set()

    def update(self, pod: Obj) -> None:
        self.pod = pod
        if pod["metadata"].get("deletionTimestamp") and not self.terminating.is_set():
            self.terminate(float(pod["metadata"].get("deletionGracePeriodSeconds", 30)))

    def terminate(self, grace: float, *, delete: bool = True) -> None:
        self.grace = grace
        self._delete_when_done = delete
        self.terminating.set()

    # --- the pod's life ---

    async def _run(self) -> None:
        container_tasks: list[asyncio.Task[None]] = []
        try:
            self.dir.mkdir(parents=True)
            self.logdir.mkdir(parents=True, exist_ok=True)
            await asyncio.to_thread(network.create_pod_netns, self.netns, f"veth{self.n}", self.ip)
            self.write_hosts()
            (self.dir / "resolv.conf").write_text(
                f"search {self.pod['metadata']['namespace']}.svc.cluster.local svc.cluster.local cluster.local\n"
                "options ndots:5\n")
            specs = await self._prepare()
            if specs is not None:
                await self._start(specs, container_tasks)
            await self.terminating.wait()
        except PodConfigError as e:
            log.error("pod %s cannot run on this node: %s", self.key, e)
            self.waiting_message = f"CreateContainerConfigError: {e}"
            self.changed()
            await self.terminating.wait()
        except Exception:
            log.exception("pod %s failed on this node", self.key)
            await self.terminating.wait()
        finally:
            await self._stop_containers()
            for t in container_tasks:
                t.cancel()
            await asyncio.to_thread(network.delete_netns, self.netns)
            shutil.rmtree(self.dir, ignore_errors=True)
            self.ctx.free_ips.append(self.ip)
            self._status_task.cancel()
        if self._delete_when_done:
            meta = self.pod["metadata"]
            with contextlib.suppress(ApiError):
                await self.ctx.api.delete(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                                          {"gracePeriodSeconds": 0, "preconditions": {"uid": self.uid}})
            log.info("pod %s deleted", self.key)

    async def _start(self, specs: list[Obj], tasks: list[asyncio.Task[None]]) -> None:
        """The sidecars one after another, each started before the next; then the regular containers."""
        n = len(self.sidecars)
        for sidecar, launch in zip(self.sidecars, specs[:n]):
            tasks.append(asyncio.create_task(sidecar.run(launch)))
            self.changed()
            if not await self._started_or_terminating(sidecar):
                return
        self.initialized = True
        tasks.extend(asyncio.create_task(c.run(s)) for c, s in zip(self.containers, specs[n:]))
        self.changed()

    async def _started_or_terminating(self, container: Container) -> bool:
        waits = [asyncio.create_task(container.has_started.wait()), asyncio.create_task(self.terminating.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        return not self.terminating.is_set()

    async def _stop_containers(self) -> None:
        """As the kubelet orders termination: the regular containers together, then the sidecars
        in reverse order, each waiting for the ones before it; all within one grace period."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.grace
        await asyncio.gather(*(c.stop(self.grace) for c in self.containers), return_exceptions=True)
        for sidecar in reversed(self.sidecars):
            with contextlib.suppress(Exception):
                await sidecar.stop(max(deadline - loop.time(), MIN_GRACE))

    async def _prepare(self) -> list[Obj] | None:
        """Volumes and every container's launch spec (sidecars first); waits (as ContainerCreating) for
        missing objects."""
        spec = self.pod["spec"]
        refused = [f for f in ("ephemeralContainers",) if spec.get(f)]
        refused += [f"initContainers[{c['name']}] (run to completion: only restartPolicy Always is)"
                    for c in spec.get("initContainers") or [] if c.get("restartPolicy") != "Always"]
        refused += [f"{c['name']}.{f}" for c in [*(spec.get("initContainers") or []), *spec["containers"]]
                    for f in ("lifecycle", "volumeDevices") if c.get(f)]
        if refused:
            raise PodConfigError(f"not supported by this node agent: {', '.join(refused)}")
        while not self.terminating.is_set():
            try:
                for volume in spec.get("volumes") or []:
                    await prepare_volume(self.ctx.api, self.pod, volume, self.dir / "volumes" / volume["name"], self.ip)
                service_env = self.ctx.proxy.environment(self.pod["metadata"]["namespace"])
                return [await self._launch_spec(c.spec, service_env) for c in [*self.sidecars, *self.containers]]
            except NotYet as e:
                if self.waiting_message != str(e):
                    log.info("pod %s waits: %s", self.key, e)
                    self.waiting_message = str(e)
                    self.changed()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.terminating.wait(), timeout=1)
        return None

    async def _launch_spec(self, container: Obj, service_env: dict[str, str]) -> Obj:
        image = self.ctx.image
        env = await container_env(self.ctx.api, self.pod, container, image, service_env, self.ip, network.NODE_IP)
        uid, gid, groups = container_user(self.pod, container, image)
        sc = container.get("securityContext") or {}
        mounts = []
        for m in container.get("volumeMounts") or []:
            source = self.dir / "volumes" / m["name"] / m.get("subPath", "")
            volume = next(v for v in self.pod["spec"].get("volumes", []) if v["name"] == m["name"])
            read_only = bool(m.get("readOnly")) or "emptyDir" not in volume
            mounts.append({"source": str(source), "target": m["mountPath"], "readOnly": read_only})
        mounts += [{"source": str(self._hosts), "target": "/etc/hosts", "readOnly": False},
                   {"source": str(self.dir / "resolv.conf"), "target": "/etc/resolv.conf", "readOnly": True}]
        return {
            "argv": container_argv(container, image, env), "env": env, "uid": uid, "gid": gid, "groups": groups,
            "workingDir": container.get("workingDir") or image.workdir, "mounts": mounts,
            "imagePaths": image.paths, "readOnlyRootFilesystem": bool(sc.get("readOnlyRootFilesystem")),
            "noNewPrivs": sc.get("allowPrivilegeEscalation") is False,
            "dropAllCapabilities": "ALL" in (sc.get("capabilities") or {}).get("drop", []),
        }

    def write_hosts(self) -> None:
        """The pod's /etc/hosts; rewritten in place, so the bind mount sees each change."""
        name = self.pod["metadata"]["name"]
        lines = ["# written by the agentops test node agent", "127.0.0.1\tlocalhost",
                 "::1\tlocalhost ip6-localhost ip6-loopback", f"{self.ip}\t{name}",
                 *self.ctx.proxy.hosts_lines(self.pod["metadata"]["namespace"])]
        with open(self._hosts, "a+") as f:
            f.seek(0)
            f.truncate()
            f.write("\n".join(lines) + "\n")

    # --- status ---

    def _condition(self, kind: str, ok: bool) -> Obj:
        status = "True" if ok else "False"
        old = self._conditions.get(kind)
        if old is None or old["status"] != status:
            old = {"type": kind, "status": status, "lastTransitionTime": now(), "lastProbeTime": None}
            self._conditions[kind] = old
        return old

    def _container_status(self, c: Container) -> Obj:
        s = c.status()
        if self.waiting_message and "waiting" in c.state and c.state["waiting"]["reason"] == "ContainerCreating":
            s["state"] = {"waiting": {"reason": "ContainerCreating", "message": self.waiting_message}}
        return s

    def status(self) -> Obj:
        every = [*self.sidecars, *self.containers]
        # The kubelet's getPhase: Pending until initialized, then Running while anything runs.
        running = self.initialized and any("running" in c.state for c in every)
        ready = all(c.ready for c in every)  # sidecars count for ContainersReady (GenerateContainersReadyCondition)
        return {
            "phase": "Running" if running else "Pending",
            "hostIP": network.NODE_IP, "hostIPs": [{"ip": network.NODE_IP}],
            "podIP": self.ip, "podIPs": [{"ip": self.ip}], "startTime": self.start_time,
            "conditions": [self._condition("PodReadyToStartContainers", True),
                           self._condition("Initialized", self.initialized),
                           self._condition("Ready", ready), self._condition("ContainersReady", ready),
                           self._condition("PodScheduled", True)],
            **({"initContainerStatuses": [self._container_status(c) for c in self.sidecars]} if self.sidecars else {}),
            "containerStatuses": [self._container_status(c) for c in self.containers],
        }

    async def _write_status(self) -> None:
        meta = self.pod["metadata"]
        path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status"
        while True:
            await self._changed.wait()
            self._changed.clear()
            status = self.status()
            if status == self._written:
                continue
            try:
                await self.ctx.api.merge_patch(path, {"metadata": {"uid": self.uid}, "status": status})
                self._written = status
            except ApiError as e:
                log.warning("status of %s: %s", self.key, e)
                if e.status == 404:
                    return
                await asyncio.sleep(1)
                self.changed()

