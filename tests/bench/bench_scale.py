"""Scale benchmark: how one operator carries thousands of Agents and Faults.

Run:  .venv/bin/python tests/bench/bench_scale.py [--agents N] [--faults-per-agent K] [--json PATH]

A benchmark, not a test: it asserts nothing about timings, it measures and reports.
Everything runs on this machine (control plane, operator and load generator share
its cores), so absolute numbers are a lower bound on what a real cluster gives.

What is measured, and how:

1. Set-up. A real etcd + kube-apiserver (`agentops.envtest.ControlPlane`), the CRDs
   applied with its kubectl, one namespace. N Agents, then N*K Faults (Latency, 1h,
   each targeting its agent by name) are created straight against the API server with
   bounded-concurrency HTTPS requests (admin client cert), not kubectl per object.
2. Cold sync. The real operator (`python -m agentops operator`) starts only after all
   objects exist. We time: process start → the assignments endpoint stops answering
   503 (initial list in); → every Agent has a status; → every Fault is Active and every
   Agent shows its faults (one paged LIST of each kind, limit=500, every 0.5 s).
   Status writes the operator made (`agentops_kubernetes_writes_total{kind="status",
   result="ok"}`) are compared with the object count; RSS (VmRSS) and peak (VmHWM)
   are read from /proc after the writes settle.
3. Telemetry ingest. R healthy reports (shaped like `report()` in the integration
   harness, confirming the agent's faults as applied), round-robin over all agents,
   from C concurrent clients. Throughput, p50/p99 request latency, and the status
   writes they caused once settled (should be ~one per agent: Unknown → Healthy).
4. Long-poll fan-out. L agents each hold a waiting long poll at their current
   version; once the operator reports them all waiting, their Faults are deleted
   (concurrent DELETEs). Per agent: time from its DELETE returning to its long poll
   answering with an empty set (negative when the answer beat the DELETE response).
5. The reconcile loop's pass time from `agentops_reconcile_pass_duration_seconds`.

Prints a table and writes JSON (default artifacts/bench-scale.json; the operator's
log lands beside it). Every process started is stopped on exit, error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import platform
import secrets
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "integration"))
from operator_harness import free_port, report  # noqa: E402  (the harness owns the report shape)

from agentops.envtest import ControlPlane  # noqa: E402
from agentops.processes import set_pdeathsig  # noqa: E402
from bench_common import Results, cpu_s, machine_busy, memory_kib, percentile, utilisation  # noqa: E402

GROUP_PATH = "/apis/agentops.dev/v1alpha1"
RETRY_STATUSES = (429, 500, 502, 503, 504)


# ----------------------------------------------------------------- Kubernetes API


class Api:
    """Minimal async client for the envtest API server, authenticated as the admin."""

    def __init__(self, cp: ControlPlane, concurrency: int) -> None:
        assert cp.workdir is not None
        pki = cp.workdir / "pki"
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        self.server = cp.server
        self.concurrency = concurrency
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=concurrency))

    async def call(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None) -> tuple[int, Any]:
        # Retry throttling/transient errors: creation bursts can meet API priority & fairness.
        for attempt in range(6):
            async with self.session.request(method, self.server + path, json=body, params=params) as resp:
                data = await resp.json(content_type=None)
                if resp.status not in RETRY_STATUSES or attempt == 5:
                    return resp.status, data
            await asyncio.sleep(0.2 * 2**attempt)
        raise AssertionError("unreachable")

    async def must(self, method: str, path: str, body: Any = None) -> Any:
        status, data = await self.call(method, path, body)
        if status >= 300:
            raise RuntimeError(f"{method} {path}: HTTP {status}: {str(data)[:500]}")
        return data

    async def bounded(self, jobs: list[Callable[[], Awaitable[Any]]]) -> list[Any]:
        sem = asyncio.Semaphore(self.concurrency)

        async def one(job: Callable[[], Awaitable[Any]]) -> Any:
            async with sem:
                return await job()

        return await asyncio.gather(*(one(j) for j in jobs))

    async def list_all(self, ns: str, plural: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 500}
        while True:
            status, page = await self.call("GET", f"{GROUP_PATH}/namespaces/{ns}/{plural}", params=params)
            if status != 200:
                raise RuntimeError(f"LIST {plural}: HTTP {status}: {str(page)[:300]}")
            items += page["items"]
            token = page["metadata"].get("continue")
            if not token:
                return items
            params = {"limit": 500, "continue": token}


def agent_body(name: str) -> dict[str, Any]:
    # Long heartbeat/window so telemetry does not go stale mid-run and add writes of its own.
    return {"apiVersion": "agentops.dev/v1alpha1", "kind": "Agent", "metadata": {"name": name},
            "spec": {"runtime": {"type": "None"}, "health": {"heartbeatTimeout": "10m", "window": "10m", "minSamples": 5}}}


def fault_body(name: str, agent: str) -> dict[str, Any]:
    return {"apiVersion": "agentops.dev/v1alpha1", "kind": "Fault", "metadata": {"name": name},
            "spec": {"target": {"agent": agent}, "type": "Latency", "duration": "1h", "latency": {"delayMs": 100}}}


# ----------------------------------------------------------------- the operator


class Operator:
    """The real operator as a subprocess, plus its metrics and memory.

    By default with identity off — plain HTTP and the opt-in static token — so that this
    benchmark measures the operator's own work; `tls=True` serves its self-made
    certificate (from Secret `agentops-operator-tls` in its namespace) and sidecars then
    bring ServiceAccount tokens (bench_identity.py compares the two).
    """

    def __init__(self, env: dict[str, str], namespace: str, log_path: Path, *, tls: bool = False,
                 extra_args: tuple[str, ...] = ()) -> None:
        self.env, self.namespace, self.log_path, self.tls, self.extra_args = env, namespace, log_path, tls, extra_args
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.headers = {"Authorization": f"Bearer {self.token}"}
        self.ssl: ssl.SSLContext | bool = True  # the client context once the CA is known (tls)

    def start(self) -> float:
        cmd = [sys.executable, "-m", "agentops", "operator", "--namespace", self.namespace,
               "--http-host", "127.0.0.1", "--http-port", str(self.port), "--log-level", "INFO",
               *(["--tls-secret", f"{self.namespace}/agentops-operator-tls", "--tls-hosts", "127.0.0.1"] if self.tls
                 else ["--tls", "off"]),
               *self.extra_args]
        with self.log_path.open("wb") as log:
            started = time.monotonic()
            # Own session: a terminal Ctrl-C reaches only us, and we stop it in order.
            # PDEATHSIG: it dies with us even if we are SIGKILLed.
            self.proc = subprocess.Popen(cmd, env={**self.env, "AGENTOPS_STATIC_TOKEN": self.token}, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=set_pdeathsig)
        return started

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"operator exited with {self.proc.returncode}:\n{self.log_path.read_text()[-3000:]}")

    def memory_kib(self) -> dict[str, int]:
        assert self.proc is not None
        return memory_kib(self.proc.pid)

    def cpu_s(self) -> float:
        """User + system CPU seconds the operator has used (fields 14, 15 of /proc/pid/stat)."""
        assert self.proc is not None
        return cpu_s(self.proc.pid)

    async def metrics(self, session: aiohttp.ClientSession) -> dict[str, float]:
        """Every sample of /metrics, keyed by its series text (name{labels})."""
        async with session.get(f"{self.url}/metrics", ssl=self.ssl) as resp:
            text = await resp.text()
        samples: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                series, value = line.rsplit(" ", 1)
                samples[series] = float(value)
        return samples


def status_writes(m: dict[str, float], result: str = "ok", kind: str = "status") -> int:
    return int(m.get(f'agentops_kubernetes_writes_total{{kind="{kind}",result="{result}"}}', 0))


async def settle(op: Operator, session: aiohttp.ClientSession, timeout: float = 300) -> dict[str, float]:
    """Wait until the operator's writes stop (none in flight, count unchanged for 1 s)."""
    deadline = time.monotonic() + timeout
    last = -1
    while time.monotonic() < deadline:
        op.check_alive()
        m = await op.metrics(session)
        count = status_writes(m) + status_writes(m, kind="event")
        if count == last and m.get("agentops_kubernetes_writes_in_flight", 0) == 0:
            return m
        last = count
        await asyncio.sleep(1.0)
    print("  warning: operator writes did not settle", flush=True)
    return await op.metrics(session)


