"""The sidecar's settings: CLI flag → environment variable → default, parsed once.

    agentops sidecar --agent chat --operator-url http://operator:8080 \\
        --upstream http://127.0.0.1:8000 [-- python -m my_agent]

Everything after `--` is the agent command: the sidecar then supervises it (starts
it, restarts it when it dies or when the operator asks). Durations are Go-style
strings ("2s", "500ms"), as in the CRDs. Each default is stated once, on the
dataclass below; the parser and `--help` read it from there.
"""

from __future__ import annotations

import argparse
import os
import socket
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from agentops.config import DurationOption, bearer_token, defaults, env, listen_address, number
from agentops.errors import ConfigError
from agentops_sidecar.model_routes import DEFAULT_UPSTREAMS, PREFIX_OF, PREFIXES


@dataclass(frozen=True, kw_only=True)
class SidecarSettings:
    namespace: str = "default"
    agent: str
    operator_url: str
    upstream: str = "http://127.0.0.1:8000"  # scheme://host:port of the agent
    token: str = field(repr=False)
    sidecar_id: str  # who reports: pod name or host:pid
    listen_host: str = "0.0.0.0"
    listen_port: int = 8080
    admin_host: str = "0.0.0.0"
    admin_port: int = 9901
    # The model gateway: loopback only, since the agent beside it is its only client and
    # its callers' API keys pass through it.
    model_gateway_host: str = "127.0.0.1"
    model_gateway_port: int = 9902
    model_gateway: bool = True  # --model-gateway-listen off: no gateway at all
    # Where each provider's calls go: (prefix, base URL) for gemini, openai, anthropic.
    model_upstreams: tuple[tuple[str, str], ...] = tuple((PREFIX_OF[p], url) for p, url in DEFAULT_UPSTREAMS.items())
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

    @property
    def model_gateway_address(self) -> str | None:
        """HOST:PORT of the model gateway, or None when it is off."""
        return f"{self.model_gateway_host}:{self.model_gateway_port}" if self.model_gateway else None

    def redacted(self) -> dict[str, Any]:
        shown = asdict(self)
        shown["token"] = "<redacted>"
        return shown


DEFAULTS = defaults(SidecarSettings)
_LISTEN = f"{DEFAULTS['listen_host']}:{DEFAULTS['listen_port']}"
_ADMIN_LISTEN = f"{DEFAULTS['admin_host']}:{DEFAULTS['admin_port']}"
_GATEWAY_LISTEN = f"{DEFAULTS['model_gateway_host']}:{DEFAULTS['model_gateway_port']}"

# The minimums keep a typo ("2ms" for "2s") from turning the sidecar into a busy loop.
PROBE_INTERVAL = DurationOption("--probe-interval", "AGENTOPS_PROBE_INTERVAL", DEFAULTS["probe_interval_s"], minimum_s=0.05,
                                help="how often to probe it")
PROBE_TIMEOUT = DurationOption("--probe-timeout", "AGENTOPS_PROBE_TIMEOUT", DEFAULTS["probe_timeout_s"], minimum_s=0.01,
                               help="a probe slower than this fails")
STARTUP_GRACE = DurationOption("--startup-grace", "AGENTOPS_STARTUP_GRACE", DEFAULTS["startup_grace_s"], minimum_s=0,
                               help="failed probes of an agent instance that has not yet passed one do not count "
                                    "as failures for this long after it starts, like a Kubernetes startupProbe")
REPORT_INTERVAL = DurationOption("--report-interval", "AGENTOPS_REPORT_INTERVAL", DEFAULTS["report_interval_s"], minimum_s=0.1,
                                 help="telemetry window length")
MAX_POLL_WAIT = DurationOption("--max-poll-wait", "AGENTOPS_MAX_POLL_WAIT", DEFAULTS["max_poll_wait_s"], minimum_s=0.1,
                               help="longest assignment long poll; capped at half the lease")
