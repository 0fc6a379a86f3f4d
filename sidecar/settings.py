"""The sidecar's settings: CLI flag → environment variable → default, parsed once.

    agentops sidecar --agent chat --operator-url http://operator:8080 \\
        --upstream http://127.0.0.1:8000 [-- python -m my_agent]

Everything after `--` is the agent command: the sidecar then supervises it (starts
it, restarts it when it dies or when the operator asks). Durations are Go-style
strings ("2s", "500ms"), as in the CRDs.
"""

from __future__ import annotations

import argparse
import os
import socket
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from agentops.config import bearer_token, env, listen_address
from agentops.durations import parse_duration
from agentops.errors import ConfigError, InvalidField


@dataclass(frozen=True)
class SidecarSettings:
    namespace: str
    agent: str
    operator_url: str
    upstream: str  # scheme://host:port of the agent
    token: str = field(repr=False)
    sidecar_id: str  # who reports: pod name or host:pid
    listen_host: str = "0.0.0.0"
    listen_port: int = 8080
    admin_host: str = "0.0.0.0"
    admin_port: int = 9901
    health_path: str = "/healthz"
    probe_interval_s: float = 2.0
    probe_timeout_s: float = 1.0
    startup_grace_s: float = 30.0
    report_interval_s: float = 5.0
    max_poll_wait_s: float = 30.0
    upstream_timeout_s: float = 300.0
    max_upstream_connections: int = 256
    restart_grace_s: float = 10.0
    command: tuple[str, ...] = ()  # supervised agent command; empty: proxy only
    log_format: str = "json"
    log_level: str = "INFO"

    def redacted(self) -> dict[str, Any]:
        shown = asdict(self)
        shown["token"] = "<redacted>"
        return shown


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="agentops sidecar", description="Reverse proxy beside one agent: applies its faults, probes it, reports telemetry.")
    p.add_argument("--agent", help="name of the Agent resource this sidecar serves (env AGENTOPS_AGENT)")
    p.add_argument("--namespace", help="its namespace (env AGENTOPS_NAMESPACE, else POD_NAMESPACE; default 'default')")
    p.add_argument("--operator-url", help="the operator's sidecar API, e.g. http://agentops-operator:8080 (env AGENTOPS_OPERATOR_URL)")
    p.add_argument("--token-file", help="file holding the bearer token (env AGENTOPS_API_TOKEN_FILE; or the token in AGENTOPS_API_TOKEN)")
    p.add_argument("--upstream", help="the agent's address (env AGENTOPS_UPSTREAM; default http://127.0.0.1:8000)")
    p.add_argument("--listen", help="proxy address HOST:PORT (env AGENTOPS_LISTEN; default 0.0.0.0:8080)")
    p.add_argument("--admin-listen", help="/metrics, /healthz, /readyz, /v1/state at HOST:PORT (env AGENTOPS_ADMIN_LISTEN; default 0.0.0.0:9901)")
    p.add_argument("--health-path", help="the agent's health endpoint (env AGENTOPS_HEALTH_PATH; default /healthz)")
    p.add_argument("--probe-interval", help="how often to probe it (env AGENTOPS_PROBE_INTERVAL; default 2s)")
    p.add_argument("--probe-timeout", help="a probe slower than this fails (env AGENTOPS_PROBE_TIMEOUT; default 1s)")
    p.add_argument("--startup-grace", help="failed probes of an agent instance that has not yet passed one do not count "
                                            "as failures for this long after it starts, like a Kubernetes startupProbe "
                                            "(env AGENTOPS_STARTUP_GRACE; default 30s)")
    p.add_argument("--report-interval", help="telemetry window length (env AGENTOPS_REPORT_INTERVAL; default 5s)")
    p.add_argument("--max-poll-wait", help="longest assignment long poll; capped at half the lease (env AGENTOPS_MAX_POLL_WAIT; default 30s)")
    p.add_argument("--upstream-timeout", help="longest wait for the agent's next bytes (env AGENTOPS_UPSTREAM_TIMEOUT; default 300s)")
    p.add_argument("--max-upstream-connections", type=int, help="connection pool to the agent (env AGENTOPS_MAX_UPSTREAM_CONNECTIONS; default 256)")
    p.add_argument("--restart-grace", help="SIGTERM → SIGKILL grace when restarting a supervised agent (env AGENTOPS_RESTART_GRACE; default 10s)")
    p.add_argument("--sidecar-id", help="identity in reports (env AGENTOPS_SIDECAR_ID, else POD_NAME, else host:pid)")
    p.add_argument("--log-format", choices=("json", "text"), help="env AGENTOPS_LOG_FORMAT; default json")
    p.add_argument("--log-level", help="DEBUG, INFO, WARNING (env AGENTOPS_LOG_LEVEL; default INFO)")
    return p