# ----------------------------------------------------------------- the phases


async def create_objects(api: Api, ns: str, n_agents: int, faults_per_agent: int, res: Results) -> dict[str, list[tuple[str, str]]]:
    """Create the Agents, then the Faults; return agent → [(fault name, fault uid)]."""
    agents = [f"agent-{i:05d}" for i in range(n_agents)]

    # One job per object; the body is made when the job runs, as the POST goes out.
    def create_agent(a: str) -> Callable[[], Awaitable[Any]]:
        return lambda: api.must("POST", f"{GROUP_PATH}/namespaces/{ns}/agents", agent_body(a))

    def create_fault(a: str, f: str) -> Callable[[], Awaitable[Any]]:
        return lambda: api.must("POST", f"{GROUP_PATH}/namespaces/{ns}/faults", fault_body(f, a))

    t0 = time.monotonic()
    await api.bounded([create_agent(a) for a in agents])
    took = time.monotonic() - t0
    res.add("create_agents_per_s", n_agents / took, "objects/s", f"create {n_agents} Agents (concurrency {api.concurrency})")
    pairs = [(a, f"{a}-fault-{k}") for a in agents for k in range(faults_per_agent)]
    t0 = time.monotonic()
    made = await api.bounded([create_fault(a, f) for a, f in pairs])
    took = time.monotonic() - t0
    res.add("create_faults_per_s", len(pairs) / took, "objects/s", f"create {len(pairs)} Faults")
    by_agent: dict[str, list[tuple[str, str]]] = {a: [] for a in agents}
    for (a, f), body in zip(pairs, made):
        by_agent[a].append((f, body["metadata"]["uid"]))
    return by_agent


