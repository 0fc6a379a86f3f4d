"""The sidecar's settings: CLI flag → environment variable → default, parsed once.

    agentops sidecar --agent chat --operator-url https://operator:8080 \\
        --upstream http://127.0.0.1:8000 [-- python -m my_agent]

Everything after `--` is the agent command: the sidecar then supervises it (starts
it, restarts it when it dies or when the operator asks). Durations are Go-style
strings ("2s", "500ms"), as in the CRDs. Each default is stated once, on the
dataclass below; the parser and `--help` read it from there.

Identity (issue 14): the sidecar proves who it is with its own token, not a shared one:
by default the projected ServiceAccount token (`--identity kubernetes`), on Cloud Run a
Google-signed ID token (`--identity google`); the shared token of old is the explicitly
named, weaker `--identity static`. Its old names (--token-file, AGENTOPS_API_TOKEN,
AGENTOPS_API_TOKEN_FILE) are refused with a message naming what replaced them: read
silently as before, they would keep a sidecar on the shared token without anyone
noticing; ignored, they would leave it without the token its operator expects.
"""

from __future__ import annotations

import argparse
import os
import socket
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

from agentops.config import MIN_TOKEN_LENGTH, DurationOption, defaults, env, listen_address, number, static_token
from agentops.errors import ConfigError
from agentops_sidecar.model_routes import DEFAULT_UPSTREAMS, PREFIX_OF, PREFIXES


# How the sidecar proves who it is (the operator's CallerKind has the same three).
IdentityMode = Literal["kubernetes", "google", "static"]
IDENTITY_MODES: tuple[IdentityMode, ...] = get_args(IdentityMode)
# Where the operator's CA bundle is mounted (a ConfigMap); used when it exists and no
# --operator-ca-file is given, else the system trust store is.
MOUNTED_OPERATOR_CA_FILE = "/var/run/secrets/agentops.dev/ca/ca.crt"
# The names the shared token had, and what replaced each.
_REPLACED = {
    "--token-file": "--identity static with --static-token-file",
    "AGENTOPS_API_TOKEN_FILE": "--identity static with AGENTOPS_STATIC_TOKEN_FILE",
    "AGENTOPS_API_TOKEN": "--identity static with AGENTOPS_STATIC_TOKEN",
}


@dataclass(frozen=True, kw_only=True)
class SidecarSettings:
    namespace: str = "default"
    agent: str
    operator_url: str
    upstream: str = "http://127.0.0.1:8000"  # scheme://host:port of the agent
    identity: IdentityMode = "kubernetes"
    # kubernetes: the projected ServiceAccount token, re-read whenever the kubelet rotates it.
    identity_token_file: str = "/var/run/secrets/agentops.dev/identity/token"
    # google: the audience of the ID token. On Kubernetes the audience is the projected
    # volume's (the pod spec's), which must name the same one.
    token_audience: str = "agentops"
    static_token: str = field(default="", repr=False)  # static only; empty otherwise
    operator_ca_file: str | None = None  # None: the system trust store
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
        shown["static_token"] = "<redacted>" if self.static_token else "<unset>"
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
    p.add_argument("--operator-url", help="the operator's sidecar API, e.g. https://agentops-operator.agentops-system:8080; "
                                          "http only for local development, since the token would travel in clear "
                                          "(env AGENTOPS_OPERATOR_URL)")
    p.add_argument("--operator-ca-file",
                   help="CA bundle the operator's https certificate must chain to, re-read when it changes "
                        f"(env AGENTOPS_OPERATOR_CA_FILE; default {MOUNTED_OPERATOR_CA_FILE} when it exists, else the "
                        "system trust store)")
    p.add_argument("--identity", choices=IDENTITY_MODES,
                   help="how the sidecar proves who it is to the operator: kubernetes, the pod's projected ServiceAccount "
                        "token (--identity-token-file); google, a Google-signed ID token from the metadata server, on "
                        "Cloud Run (--token-audience); static, a token shared by every sidecar (--static-token-file), "
                        "weaker: for sidecars that can have neither "
                        f"(env AGENTOPS_IDENTITY; default {d['identity']})")
    p.add_argument("--identity-token-file",
                   help="kubernetes: the projected ServiceAccount token, re-read when the kubelet rotates it "
                        f"(env AGENTOPS_IDENTITY_TOKEN_FILE; default {d['identity_token_file']})")
    p.add_argument("--token-audience",
                   help="google: the audience the ID token is for, the one the operator checks "
                        f"(env AGENTOPS_TOKEN_AUDIENCE; default {d['token_audience']})")
    p.add_argument("--static-token-file",
                   help="static: file holding the shared token, at least "
                        f"{MIN_TOKEN_LENGTH} characters (env AGENTOPS_STATIC_TOKEN_FILE; or the token itself in "
                        "AGENTOPS_STATIC_TOKEN); read only with --identity static")
    # The old name of --static-token-file: hidden, and refused by from_args with its replacement.
    p.add_argument("--token-file", help=argparse.SUPPRESS)
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


def _refuse_replaced_names(args: argparse.Namespace) -> None:
    used = [name for name in _REPLACED if (args.token_file if name.startswith("--") else env(name)) is not None]
    if used:
        raise ConfigError("; ".join(f"{name} is no longer read: use {_REPLACED[name]}" for name in used)
                          + ". By default the sidecar sends its pod's projected ServiceAccount token (--identity kubernetes, "
                            "--identity-token-file); the shared token is the weaker, explicit --identity static")


def _identity(value: str) -> IdentityMode:
    for mode in IDENTITY_MODES:
        if value == mode:
            return mode
    raise ConfigError(f"AGENTOPS_IDENTITY: {value!r}; allowed: {', '.join(IDENTITY_MODES)}")


def _static_token(args: argparse.Namespace, identity: IdentityMode) -> str:
    """The shared token, read only when it is the identity: --static-token-file, else AGENTOPS_STATIC_TOKEN(_FILE)."""
    if identity != "static":
        return ""
    token = static_token(args.static_token_file)
    if not token:
        raise ConfigError("--identity static needs the shared token: --static-token-file or AGENTOPS_STATIC_TOKEN_FILE, "
                          "or the token itself in AGENTOPS_STATIC_TOKEN")
    return token


def _operator_ca_file(flag_value: str | None) -> str | None:
    given, label = (flag_value, "--operator-ca-file") if flag_value else (env("AGENTOPS_OPERATOR_CA_FILE"), "AGENTOPS_OPERATOR_CA_FILE")
    if given is None:
        return MOUNTED_OPERATOR_CA_FILE if os.path.exists(MOUNTED_OPERATOR_CA_FILE) else None
    # A named file that is missing is a typo, not a race: the kubelet mounts ConfigMaps
    # before the container starts. (Its contents are checked, and re-read, by OperatorTLS.)
    if not os.path.isfile(given):
        raise ConfigError(f"{label}: {given} does not exist (or is not a file)")
    return given


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
    _refuse_replaced_names(args)
    identity = _identity(args.identity or env("AGENTOPS_IDENTITY") or d["identity"])
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
        identity=identity,
        identity_token_file=args.identity_token_file or env("AGENTOPS_IDENTITY_TOKEN_FILE") or d["identity_token_file"],
        token_audience=args.token_audience or env("AGENTOPS_TOKEN_AUDIENCE") or d["token_audience"],
        static_token=_static_token(args, identity),
        operator_ca_file=_operator_ca_file(args.operator_ca_file),
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
