"""`agentops demo`: the local all-in-one run.

Starts a local control plane (or uses the current kube context with
`--use-current-context`), installs the CRDs, runs the operator against a `demo`
namespace, applies the sample Agents, and runs both sample agents (chat, summary),
each supervised by its own sidecar, with a little traffic through the sidecars so
that faults show up in the Agents' status, and the read-only UI with its own
ServiceAccount token (manifests/base/ui-rbac.yaml). It prints what to try next. Ctrl-C stops
everything it started and leaves nothing running.

As in a cluster, there is no shared secret: the operator serves its API over TLS with
the certificate it makes in a Secret, and each sidecar proves who it is with a token of
the ServiceAccount agentops-sidecar for the audience "agentops", minted by the API
server and renewed in a file as a kubelet renews a projected token.

Processes log to files under one temporary directory, printed at start, so the
console stays readable.
"""

from __future__ import annotations

import argparse
import base64
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from agentops.envtest import ControlPlane
from agentops.kubeconfig import service_account_kubeconfig
from agentops.processes import terminate
from agentops.projected_token import ProjectedToken, write_atomically

REPO_ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "demo"
SAMPLES = REPO_ROOT / "manifests" / "samples"
SIDECAR_ACCOUNT = "agentops-sidecar"  # the sample Agents' spec.identity.serviceAccounts
TLS_SECRET = f"{NAMESPACE}/agentops-operator-tls"
STARTUP_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class SampleAgent:
    name: str
    index: int
    path: str
    body: bytes
    base: int = 8000

    # With the default base: sidecars on 8001/8002, agents behind them on 18001/18002,
    # sidecar admin ports 9901/9902, the sidecars' model gateways on 10901/10902.
    @property
    def port(self) -> int:  # the sidecar's proxy port: where callers send requests
        return self.base + self.index

    @property
    def agent_port(self) -> int:  # the agent itself, behind the sidecar
        return self.base + 10000 + self.index

    @property
    def admin_port(self) -> int:  # the sidecar's /metrics and /v1/state
        return self.base + 1900 + self.index

    @property
    def gateway_port(self) -> int:  # the sidecar's model gateway: where the agent's Gemini calls go
        return self.base + 2900 + self.index


def sample_agents(base: int) -> tuple[SampleAgent, ...]:
    return (
        SampleAgent("chat", 1, "/v1/chat", b'{"message": "Hello, what can you do?"}', base),
        SampleAgent("summary", 2, "/v1/summarize",
                    b'{"text": "The operator reconciles faults. The sidecar enforces them. Health follows telemetry.", "maxSentences": 1}', base),
    )


