"""Test harness: the real operator as a subprocess, kubectl helpers, manifests, reports.

Each test gets its own namespace and its own operator watching only that namespace, so
tests can stop and restart "their" operator without disturbing others. Waiting is
always polling for a condition with a deadline, never a fixed sleep.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import requests

from agentops.kubeconfig import create_token, ensure_service_account
from agentops.processes import terminate

T = TypeVar("T")


def wait_for(probe: Callable[[], T | Literal[False] | None], *, timeout: float = 15.0, interval: float = 0.05,
             what: str = "condition") -> T:
    """Call `probe` until it returns something truthy; fail with the last value at the deadline.

    Typed for the usual probes `lambda: ready and value` and `lambda: value or None`: what
    comes back is never the False or None that meant "not yet"."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = probe()
        except (AssertionError, requests.RequestException, KeyError, json.JSONDecodeError) as exc:
            last = exc
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn(cmd: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start one of the project's processes with its output appended to `log_path`."""
    with log_path.open("ab") as log:
        return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)


def alive(proc: subprocess.Popen[bytes] | None, log_path: Path, what: str) -> bool:
    """True while `proc` runs; once it has exited, fail at once with the end of its log."""
    if proc is not None and proc.poll() is not None:
        raise RuntimeError(f"{what} exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
    return True


# The audience the operator expects by default (--token-audience).
AUDIENCE = "agentops"
# The ServiceAccount the harness speaks as when it plays a sidecar of a test's namespace.
TEST_SIDECAR_SA = "agentops-test-sidecar"


def mint_token(cluster: Any, namespace: str, service_account: str = TEST_SIDECAR_SA, *, audience: str = AUDIENCE,
               duration: str = "1h") -> str:
    """A real token of `service_account` (created if missing) from the API server's TokenRequest, as the kubelet gets one."""
    kubectl, env = str(cluster.kubectl_path), cluster.env()
    ensure_service_account(kubectl, env, namespace=namespace, name=service_account)
    return create_token(kubectl, env, namespace=namespace, service_account=service_account, duration=duration, audience=audience)


def secret_ca(cluster: Any, namespace: str, name: str) -> bytes | None:
    """The `ca.crt` of a TLS Secret, or None while it does not exist."""
    out = cluster.kubectl("get", "secret", name, "-n", namespace, "-o", "jsonpath={.data.ca\\.crt}", check=False)
    return base64.b64decode(out.stdout) if out.returncode == 0 and out.stdout else None


@dataclass
class OperatorProcess:
    """The real operator (`python -m agentops operator`) watching one namespace, serving TLS with
    the certificate it makes in `tls_secret`; the harness calls it as a sidecar of that namespace
    would, with a ServiceAccount token minted by the API server."""

    env: dict[str, str]
    namespace: str
    log_path: Path
    cluster: Any
    extra_args: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    token: str = ""  # minted on start
    tls_secret: str = ""  # NAMESPACE/NAME; empty: agentops-operator-tls in `namespace`
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> str:
        """The CA bundle the operator's certificate chains to (written on start)."""
        return str(self.log_path.with_suffix(".ca.crt"))

    @property
    def secret_ref(self) -> tuple[str, str]:
        namespace, _, name = (self.tls_secret or f"{self.namespace}/agentops-operator-tls").partition("/")
        return namespace, name

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def start(self) -> None:
        assert self.proc is None, "already running"
        cmd = [
            sys.executable, "-m", "agentops", "operator",
            "--namespace", self.namespace,
            "--http-host", "127.0.0.1", "--http-port", str(self.port),
            "--tls-secret", "/".join(self.secret_ref), "--tls-hosts", "127.0.0.1,localhost",
            "--log-level", "DEBUG" if os.environ.get("AGENTOPS_TEST_DEBUG") else "INFO",
            *self.extra_args,
        ]
        if not self.token:
            self.token = mint_token(self.cluster, self.namespace)
        self.proc = spawn(cmd, self.env, self.log_path)
        ca = wait_for(lambda: alive(self.proc, self.log_path, "the operator") and secret_ca(self.cluster, *self.secret_ref),
                      timeout=30, what=f"the operator's TLS Secret (log: {self.log_path})")
        Path(self.ca_file).write_bytes(ca)
        # Ready means: the API answers and the initial list is in (no more 503s).
        wait_for(self._synced, timeout=30, what=f"operator to sync (log: {self.log_path})")

    def _synced(self) -> bool:
        alive(self.proc, self.log_path, "the operator")
        r = requests.get(f"{self.url}/v1/assignments/{self.namespace}/-probe-", headers=self.headers, timeout=2, verify=self.ca_file)
        return r.status_code != 503

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        """GET `path` of the operator's API, verifying its certificate (no credentials unless given)."""
        return requests.get(self.url + path, verify=self.ca_file, **{"timeout": 10, **kwargs})

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.post(self.url + path, verify=self.ca_file, **{"timeout": 10, **kwargs})

    def stop(self) -> None:
        if self.proc is None:
            return
        terminate(self.proc)
        self.proc = None

    # --- the sidecar API, as a sidecar would use it ---

    def assignments(self, agent: str, *, version: int | None = None, wait: float = 0) -> dict[str, Any]:
        params: dict[str, Any] = {"wait": wait}
        if version is not None:
            params["version"] = version
        r = self.get(f"/v1/assignments/{self.namespace}/{agent}", params=params, headers=self.headers, timeout=wait + 10)
        assert r.status_code == 200, r.text
        return dict(r.json())

    def post_telemetry(self, report: dict[str, Any]) -> requests.Response:
        return self.post("/v1/telemetry", json=report, headers=self.headers)

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of one metric (matching `labels`) from /metrics."""
        text = self.get("/metrics", timeout=5).text
        total = 0.0
        for line in text.splitlines():
            if not line.startswith(name) or line.startswith("#"):
                continue
            series, value = line.rsplit(" ", 1)
            metric_name = series.split("{", 1)[0]
            if metric_name != name:
                continue
            if all(f'{k}="{v}"' in series for k, v in labels.items()):
                total += float(value)
        return total


@dataclass
class Kube:
    """kubectl for one namespace, with JSON reads."""

    cluster: Any
    namespace: str

    def apply(self, manifest: str) -> None:
        self.cluster.kubectl("apply", "-n", self.namespace, "-f", "-", input=manifest)

    def delete(self, kind: str, name: str) -> None:
        self.cluster.kubectl("delete", "-n", self.namespace, kind, name, "--wait=true")

    def get(self, kind: str, name: str) -> dict[str, Any]:
        return dict(json.loads(self.cluster.kubectl("get", "-n", self.namespace, kind, name, "-o", "json").stdout))

    def status(self, kind: str, name: str) -> dict[str, Any]:
        return dict(self.get(kind, name).get("status") or {})

    def condition(self, kind: str, name: str, type_: str) -> dict[str, Any]:
        for c in self.status(kind, name).get("conditions") or ():
            if c["type"] == type_:
                return dict(c)
        return {}

    def events(self, name: str) -> list[dict[str, Any]]:
        out = self.cluster.kubectl("get", "events", "-n", self.namespace, "--field-selector", f"involvedObject.name={name}", "-o", "json").stdout
        return list(json.loads(out)["items"])

    def event_reasons(self, name: str) -> set[str]:
        return {e["reason"] for e in self.events(name)}


def agent_manifest(name: str, *, labels: dict[str, str] | None = None, health: dict[str, Any] | None = None,
                   runtime: str = "None") -> str:
    """An Agent with short windows so that health moves within a test (observed only, by default)."""
    body = {
        "apiVersion": "agentops.dev/v1alpha1",
        "kind": "Agent",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "runtime": {"type": runtime},
            # heartbeatTimeout well above a test's single-report gaps on a loaded machine;
            # the staleness test sets its own.
            "health": {"heartbeatTimeout": "30s", "window": "10s", "minSamples": 5, **(health or {})},
        },
    }
    return json.dumps(body)


def fault_manifest(name: str, *, agent: str | None = None, selector: dict[str, str] | None = None,
                   duration: str = "60s", type_: str = "Latency", params: dict[str, Any] | None = None) -> str:
    block = {"Latency": "latency", "Error": "error", "Crash": "crash"}[type_]
    spec: dict[str, Any] = {
        "target": {"agent": agent} if agent else {"selector": {"matchLabels": selector or {}}},
        "type": type_,
        "duration": duration,
        block: params if params is not None else ({"delayMs": 2500} if type_ == "Latency" else {}),
    }
    return json.dumps({"apiVersion": "agentops.dev/v1alpha1", "kind": "Fault", "metadata": {"name": name}, "spec": spec})


def report(agent: str, namespace: str, *, requests_: int = 20, latency_ms: float = 20.0, errors: int = 0,
           probe_failures: int = 0, applied: list[str] | None = None, sidecar: str = "sidecar-a", window: float = 1.0,
           instance: str | None = None) -> dict[str, Any]:
    """A telemetry report as a sidecar would send it: every request at `latency_ms`."""
    bound = next(b for b in (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2000, 2600, 5000, 10000) if b >= latency_ms)
    return {
        "agent": {"namespace": namespace, "name": agent},
        "sidecar": sidecar,
        "instance": {"id": instance or f"{agent}-instance-1", "restarts": 0},
        "windowSeconds": window,
        "requests": requests_,
        "errors": {"http5xx": errors} if errors else {},
        "latencyMs": {"buckets": {str(bound): requests_} if requests_ else {}},
        "probes": {"ok": 0 if probe_failures else 1, "failed": 1 if probe_failures else 0,
                   "consecutiveFailures": probe_failures, "lastError": "connection refused" if probe_failures else None},
        "appliedFaults": applied or [],
    }


class TelemetryFeed:
    """Posts a report for each agent every 0.3 s, as its sidecar would; the test says how
    sick each one is (`set`) and which instance reports. Use as a context manager."""

    def __init__(self, operator: OperatorProcess, namespace: str) -> None:
        self.operator, self.namespace = operator, namespace
        self.state: dict[str, tuple[bool, str]] = {}  # agent → (sick, instance id)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def set(self, agent: str, *, sick: bool, instance: str = "i-1") -> None:
        self.state[agent] = (sick, instance)

    def _run(self) -> None:
        while not self._stop.is_set():
            for agent, (sick, instance) in list(self.state.items()):
                body = report(agent, self.namespace, requests_=10, probe_failures=5 if sick else 0, instance=instance,
                              window=0.3, sidecar=f"{agent}-sidecar")
                try:
                    self.operator.post_telemetry(body)
                except requests.RequestException:  # the operator may be restarting; the next round retries
                    pass
            self._stop.wait(0.3)

    def __enter__(self) -> TelemetryFeed:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
