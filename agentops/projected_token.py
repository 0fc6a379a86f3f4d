"""A ServiceAccount token kept fresh in a file, as the kubelet keeps a projected one.

Outside a cluster (the demo, local runs) no kubelet writes the sidecar's identity
token, so this does its job: mint a token for the audience with TokenRequest
(`kubectl create token`), write it atomically (a rename, so a reader never sees half a
token), and mint the next one when half of its lifetime has gone — the sidecar re-reads
the file when it changes, exactly as it does in a pod.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from agentops.errors import AgentOpsError
from agentops.kubeconfig import create_token, ensure_service_account

log = logging.getLogger(__name__)


def write_atomically(path: Path, text: str) -> None:
    staged = path.with_name(path.name + ".new")
    staged.write_text(text)
    staged.chmod(0o600)
    staged.replace(path)


class ProjectedToken:
    """Keep `path` holding a fresh token of `namespace/service_account` for `audience`; `start()`, then `stop()`."""

    def __init__(self, kubectl: str, env: dict[str, str], *, namespace: str, service_account: str, audience: str,
                 path: Path, lifetime_s: int = 600) -> None:
        # 600 s is the shortest lifetime TokenRequest grants.
        self.kubectl, self.env, self.namespace, self.service_account = kubectl, env, namespace, service_account
        self.audience, self.path, self.lifetime_s = audience, path, lifetime_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"token-{service_account}", daemon=True)

    def mint(self) -> None:
        token = create_token(self.kubectl, self.env, namespace=self.namespace, service_account=self.service_account,
                             duration=f"{self.lifetime_s}s", audience=self.audience)
        write_atomically(self.path, token)

    def start(self) -> None:
        ensure_service_account(self.kubectl, self.env, namespace=self.namespace, name=self.service_account)
        self.mint()
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.lifetime_s / 2):
            try:
                self.mint()
            except AgentOpsError as exc:  # the API server may be briefly away; the old token still has half its life
                log.warning("could not renew the token in %s: %s", self.path, exc)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
