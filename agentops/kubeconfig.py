"""A kubeconfig that carries only a ServiceAccount's token.

The UI runs with its own read-only credentials (manifests/base/ui-rbac.yaml), also
locally: the demo and the tests mint a token for its ServiceAccount with
`kubectl create token` and hand the UI a kubeconfig holding that token and nothing of
the admin's identity. The cluster entry (server, CA) is taken from the admin
kubeconfig's current context, so it works the same for a local control plane and kind.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from agentops.errors import AgentOpsError


def _run(kubectl: str, env: dict[str, str], *args: str, input: str | None = None) -> str:
    proc = subprocess.run([kubectl, *args], env=env, capture_output=True, text=True, timeout=60, input=input)
    if proc.returncode != 0:
        raise AgentOpsError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def create_token(kubectl: str, env: dict[str, str], *, namespace: str, service_account: str, duration: str,
                 audience: str | None = None) -> str:
    """A token of the ServiceAccount from the API server's TokenRequest (`kubectl create token`), as a kubelet gets one."""
    args = ["create", "token", service_account, "-n", namespace, f"--duration={duration}"]
    return _run(kubectl, env, *args, *([f"--audience={audience}"] if audience else [])).strip()


def ensure_service_account(kubectl: str, env: dict[str, str], *, namespace: str, name: str) -> None:
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}}
    _run(kubectl, env, "apply", "-f", "-", input=json.dumps(account))


def service_account_kubeconfig(kubectl: str, env: dict[str, str], *, namespace: str, service_account: str,
                               path: Path, duration: str = "24h") -> Path:
    def run(*args: str) -> str:
        return _run(kubectl, env, *args)

    token = create_token(kubectl, env, namespace=namespace, service_account=service_account, duration=duration)
    current = json.loads(run("config", "view", "--raw", "--minify", "-o", "json"))
    cluster = current["clusters"][0]
    config = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": service_account, "user": {"token": token}}],
        "contexts": [{"name": service_account, "context": {"cluster": cluster["name"], "user": service_account}}],
        "current-context": service_account,
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path
