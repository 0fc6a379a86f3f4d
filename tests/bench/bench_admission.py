"""Admission benchmark: what the sidecar-injection webhook adds to a pod's creation.

Run:  .venv/bin/python tests/bench/bench_admission.py [--pods N] [--clients C] [--rounds K]

A benchmark, not a test: it measures and reports. Against one real etcd + kube-apiserver,
the real operator serves the webhook over its own TLS (it fills in the caBundle of a
MutatingWebhookConfiguration shaped like manifests/base/sidecar-injector.yaml, pointed at
it by URL). Each round creates N pods in a namespace labelled agentops.dev/inject=enabled
(the API server calls the operator, which injects the sidecar) and N in a namespace
without the label (the webhook is not called), interleaved one by one so that a machine
getting busier does not favour either, from C keep-alive clients; then deletes them.
Reported: p50/p99 of the create call for each (the round with the lowest injected p99),
the difference, the operator's own time per review (its histogram) and its CPU per
review. The issue asks for these numbers, not for a bound: no targets.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import ssl
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "bench"))
from agentops.envtest import ControlPlane  # noqa: E402
from bench_common import Results, control_plane_with_crds, percentile, write_json  # noqa: E402
from bench_scale import Api, Operator  # noqa: E402

INJECTED, PLAIN = "bench-injected", "bench-plain"
CONFIGURATION = "agentops-sidecar-injector-bench"
SIDECAR = "agentops-sidecar"
# The agent's container passes the "restricted" Pod Security Standard, as the sidecar does.
RESTRICTED = {"allowPrivilegeEscalation": False, "runAsNonRoot": True, "runAsUser": 1000,
              "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


def webhook_configuration(url: str) -> dict[str, Any]:
    """The manifests' namespace webhook (fail-open, 5 s, IfNeeded), by URL, without a caBundle."""
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": CONFIGURATION},
            "webhooks": [{
                "name": "namespaces.sidecar-injector.agentops.dev", "admissionReviewVersions": ["v1"],
                "clientConfig": {"url": url},
                "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"],
                           "scope": "Namespaced"}],
                "namespaceSelector": {"matchLabels": {"agentops.dev/inject": "enabled"}},
                "objectSelector": {"matchExpressions": [{"key": "agentops.dev/inject", "operator": "NotIn",
                                                         "values": ["disabled"]}]},
                "failurePolicy": "Ignore", "sideEffects": "None", "timeoutSeconds": 5, "reinvocationPolicy": "IfNeeded",
            }]}


def pod_body() -> dict[str, Any]:
    """A Deployment-like agent pod: named by label, one container with the port named http."""
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"generateName": "agent-", "labels": {"agentops.dev/agent": "agent"}},
            # Set by the ServiceAccount admission plugin on a real cluster (off on this control plane).
            "spec": {"serviceAccountName": "default",
                     "containers": [{"name": "agent", "image": "agent:1", "securityContext": RESTRICTED,
                                     "ports": [{"name": "http", "containerPort": 8000}]}]}}


def injected(created: dict[str, Any]) -> bool:
    return any(c["name"] == SIDECAR for c in created["spec"].get("initContainers") or [])