async def cold_sync(op: Operator, api: Api, session: aiohttp.ClientSession, ns: str, n_agents: int, n_faults: int,
                    faults_per_agent: int, res: Results, timeout: float) -> None:
    busy0 = machine_busy()
    started = op.start()
    while True:  # the harness's readiness probe: an unknown agent is 503 until synced, then 404
        op.check_alive()
        try:
            async with session.get(f"{op.url}/v1/assignments/{ns}/-probe-", headers=op.headers) as resp:
                if resp.status != 503:
                    break
        except aiohttp.ClientConnectionError:
            pass  # not listening yet
        if time.monotonic() - started > timeout:
            raise RuntimeError("operator did not answer without 503 in time")
        await asyncio.sleep(0.05)
    res.add("synced_s", time.monotonic() - started, "s", "operator start → assignments not 503")

    have_status = converged = None
    while converged is None and time.monotonic() - started < timeout:
        op.check_alive()
        agents, faults = await api.list_all(ns, "agents"), await api.list_all(ns, "faults")
        with_status = sum(1 for a in agents if a.get("status"))
        active = sum(1 for f in faults if (f.get("status") or {}).get("phase") == "Active")
        showing = sum(1 for a in agents if (a.get("status") or {}).get("activeFaultCount") == faults_per_agent)
        now = time.monotonic() - started
        if have_status is None and with_status == n_agents:
            have_status = now
        if with_status == n_agents and active == n_faults and showing == n_agents:
            converged = now
        else:
            await asyncio.sleep(0.5)
    if converged is None:
        print(f"  warning: not converged after {timeout:.0f}s: {with_status}/{n_agents} agents with status, "
              f"{active}/{n_faults} faults Active, {showing} agents showing their faults", flush=True)
    res.add("agents_status_s", have_status if have_status is not None else "timeout", "s", "operator start → every Agent has a status")
    res.add("converged_s", converged if converged is not None else "timeout", "s",
            "operator start → all Faults Active, all Agents show them")
    synced_cpu, busy1 = op.cpu_s(), machine_busy()
    m = await settle(op, session)
    writes = status_writes(m)
    if converged is not None:
        res.add("sync_writes_per_s", writes / max(1e-9, converged - res.rows["synced_s"][0]), "writes/s",
                "status write rate (not-503 → converged)")
    res.add("sync_operator_cpu_s", synced_cpu, "CPU s", "operator CPU time, start → converged")
    res.add("sync_machine_busy_pct", utilisation(busy0, busy1), "% of all CPUs", "machine CPU busy, start → converged")
    res.add("sync_status_writes", writes, "writes", f"status writes for {n_agents + n_faults} objects")
    res.add("sync_writes_per_object", writes / (n_agents + n_faults), "writes/object", "status writes per object (cold sync)")
    res.add("sync_status_errors", status_writes(m, "error"), "writes", "status write errors (cold sync)")
    res.add("sync_events_ok", status_writes(m, kind="event"), "events", "Events posted (cold sync)")
    res.add("sync_events_dropped", int(m.get("agentops_events_dropped_total", 0)), "events", "Events dropped, queue full (cold sync)")
    mem = op.memory_kib()
    res.add("rss_after_sync_mib", mem["VmRSS"] / 1024, "MiB", "operator RSS after sync")
    res.add("rss_per_object_kib", mem["VmRSS"] / (n_agents + n_faults), "KiB/object", "operator RSS / objects (incl. baseline)")