def _kubectl(kubectl: str, env: dict[str, str], *args: str) -> str:
    proc = subprocess.run([kubectl, *args], env=env, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise SystemExit(f"kubectl {' '.join(args)} failed:\n{proc.stderr}")
    return proc.stdout


def _wait_for_ca(kubectl: str, env: dict[str, str], operator: subprocess.Popen[bytes], path: Path) -> None:
    """Wait until the operator has made its certificate; write the CA bundle sidecars verify it with to `path`."""
    namespace, name = TLS_SECRET.split("/")
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline and operator.poll() is None:
        proc = subprocess.run([kubectl, "get", "secret", name, "-n", namespace, "-o", "jsonpath={.data.ca\\.crt}"],
                              env=env, capture_output=True, text=True, timeout=60)
        if proc.returncode == 0 and proc.stdout:
            write_atomically(path, base64.b64decode(proc.stdout).decode())
            return
        time.sleep(0.5)
    raise SystemExit(f"the operator did not create its TLS Secret {TLS_SECRET} (see its log)")


def _start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out: IO[bytes] = log.open("ab")
    try:
        # Its own process group: Ctrl-C reaches only the demo, which then stops each
        # child exactly once (a second signal would interrupt its clean shutdown).
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        out.close()


def _traffic(agents: tuple[SampleAgent, ...], stop: threading.Event, every_s: float) -> None:
    """A caller per agent, one request every `every_s`, so health has samples to judge."""
    while not stop.wait(every_s):
        for agent in agents:
            request = urllib.request.Request(f"http://127.0.0.1:{agent.port}{agent.path}", data=agent.body,
                                             headers={"Content-Type": "application/json"}, method="POST")
            try:
                urllib.request.urlopen(request, timeout=10).read()
            except (urllib.error.URLError, OSError):
                pass  # an injected error or crash answers like this; that is the point


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agentops demo", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--use-current-context", action="store_true",
                        help="use the cluster of the current KUBECONFIG instead of starting a local control plane")
    parser.add_argument("--http-port", type=int, default=8080, help="port of the operator's sidecar API (default %(default)s)")
    parser.add_argument("--ui-port", type=int, default=8090, help="port of the read-only UI (default %(default)s)")
    parser.add_argument("--port-base", type=int, default=8000,
                        help="sidecars listen on BASE+1, BASE+2, their agents on BASE+10001.., admin on BASE+1901.., "
                             "model gateways on BASE+2901.. (default %(default)s)")
    parser.add_argument("--no-traffic", action="store_true", help="do not send sample requests through the sidecars")
    args = parser.parse_args(argv)
    agents = sample_agents(args.port_base)
    signal.signal(signal.SIGTERM, _interrupt)  # stop as cleanly on SIGTERM as on Ctrl-C
    logs = Path(tempfile.mkdtemp(prefix="agentops-demo-"))

    with ExitStack() as stack:
        if args.use_current_context:
            kubeconfig = os.environ.get("KUBECONFIG", str(Path.home() / ".kube" / "config"))
            kubectl = "kubectl"
        else:
            print("starting a local control plane (etcd + kube-apiserver)...", flush=True)
            plane = stack.enter_context(ControlPlane())
            kubeconfig, kubectl = str(plane.kubeconfig), str(plane.kubectl_path)
        env = {**os.environ, "KUBECONFIG": kubeconfig}

        _kubectl(kubectl, env, "apply", "-f", str(REPO_ROOT / "crds"))
        _kubectl(kubectl, env, "wait", "--for=condition=Established", "crd/agents.agentops.dev", "crd/faults.agentops.dev",
                 "crd/resiliencechecks.agentops.dev", "--timeout=60s")
        # Ignore "already exists": the demo may run again against the same cluster.
        subprocess.run([kubectl, "create", "namespace", NAMESPACE], env=env, capture_output=True, timeout=60)

        children = []
        operator = _start([sys.executable, "-m", "agentops", "operator", "--namespace", NAMESPACE,
                           "--http-host", "127.0.0.1", "--http-port", str(args.http_port),
                           "--tls-secret", TLS_SECRET, "--tls-hosts", "127.0.0.1,localhost"], env, logs / "operator.log")
        children.append(("operator", operator))
        stack.callback(terminate, operator)
        ca_file = logs / "operator-ca.crt"
        _wait_for_ca(kubectl, env, operator, ca_file)
        _kubectl(kubectl, env, "apply", "-n", NAMESPACE, "-f", str(SAMPLES / "agents.yaml"))
        for agent in agents:
            token = ProjectedToken(kubectl, env, namespace=NAMESPACE, service_account=SIDECAR_ACCOUNT, audience="agentops",
                                   path=logs / f"{agent.name}.token")
            token.start()
            stack.callback(token.stop)
            sidecar = _start([
                sys.executable, "-m", "agentops", "sidecar", "--agent", agent.name, "--namespace", NAMESPACE,
                "--operator-url", f"https://127.0.0.1:{args.http_port}",
                "--identity-token-file", str(token.path), "--operator-ca-file", str(ca_file),
                "--upstream", f"http://127.0.0.1:{agent.agent_port}",
                "--listen", f"127.0.0.1:{agent.port}", "--admin-listen", f"127.0.0.1:{agent.admin_port}",
                "--model-gateway-listen", f"127.0.0.1:{agent.gateway_port}",
                "--sidecar-id", f"demo-{agent.name}",
                # Probe every second: with probeFailureThreshold 3 a crash is judged
                # within ~3 s, and a healed agent is seen within a second.
                "--probe-interval", "1s",
                "--", sys.executable, "-m", "agentops", "agent", agent.name, "--host", "127.0.0.1", "--port", str(agent.agent_port),
            # The supervised agent inherits this environment: with GEMINI_API_KEY set it
            # calls Gemini through its sidecar's gateway (measured, and Model* faults apply).
            ], {**env, "GOOGLE_GEMINI_BASE_URL": f"http://127.0.0.1:{agent.gateway_port}/gemini"},
                logs / f"{agent.name}.log")
            children.append((f"{agent.name} sidecar", sidecar))
            stack.callback(terminate, sidecar)
        # The UI gets read-only credentials of its own, as it would in a cluster.
        subprocess.run([kubectl, "create", "namespace", "agentops-system"], env=env, capture_output=True, timeout=60)
        _kubectl(kubectl, env, "apply", "-f", str(REPO_ROOT / "manifests" / "base" / "ui-rbac.yaml"))
        ui_kubeconfig = service_account_kubeconfig(kubectl, env, namespace="agentops-system", service_account="agentops-ui",
                                                   path=logs / "ui.kubeconfig")
        ui = _start([sys.executable, "-m", "agentops", "ui", "--listen", f"127.0.0.1:{args.ui_port}", "--namespace", NAMESPACE],
                    {**os.environ, "KUBECONFIG": str(ui_kubeconfig)}, logs / "ui.log")
        children.append(("UI", ui))
        stack.callback(terminate, ui)
        stop_traffic = threading.Event()
        if not args.no_traffic:
            caller = threading.Thread(target=_traffic, args=(agents, stop_traffic, 0.5), daemon=True)
            caller.start()
            stack.callback(caller.join, 15)
            stack.callback(stop_traffic.set)

        chat, summary = agents
        print(f"""
AgentOps demo is running (logs in {logs}).

  UI (read-only): http://127.0.0.1:{args.ui_port}/

  export KUBECONFIG={kubeconfig}
  {kubectl} get agents -n {NAMESPACE} -w
  {kubectl} apply -n {NAMESPACE} -f {SAMPLES / 'fault-latency.yaml'}
  {kubectl} get faults -n {NAMESPACE}
  {kubectl} describe agent chat -n {NAMESPACE}
  {kubectl} apply -n {NAMESPACE} -f {SAMPLES / 'fault-crash.yaml'}     # summary crashes; watch it heal
  {kubectl} annotate agent chat -n {NAMESPACE} agentops.dev/recover="$(date +%s)" --overwrite
  {kubectl} annotate namespace {NAMESPACE} agentops.dev/halt="stop the drill"
  {kubectl} apply -n {NAMESPACE} -f {SAMPLES / 'fault-model-rate-limit.yaml'}   # with GEMINI_API_KEY: Gemini's 429 on chat's model calls

Agents, each behind its sidecar:
  curl -s localhost:{chat.port}{chat.path} -H 'Content-Type: application/json' -d '{chat.body.decode()}'
  curl -s localhost:{summary.port}{summary.path} -H 'Content-Type: application/json' -d '{{"text": "..."}}'
  sidecar state and metrics: curl -s localhost:{chat.admin_port}/v1/state, curl -s localhost:{chat.admin_port}/metrics
  model gateways (the agents' GOOGLE_GEMINI_BASE_URL): http://127.0.0.1:{chat.gateway_port}/gemini, http://127.0.0.1:{summary.gateway_port}/gemini
  ({"GEMINI_API_KEY is set: the agents call Gemini through them" if os.environ.get("GEMINI_API_KEY") else "no GEMINI_API_KEY: the agents answer offline and make no model call"})

Operator sidecar API: https://127.0.0.1:{args.http_port} (CA: {ca_file}; sidecars speak as ServiceAccount {NAMESPACE}/{SIDECAR_ACCOUNT})
{"" if args.no_traffic else "A request every 0.5 s goes to each agent so that health has samples. "}Ctrl-C stops everything.
""", flush=True)
        try:
            while True:
                for what, proc in children:
                    if proc.poll() is not None:
                        print(f"the {what} exited with {proc.returncode}; see {logs}", file=sys.stderr)
                        return 1
                time.sleep(0.5)
        except KeyboardInterrupt:
            print("\nstopping...", flush=True)
            return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
