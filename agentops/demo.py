"""`agentops demo`: the local all-in-one run.

Starts a local control plane (or uses the current kube context with
`--use-current-context`), installs the CRDs, runs the operator against a `demo`
namespace, applies the sample Agents and prints what to try next. Ctrl-C stops
everything it started and leaves nothing running.

The sample agents and their sidecars join this run with the sidecar work; until then
the Agents stay Unknown (no telemetry) and faults can be applied, watched and expired.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from agentops.envtest import ControlPlane
from agentops.processes import terminate

REPO_ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "demo"


def _kubectl(kubectl: str, env: dict[str, str], *args: str) -> str:
    proc = subprocess.run([kubectl, *args], env=env, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise SystemExit(f"kubectl {' '.join(args)} failed:\n{proc.stderr}")
    return proc.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agentops demo", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--use-current-context", action="store_true",
                        help="use the cluster of the current KUBECONFIG instead of starting a local control plane")
    parser.add_argument("--http-port", type=int, default=8080, help="port of the operator's sidecar API (default 8080)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # stop as cleanly on SIGTERM as on Ctrl-C

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
        _kubectl(kubectl, env, "wait", "--for=condition=Established", "crd/agents.agentops.dev", "crd/faults.agentops.dev", "--timeout=60s")
        # Ignore "already exists": the demo may run again against the same cluster.
        subprocess.run([kubectl, "create", "namespace", NAMESPACE], env=env, capture_output=True, timeout=60)

        token = secrets.token_hex(16)
        operator = subprocess.Popen(
            [sys.executable, "-m", "agentops", "operator", "--namespace", NAMESPACE,
             "--http-host", "127.0.0.1", "--http-port", str(args.http_port)],
            env={**env, "AGENTOPS_API_TOKEN": token},
            # Its own process group: Ctrl-C reaches only the demo, which then stops the
            # operator exactly once (a second signal would interrupt its clean shutdown).
            start_new_session=True,
        )
        stack.callback(terminate, operator)
        _kubectl(kubectl, env, "apply", "-n", NAMESPACE, "-f", str(REPO_ROOT / "manifests" / "samples" / "agents.yaml"))

        print(f"""
AgentOps demo is running.

  export KUBECONFIG={kubeconfig}
  {kubectl} get agents -n {NAMESPACE} -w
  {kubectl} apply -n {NAMESPACE} -f {REPO_ROOT / 'manifests/samples/fault-latency.yaml'}
  {kubectl} get faults -n {NAMESPACE}
  {kubectl} describe agent chat -n {NAMESPACE}

Operator sidecar API: http://127.0.0.1:{args.http_port} (bearer token: {token})
Ctrl-C stops everything.
""", flush=True)
        try:
            while operator.poll() is None:
                time.sleep(0.5)
            print(f"the operator exited with {operator.returncode}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("\nstopping...", flush=True)
            return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