async def telemetry_ingest(op: Operator, session: aiohttp.ClientSession, ns: str, faults: dict[str, list[tuple[str, str]]],
                           n_reports: int, clients: int, res: Results) -> None:
    agents = list(faults)
    # Serialized up front so the load generator spends its CPU on sending, not on json.dumps.
    bodies = [json.dumps(report(agents[i % len(agents)], ns, requests_=20, latency_ms=20.0,
                                applied=[uid for _, uid in faults[agents[i % len(agents)]]])).encode()
              for i in range(n_reports)]
    before, cpu0, busy0 = await op.metrics(session), op.cpu_s(), machine_busy()
    latencies: list[float] = []
    bad: dict[int, int] = {}
    queue = iter(bodies)
    headers = {**op.headers, "Content-Type": "application/json"}

    async def client(s: aiohttp.ClientSession) -> None:
        for body in queue:  # a shared iterator: each client takes the next report
            t = time.monotonic()
            async with s.post(f"{op.url}/v1/telemetry", data=body, headers=headers) as resp:
                await resp.read()
                if resp.status != 202:
                    bad[resp.status] = bad.get(resp.status, 0) + 1
            latencies.append(time.monotonic() - t)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as s:
        t0 = time.monotonic()
        await asyncio.gather(*(client(s) for _ in range(clients)))
        took = time.monotonic() - t0
    cpu1, busy1 = op.cpu_s(), machine_busy()
    res.add("ingest_reports_per_s", n_reports / took, "reports/s", f"telemetry ingest, {n_reports} reports, {clients} clients")
    res.add("ingest_p50_ms", percentile(latencies, 0.50) * 1000, "ms", "telemetry POST latency p50")
    res.add("ingest_p99_ms", percentile(latencies, 0.99) * 1000, "ms", "telemetry POST latency p99")
    res.add("ingest_operator_cpu_ms", (cpu1 - cpu0) / n_reports * 1000, "CPU ms/report", "operator CPU per report")
    res.add("ingest_machine_busy_pct", utilisation(busy0, busy1), "% of all CPUs", "machine CPU busy during ingest")
    if bad:
        res.add("ingest_rejected", sum(bad.values()), "reports", f"telemetry reports not accepted {bad}")
    after = await settle(op, session)
    writes = status_writes(after) - status_writes(before)
    res.add("ingest_status_writes", writes, "writes", f"status writes caused ({len(agents)} agents go Healthy)")
    res.add("ingest_writes_per_agent", writes / len(agents), "writes/agent", "status writes per agent (telemetry)")
    res.add("ingest_events_ok", status_writes(after, kind="event") - status_writes(before, kind="event"), "events",
            "Events posted (telemetry)")
    res.add("ingest_events_dropped", int(after.get("agentops_events_dropped_total", 0) - before.get("agentops_events_dropped_total", 0)),
            "events", "Events dropped, queue full (telemetry)")
    mem = op.memory_kib()
    res.add("rss_after_ingest_mib", mem["VmRSS"] / 1024, "MiB", "operator RSS after telemetry")