UPSTREAM_TIMEOUT = DurationOption("--upstream-timeout", "AGENTOPS_UPSTREAM_TIMEOUT", DEFAULTS["upstream_timeout_s"], minimum_s=0.01,
                                  help="longest wait for the agent's next bytes")
RESTART_GRACE = DurationOption("--restart-grace", "AGENTOPS_RESTART_GRACE", DEFAULTS["restart_grace_s"], minimum_s=0,
                               help="SIGTERM → SIGKILL grace when restarting a supervised agent")


def build_parser() -> argparse.ArgumentParser:
    d = DEFAULTS
    p = argparse.ArgumentParser(prog="agentops sidecar", description="Reverse proxy beside one agent: applies its faults, probes it, reports telemetry.")
    p.add_argument("--agent", help="name of the Agent resource this sidecar serves (env AGENTOPS_AGENT)")
    p.add_argument("--namespace", help=f"its namespace (env AGENTOPS_NAMESPACE, else POD_NAMESPACE; default '{d['namespace']}')")
    p.add_argument("--operator-url", help="the operator's sidecar API, e.g. http://agentops-operator:8080 (env AGENTOPS_OPERATOR_URL)")
    p.add_argument("--token-file", help="file holding the bearer token (env AGENTOPS_API_TOKEN_FILE; or the token in AGENTOPS_API_TOKEN)")
    p.add_argument("--upstream", help=f"the agent's address (env AGENTOPS_UPSTREAM; default {d['upstream']})")
    p.add_argument("--listen", help=f"proxy address HOST:PORT (env AGENTOPS_LISTEN; default {_LISTEN})")
    p.add_argument("--admin-listen", help=f"/metrics, /healthz, /readyz, /v1/state at HOST:PORT (env AGENTOPS_ADMIN_LISTEN; default {_ADMIN_LISTEN})")
    p.add_argument("--model-gateway-listen",
                   help="the model gateway at HOST:PORT: point the agent's SDKs at http://HOST:PORT/gemini, /openai/v1 "
                        f"and /anthropic; 'off' for none (env AGENTOPS_MODEL_GATEWAY_LISTEN; default {_GATEWAY_LISTEN})")
    p.add_argument("--model-upstream", action="append", metavar="PROVIDER=URL",
                   help="where the gateway sends one provider's calls, e.g. openai=http://127.0.0.1:8000 for an "
                        "OpenAI-compatible server; repeatable (env AGENTOPS_MODEL_UPSTREAMS, comma-separated; default "
                        + ", ".join(f"{k}={v}" for k, v in d["model_upstreams"]) + ")")
    p.add_argument("--health-path", help=f"the agent's health endpoint (env AGENTOPS_HEALTH_PATH; default {d['health_path']})")
    PROBE_INTERVAL.add_to(p)
    PROBE_TIMEOUT.add_to(p)
    STARTUP_GRACE.add_to(p)
    REPORT_INTERVAL.add_to(p)
    MAX_POLL_WAIT.add_to(p)
    UPSTREAM_TIMEOUT.add_to(p)
    p.add_argument("--max-upstream-connections", type=int,
                   help=f"connection pool to the agent (env AGENTOPS_MAX_UPSTREAM_CONNECTIONS; default {d['max_upstream_connections']})")
    RESTART_GRACE.add_to(p)
    p.add_argument("--sidecar-id", help="identity in reports (env AGENTOPS_SIDECAR_ID, else POD_NAME, else host:pid)")
    p.add_argument("--log-format", choices=("json", "text"), help=f"env AGENTOPS_LOG_FORMAT; default {d['log_format']}")
    p.add_argument("--log-level", help=f"DEBUG, INFO, WARNING (env AGENTOPS_LOG_LEVEL; default {d['log_level']})")
    return p