def _http_url(value: str, flag: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{flag}: {value!r} must be an http:// or https:// URL with a host")
    return value.rstrip("/")


def _duration(flag: str | None, env_name: str, default: str, name: str, minimum_s: float = 0.001) -> float:
    raw = flag or env(env_name, default) or default
    try:
        seconds = parse_duration(raw, name)
    except InvalidField as exc:
        raise ConfigError(str(exc)) from None
    if seconds < minimum_s:
        raise ConfigError(f"{name}: must be at least {minimum_s:g}s, got {raw!r}")
    return seconds


def from_args(argv: list[str]) -> SidecarSettings:
    own, command = (argv[: argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    args = build_parser().parse_args(own)
    agent = args.agent or env("AGENTOPS_AGENT")
    if not agent:
        raise ConfigError("--agent (or AGENTOPS_AGENT) is required: the name of the Agent resource")
    operator_url = args.operator_url or env("AGENTOPS_OPERATOR_URL")
    if not operator_url:
        raise ConfigError("--operator-url (or AGENTOPS_OPERATOR_URL) is required")
    if "--" in argv and not command:
        raise ConfigError("nothing after '--': give the agent command to supervise, or drop the '--'")
    listen = listen_address(args.listen or env("AGENTOPS_LISTEN", "0.0.0.0:8080") or "", "--listen", default_host="0.0.0.0")
    admin = listen_address(args.admin_listen or env("AGENTOPS_ADMIN_LISTEN", "0.0.0.0:9901") or "", "--admin-listen", default_host="0.0.0.0")
    health_path = args.health_path or env("AGENTOPS_HEALTH_PATH", "/healthz") or "/healthz"
    if not health_path.startswith("/"):
        raise ConfigError(f"--health-path: {health_path!r} must start with '/'")
    max_conns = args.max_upstream_connections or int(env("AGENTOPS_MAX_UPSTREAM_CONNECTIONS", "256") or 256)
    if max_conns < 1:
        raise ConfigError("--max-upstream-connections: must be at least 1")
    log_format = args.log_format or env("AGENTOPS_LOG_FORMAT", "json") or "json"
    if log_format not in ("json", "text"):
        raise ConfigError(f"AGENTOPS_LOG_FORMAT: {log_format!r}; allowed: json, text")
    return SidecarSettings(
        namespace=args.namespace or env("AGENTOPS_NAMESPACE") or env("POD_NAMESPACE") or "default",
        agent=agent,
        operator_url=_http_url(operator_url, "--operator-url"),
        upstream=_http_url(args.upstream or env("AGENTOPS_UPSTREAM", "http://127.0.0.1:8000") or "", "--upstream"),
        token=bearer_token(args.token_file),
        sidecar_id=args.sidecar_id or env("AGENTOPS_SIDECAR_ID") or env("POD_NAME") or f"{socket.gethostname()}:{os.getpid()}",
        listen_host=listen[0],
        listen_port=listen[1],
        admin_host=admin[0],
        admin_port=admin[1],
        health_path=health_path,
        probe_interval_s=_duration(args.probe_interval, "AGENTOPS_PROBE_INTERVAL", "2s", "--probe-interval", 0.05),
        probe_timeout_s=_duration(args.probe_timeout, "AGENTOPS_PROBE_TIMEOUT", "1s", "--probe-timeout", 0.01),
        startup_grace_s=_duration(args.startup_grace, "AGENTOPS_STARTUP_GRACE", "30s", "--startup-grace", 0),
        report_interval_s=_duration(args.report_interval, "AGENTOPS_REPORT_INTERVAL", "5s", "--report-interval", 0.1),
        max_poll_wait_s=_duration(args.max_poll_wait, "AGENTOPS_MAX_POLL_WAIT", "30s", "--max-poll-wait", 0.1),
        upstream_timeout_s=_duration(args.upstream_timeout, "AGENTOPS_UPSTREAM_TIMEOUT", "300s", "--upstream-timeout", 0.01),
        max_upstream_connections=max_conns,
        restart_grace_s=_duration(args.restart_grace, "AGENTOPS_RESTART_GRACE", "10s", "--restart-grace", 0),
        command=tuple(command),
        log_format=log_format,
        log_level=(args.log_level or env("AGENTOPS_LOG_LEVEL", "INFO") or "INFO").upper(),
    )
