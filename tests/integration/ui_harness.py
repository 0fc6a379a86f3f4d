"""Test harness: the real UI (`python -m agentops ui`) with read-only credentials.

The UI must work with nothing more than its own RBAC (manifests/base/ui-rbac.yaml):
`readonly_kubeconfig` applies it, mints a token for its ServiceAccount with
`kubectl create token`, and writes a kubeconfig that carries only that token.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from operator_harness import alive, free_port, spawn, wait_for

from agentops.kubeconfig import service_account_kubeconfig
from agentops.processes import terminate

REPO_ROOT = Path(__file__).resolve().parents[2]
UI_RBAC = REPO_ROOT / "manifests" / "base" / "ui-rbac.yaml"
UI_SERVICE_ACCOUNT = "system:serviceaccount:agentops-system:agentops-ui"


def readonly_kubeconfig(cluster: Any, path: Path) -> Path:
    """A kubeconfig for the UI's ServiceAccount only (no admin certificate in it)."""
    subprocess.run([str(cluster.kubectl_path), f"--kubeconfig={cluster.kubeconfig}", "create", "namespace", "agentops-system"],
                   capture_output=True, timeout=60)  # may exist already
    cluster.kubectl("apply", "-f", str(UI_RBAC))
    return service_account_kubeconfig(str(cluster.kubectl_path), cluster.env(), namespace="agentops-system",
                                      service_account="agentops-ui", path=path, duration="1h")


@dataclass
class UIProcess:
    kubeconfig: Path
    namespace: str
    log_path: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        self.proc = spawn([sys.executable, "-m", "agentops", "ui", "--listen", f"127.0.0.1:{self.port}",
                           "--namespace", self.namespace], env, self.log_path)
        wait_for(self._up, timeout=30, what=f"the UI to serve (log: {self.log_path})")

    def _up(self) -> bool:
        alive(self.proc, self.log_path, "the UI")
        return requests.get(f"{self.url}/healthz", timeout=2).status_code == 200

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc)
            self.proc = None