async def long_poll_fanout(op: Operator, api: Api, session: aiohttp.ClientSession, ns: str,
                           faults: dict[str, list[tuple[str, str]]], n_polls: int, res: Results) -> None:
    agents = list(faults)[:n_polls]
    versions: dict[str, int] = {}
    for a in agents:  # current version of each set, so that the poll below waits
        async with session.get(f"{op.url}/v1/assignments/{ns}/{a}", headers=op.headers) as resp:
            versions[a] = (await resp.json())["version"]
    answered: dict[str, tuple[float, int]] = {}

    async def poll(s: aiohttp.ClientSession, a: str) -> None:
        async with s.get(f"{op.url}/v1/assignments/{ns}/{a}", headers=op.headers,
                         params={"version": versions[a], "wait": 50}) as resp:
            body = await resp.json()
        answered[a] = (time.monotonic(), len(body.get("faults") or []) if resp.status == 200 else -1)

    # One connection per poll, as one sidecar per agent would hold.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                     timeout=aiohttp.ClientTimeout(total=70)) as s:
        polls = [asyncio.create_task(poll(s, a)) for a in agents]
        deadline = time.monotonic() + 30
        while (await op.metrics(session)).get("agentops_assignment_waiters", 0) < len(agents):
            if time.monotonic() > deadline:
                raise RuntimeError("long polls did not all start waiting")
            await asyncio.sleep(0.2)
        deleted: dict[str, float] = {}

        async def delete(a: str) -> None:
            for f, _ in faults[a]:
                await api.must("DELETE", f"{GROUP_PATH}/namespaces/{ns}/faults/{f}")
            deleted[a] = time.monotonic()

        t0 = time.monotonic()
        await api.bounded([functools.partial(delete, a) for a in agents])
        res.add("delete_faults_s", time.monotonic() - t0, "s", f"DELETE the faults of {len(agents)} agents")
        await asyncio.gather(*polls)
    lags = [answered[a][0] - deleted[a] for a in agents]
    res.add("fanout_p50_ms", percentile(lags, 0.50) * 1000, "ms", f"DELETE returned → long poll answered, p50 ({len(agents)} polls)")
    res.add("fanout_p99_ms", percentile(lags, 0.99) * 1000, "ms", "DELETE returned → long poll answered, p99")
    res.add("fanout_max_ms", max(lags) * 1000, "ms", "DELETE returned → long poll answered, max")
    res.add("fanout_not_empty", sum(1 for a in agents if answered[a][1] != 0), "polls", "long polls answered with a non-empty set/error")


def reconcile_histogram(m: dict[str, float], res: Results) -> None:
    name = "agentops_reconcile_pass_duration_seconds"
    count, total = m.get(f"{name}_count", 0), m.get(f"{name}_sum", 0)
    res.add("reconcile_passes", int(count), "passes", "reconcile-loop passes (whole run)")
    res.add("reconcile_mean_ms", total / count * 1000 if count else 0.0, "ms", "reconcile-loop pass, mean")
    # The bucket upper bound holding the 99th percentile: coarse, but from the operator itself.
    buckets = sorted((float(k.split('le="')[1].split('"')[0]), v) for k, v in m.items() if k.startswith(f"{name}_bucket"))
    p99 = next((le for le, v in buckets if count and v >= 0.99 * count), float("inf"))
    res.add("reconcile_p99_le_s", p99, "s", "reconcile-loop pass, p99 at most (bucket bound)")
    res.add("reconcile_total_s", total, "s", "reconcile-loop time, total")