def _http_url(value: str, flag: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{flag}: {value!r} must be an http:// or https:// URL with a host")
    return value.rstrip("/")


def _model_upstreams(values: list[str] | None) -> tuple[tuple[str, str], ...]:
    label = "--model-upstream"
    if not values:
        raw = env("AGENTOPS_MODEL_UPSTREAMS")
        values, label = ([v for v in raw.split(",") if v.strip()] if raw else []), "AGENTOPS_MODEL_UPSTREAMS"
    upstreams = dict(DEFAULTS["model_upstreams"])
    for value in values:
        name, sep, url = value.strip().partition("=")
        if not sep or name not in PREFIXES:
            raise ConfigError(f"{label}: {value!r} must be PROVIDER=URL with PROVIDER one of {', '.join(PREFIXES)}")
        upstreams[name] = _http_url(url, label)
    return tuple(upstreams.items())


def from_args(argv: list[str]) -> SidecarSettings:
    d = DEFAULTS
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
    listen = listen_address(args.listen or env("AGENTOPS_LISTEN") or _LISTEN, "--listen", default_host=d["listen_host"])
    admin = listen_address(args.admin_listen or env("AGENTOPS_ADMIN_LISTEN") or _ADMIN_LISTEN, "--admin-listen", default_host=d["admin_host"])
    gateway_raw = args.model_gateway_listen or env("AGENTOPS_MODEL_GATEWAY_LISTEN") or _GATEWAY_LISTEN
    gateway_on = gateway_raw.strip().lower() != "off"
    gateway = (listen_address(gateway_raw, "--model-gateway-listen", default_host=d["model_gateway_host"]) if gateway_on
               else (d["model_gateway_host"], d["model_gateway_port"]))
    health_path = args.health_path or env("AGENTOPS_HEALTH_PATH") or d["health_path"]
    if not health_path.startswith("/"):
        raise ConfigError(f"--health-path: {health_path!r} must start with '/'")
    max_conns = int(number(args.max_upstream_connections, "--max-upstream-connections", "AGENTOPS_MAX_UPSTREAM_CONNECTIONS",
                           d["max_upstream_connections"], 1))
    log_format = args.log_format or env("AGENTOPS_LOG_FORMAT") or d["log_format"]
    if log_format not in ("json", "text"):
        raise ConfigError(f"AGENTOPS_LOG_FORMAT: {log_format!r}; allowed: json, text")
    return SidecarSettings(
        namespace=args.namespace or env("AGENTOPS_NAMESPACE") or env("POD_NAMESPACE") or d["namespace"],
        agent=agent,
        operator_url=_http_url(operator_url, "--operator-url"),
        upstream=_http_url(args.upstream or env("AGENTOPS_UPSTREAM") or d["upstream"], "--upstream"),
        token=bearer_token(args.token_file),
        sidecar_id=args.sidecar_id or env("AGENTOPS_SIDECAR_ID") or env("POD_NAME") or f"{socket.gethostname()}:{os.getpid()}",
        listen_host=listen[0],
        listen_port=listen[1],
        admin_host=admin[0],
        admin_port=admin[1],
        model_gateway_host=gateway[0],
        model_gateway_port=gateway[1],
        model_gateway=gateway_on,
        model_upstreams=_model_upstreams(args.model_upstream),
        health_path=health_path,
        probe_interval_s=PROBE_INTERVAL.read(args),
        probe_timeout_s=PROBE_TIMEOUT.read(args),
        startup_grace_s=STARTUP_GRACE.read(args),
        report_interval_s=REPORT_INTERVAL.read(args),
        max_poll_wait_s=MAX_POLL_WAIT.read(args),
        upstream_timeout_s=UPSTREAM_TIMEOUT.read(args),
        max_upstream_connections=max_conns,
        restart_grace_s=RESTART_GRACE.read(args),
        command=tuple(command),
        log_format=log_format,
        log_level=(args.log_level or env("AGENTOPS_LOG_LEVEL") or d["log_level"]).upper(),
    )
