"""Test harness: the real sidecar (`python -m agentops sidecar`) as a subprocess.

Ports are chosen up front (free_port) so a test knows where to send traffic; the
sidecar's `/v1/state` admin endpoint is what tests read to see what it enforces.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from operator_harness import alive, free_port, spawn, wait_for

from agentops.processes import terminate


@dataclass
class SidecarProcess:
    agent: str
    namespace: str
    operator_url: str
    token: str  # a ServiceAccount token, written to the file the sidecar reads (as the kubelet's projected volume)
    upstream_port: int
    log_path: Path
    ca_file: str | None = None  # the operator's CA bundle (OperatorProcess.ca_file) for an https operator_url
    command: list[str] = field(default_factory=list)  # supervise this agent when set
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    port: int = field(default_factory=free_port)
    admin_port: int = field(default_factory=free_port)
    # Every sidecar on this host gets its own model gateway port (a taken port stops it).
    gateway_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def token_file(self) -> Path:
        return self.log_path.with_suffix(".token")

    def rotate_token(self, token: str) -> None:
        """Replace the token file's content at once, as the kubelet rotates a projected token."""
        self.token = token
        staged = self.token_file.with_suffix(".token.new")
        staged.write_text(token)
        staged.replace(self.token_file)

    def start(self) -> None:
        assert self.proc is None, "already running"
        self.rotate_token(self.token)
        cmd = [
            sys.executable, "-m", "agentops", "sidecar",
            "--agent", self.agent, "--namespace", self.namespace,
            "--operator-url", self.operator_url,
            "--upstream", f"http://127.0.0.1:{self.upstream_port}",
            "--listen", f"127.0.0.1:{self.port}", "--admin-listen", f"127.0.0.1:{self.admin_port}",
            "--model-gateway-listen", f"127.0.0.1:{self.gateway_port}",
            "--sidecar-id", f"{self.agent}-sidecar",
            "--probe-interval", "500ms", "--report-interval", "1s",
            "--log-format", "text",
            "--identity-token-file", str(self.token_file),
            *(["--operator-ca-file", self.ca_file] if self.ca_file else []),
            *self.extra_args,
        ]
        if self.command:
            cmd += ["--", *self.command]
        self.proc = spawn(cmd, self.env, self.log_path)
        wait_for(self._up, timeout=20, what=f"sidecar admin port (log: {self.log_path})")

    def _up(self) -> bool:
        alive(self.proc, self.log_path, "the sidecar")
        return requests.get(f"{self.admin_url}/healthz", timeout=2).status_code == 200

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc)
            self.proc = None

    def state(self) -> dict[str, Any]:
        return dict(requests.get(f"{self.admin_url}/v1/state", timeout=5).json())

    def enforced(self) -> list[str]:
        return sorted(f["name"] for f in self.state()["enforced"])

    def metrics_text(self) -> str:
        return requests.get(f"{self.admin_url}/metrics", timeout=5).text


class Traffic:
    """A few client threads per agent calling it through its sidecar, as users would."""

    def __init__(self, url: str, path: str, body: dict[str, Any], threads: int = 4, pause: float = 0.05) -> None:
        self.url, self.path, self.body, self.pause = url, path, body, pause
        self.statuses: list[int] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        with requests.Session() as session:
            while not self._stop.is_set():
                try:
                    r = session.post(self.url + self.path, json=self.body, timeout=15)
                    self.statuses.append(r.status_code)
                except requests.RequestException:
                    self.statuses.append(0)
                self._stop.wait(self.pause)

    def __enter__(self) -> Traffic:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(20)


def gemini_chat(*, namespace: str, operator_url: str, token: str, ca_file: str | None, gemini_origin: str, key: str, model: str,
                log_path: Path) -> SidecarProcess:
    """The sample chat agent calling Gemini through its sidecar's model gateway (not started).

    Its Gemini REST client gets the key and `GOOGLE_GEMINI_BASE_URL` pointing at the
    gateway, which forwards to `gemini_origin` (a stand-in); runtime Process: the sidecar
    supervises it.
    """
    agent_port, gateway = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "GOOGLE_"))}
    env.update({"GEMINI_API_KEY": key, "GEMINI_MODEL": model,
                "GOOGLE_GEMINI_BASE_URL": f"http://127.0.0.1:{gateway}/gemini", "AGENTOPS_MODEL_TIMEOUT": "5s"})
    return SidecarProcess(
        agent="chat", namespace=namespace, operator_url=operator_url, token=token, ca_file=ca_file, upstream_port=agent_port,
        log_path=log_path, env=env, gateway_port=gateway,
        command=[sys.executable, "-m", "agentops", "agent", "chat", "--host", "127.0.0.1", "--port", str(agent_port)],
        extra_args=["--model-upstream", f"gemini={gemini_origin}"],
    )