async def wait_ready(op: Operator, api: Api, timeout: float = 120) -> None:
    """The operator's certificate, its caBundle in the configuration, and a dry-run create injected."""
    deadline = time.monotonic() + timeout

    async def until(what: str, check: Any) -> Any:
        while time.monotonic() < deadline:
            op.check_alive()
            value = await check()
            if value:
                return value
            await asyncio.sleep(0.2)
        raise RuntimeError(f"timed out waiting for {what} (log: {op.log_path})")

    async def secret() -> Any:
        status, body = await api.call("GET", f"/api/v1/namespaces/{INJECTED}/secrets/agentops-operator-tls")
        return body if status == 200 else None

    ca = base64.b64decode((await until("the operator's TLS Secret", secret))["data"]["ca.crt"])
    op.ssl = ssl.create_default_context(cadata=ca.decode())

    async def filled() -> bool:
        body = await api.must("GET", f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{CONFIGURATION}")
        return all(w["clientConfig"].get("caBundle") == base64.b64encode(ca).decode() for w in body["webhooks"])

    async def probe() -> bool:
        status, body = await api.call("POST", f"/api/v1/namespaces/{INJECTED}/pods", pod_body(), params={"dryRun": "All"})
        return status == 201 and injected(body)

    await until("the caBundle filled in", filled)
    await until("a dry-run create injected", probe)


async def one_round(api: Api, pods: int, clients: int) -> dict[str, list[float]]:
    """N creates in each namespace, alternating, from `clients` concurrent clients; latencies in seconds."""
    timings: dict[str, list[float]] = {INJECTED: [], PLAIN: []}
    jobs = iter([ns for _ in range(pods) for ns in (INJECTED, PLAIN)])

    async def client() -> None:
        for ns in jobs:
            started = time.perf_counter()
            status, body = await api.call("POST", f"/api/v1/namespaces/{ns}/pods", pod_body())
            timings[ns].append(time.perf_counter() - started)
            if status != 201 or injected(body) != (ns == INJECTED):
                raise RuntimeError(f"create in {ns}: HTTP {status}, injected {status == 201 and injected(body)}")

    await asyncio.gather(*(client() for _ in range(clients)))
    for ns in (INJECTED, PLAIN):  # unscheduled pods are deleted at once
        await api.must("DELETE", f"/api/v1/namespaces/{ns}/pods")
    return timings


def review_seconds(samples: dict[str, float]) -> tuple[float, float]:
    """(sum, count) of the operator's agentops_admission_review_duration_seconds."""
    return (samples.get("agentops_admission_review_duration_seconds_sum", 0.0),
            samples.get("agentops_admission_review_duration_seconds_count", 0.0))


async def run(cp: ControlPlane, args: argparse.Namespace, res: Results, logs: Path) -> None:
    api = Api(cp, max(16, args.clients))
    env = {**os.environ, "KUBECONFIG": str(cp.kubeconfig)}
    op = Operator(env, INJECTED, logs / "bench-admission-operator.log", tls=True,
                  extra_args=("--webhook-configuration", CONFIGURATION, "--status-heartbeat", "10m"))
    try:
        await api.must("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {
            "name": INJECTED, "labels": {"agentops.dev/inject": "enabled"}}})
        await api.must("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": PLAIN}})
        await api.must("POST", "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
                       webhook_configuration(f"https://127.0.0.1:{op.port}/mutate-pods"))
        op.start()
        await wait_ready(op, api)
        rounds: list[dict[str, float]] = []
        async with aiohttp.ClientSession() as s:
            for k in range(args.rounds):
                before, cpu0 = review_seconds(await op.metrics(s)), op.cpu_s()
                timings = await one_round(api, args.pods, args.clients)
                after, cpu = review_seconds(await op.metrics(s)), op.cpu_s() - cpu0
                reviews = max(1.0, after[1] - before[1])
                row = {f"{kind}_{q}": percentile(timings[ns], p) * 1000 for kind, ns in (("injected", INJECTED), ("plain", PLAIN))
                       for q, p in (("p50", 0.5), ("p99", 0.99))}
                row["review_ms"] = (after[0] - before[0]) / reviews * 1000
                row["cpu_ms"] = cpu / reviews * 1000
                rounds.append(row)
                print(f"  round {k + 1}: injected p50 {row['injected_p50']:.2f} p99 {row['injected_p99']:.2f} ms, "
                      f"not injected p50 {row['plain_p50']:.2f} p99 {row['plain_p99']:.2f} ms", flush=True)
        best = min(rounds, key=lambda r: r["injected_p99"])
        res.add("injected_p50_ms", best["injected_p50"], "ms", "pod create through the webhook (injected): p50")
        res.add("injected_p99_ms", best["injected_p99"], "ms", "pod create through the webhook (injected): p99")
        res.add("plain_p50_ms", best["plain_p50"], "ms", "pod create, namespace not labelled: p50")
        res.add("plain_p99_ms", best["plain_p99"], "ms", "pod create, namespace not labelled: p99")
        res.add("overhead_p50_ms", best["injected_p50"] - best["plain_p50"], "ms", "injection's cost at p50")
        res.add("overhead_p99_ms", best["injected_p99"] - best["plain_p99"], "ms", "injection's cost at p99")
        res.add("review_ms", best["review_ms"], "ms", "operator's time per review (mean, its histogram)")
        res.add("cpu_ms_per_review", best["cpu_ms"], "CPU ms/review", "operator CPU per review")
    finally:
        op.stop()
        await api.session.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pods", type=int, default=200, help="pods created per namespace and round (default 200)")
    p.add_argument("--clients", type=int, default=1, help="concurrent clients creating pods (default 1: latency alone)")
    p.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    p.add_argument("--json", type=Path, default=REPO / "artifacts" / "bench-admission.json", help="where to write the results")
    args = p.parse_args()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    res = Results()
    print(f"bench-admission: {args.pods} pods injected and {args.pods} not × {args.rounds} rounds, {args.clients} "
          f"client(s), {os.cpu_count()} CPUs", flush=True)
    with control_plane_with_crds() as cp:
        asyncio.run(run(cp, args, res, args.json.parent))
    print()
    print(res.table())
    write_json(args.json, vars(args), res)
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