# ----------------------------------------------------------------- driver


async def run(cp: ControlPlane, op: Operator, args: argparse.Namespace, res: Results) -> None:
    ns = op.namespace
    api = Api(cp, args.concurrency)
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
    try:
        await api.must("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        faults = await create_objects(api, ns, args.agents, args.faults_per_agent, res)
        n_faults = args.agents * args.faults_per_agent
        await cold_sync(op, api, session, ns, args.agents, n_faults, args.faults_per_agent, res, args.timeout)
        await telemetry_ingest(op, session, ns, faults, args.reports, args.clients, res)
        await long_poll_fanout(op, api, session, ns, faults, min(args.long_polls, args.agents), res)
        m = await settle(op, session)
        reconcile_histogram(m, res)
        mem = op.memory_kib()
        res.add("rss_end_mib", mem["VmRSS"] / 1024, "MiB", "operator RSS at the end")
        res.add("rss_peak_mib", mem["VmHWM"] / 1024, "MiB", "operator peak RSS (VmHWM)")
    finally:
        await session.close()
        await api.session.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--agents", type=int, default=2000, help="number of Agents (default 2000)")
    p.add_argument("--faults-per-agent", type=int, default=1, help="Faults per Agent (default 1)")
    p.add_argument("--reports", type=int, default=20000, help="telemetry reports to post (default 20000)")
    p.add_argument("--clients", type=int, default=8, help="concurrent telemetry clients (default 8)")
    p.add_argument("--long-polls", type=int, default=500, help="agents holding a long poll in the fan-out (default 500)")
    p.add_argument("--concurrency", type=int, default=16, help="concurrent API-server requests (default 16)")
    p.add_argument("--timeout", type=float, default=900, help="seconds allowed for the cold sync (default 900)")
    p.add_argument("--json", type=Path, default=REPO / "artifacts" / "bench-scale.json", help="where to write the results")
    args = p.parse_args()
    if args.faults_per_agent < 1 or args.agents < 1:
        p.error("--agents and --faults-per-agent must be at least 1")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    res = Results()
    wall = time.monotonic()
    print(f"bench-scale: {args.agents} agents × {args.faults_per_agent} fault(s), {os.cpu_count()} CPUs", flush=True)
    with ControlPlane() as cp:
        res.add("controlplane_start_s", cp.startup_seconds or 0.0, "s", "control plane start")
        kubectl = [str(cp.kubectl_path), f"--kubeconfig={cp.kubeconfig}"]
        subprocess.run([*kubectl, "apply", "-f", str(REPO / "crds")], check=True, capture_output=True, timeout=60)
        subprocess.run([*kubectl, "wait", "--for=condition=Established", "crd", "--all", "--timeout=60s"],
                       check=True, capture_output=True, timeout=90)
        op = Operator({**os.environ, "KUBECONFIG": str(cp.kubeconfig)}, "bench",
                      args.json.with_name(args.json.stem + "-operator.log"))
        try:
            asyncio.run(run(cp, op, args, res))
        finally:
            op.stop()  # before the control plane goes, so its shutdown is clean
    res.add("wall_s", time.monotonic() - wall, "s", "benchmark wall time")
    print()
    print(res.table())
    args.json.write_text(json.dumps({
        "params": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "objects": args.agents * (1 + args.faults_per_agent),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "metrics": {k: {"value": v, "unit": u, "label": lbl} for k, (v, u, lbl) in res.rows.items()},
    }, indent=2))
    print(f"\nwrote {args.json} (operator log: {op.log_path})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
