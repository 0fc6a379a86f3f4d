"""The operator's settings: CLI flag → environment variable → default, parsed once.

Every setting has its unit in its name and its default documented in `--help`.
The API token is redacted whenever settings are logged.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, field
from typing import Any

from agentops.config import bearer_token, env, number
from agentops.errors import ConfigError


@dataclass(frozen=True)
class OperatorSettings:
    namespaces: tuple[str, ...] = ()  # names or globs; empty with all_namespaces=False is an error
    all_namespaces: bool = False
    http_host: str = "0.0.0.0"
    http_port: int = 8080
    token: str = field(default="", repr=False)
    lease_s: float = 30.0
    status_heartbeat_s: float = 60.0
    max_writes_in_flight: int = 8
    resync_interval_s: float = 300.0
    liveness_endpoint: str | None = None
    log_level: str = "INFO"
    control_namespace: str = "agentops-system"
    max_concurrent_restarts: int = 3
    cloudrun_endpoint: str | None = None
    cloudrun_operation_timeout_s: float = 300.0
    firestore_project: str | None = None  # set: mirror agent state and incidents to Firestore
    firestore_database: str = "(default)"
    firestore_collection: str = "agentops-agents"
    firestore_max_writes_per_second: float = 20.0

    def redacted(self) -> dict[str, Any]:
        shown = asdict(self)
        shown["token"] = "<redacted>" if self.token else "<unset>"
        return shown


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-n", "--namespace", action="append", default=None, metavar="NS",
                   help="namespace to watch, or a glob such as 'team-*'; repeatable "
                        "(env AGENTOPS_NAMESPACES, comma-separated)")
    p.add_argument("-A", "--all-namespaces", action="store_true", default=None,
                   help="watch every namespace (env AGENTOPS_ALL_NAMESPACES=1)")
    p.add_argument("--http-host", default=None, help="address of the sidecar API (env AGENTOPS_HTTP_HOST; default 0.0.0.0)")
    p.add_argument("--http-port", type=int, default=None, help="port of the sidecar API (env AGENTOPS_HTTP_PORT; default 8080)")
    p.add_argument("--token-file", default=None,
                   help="file holding the bearer token sidecars must send, e.g. a mounted Secret "
                        "(env AGENTOPS_API_TOKEN_FILE; or the token itself in AGENTOPS_API_TOKEN)")
    p.add_argument("--lease-seconds", type=float, default=None,
                   help="sidecars drop every fault after this long without reaching the operator "
                        "(env AGENTOPS_LEASE_SECONDS; default 30)")
    p.add_argument("--status-heartbeat-seconds", type=float, default=None,
                   help="write an Agent's metrics at most this often when only metrics changed "
                        "(env AGENTOPS_STATUS_HEARTBEAT_SECONDS; default 60)")
    p.add_argument("--max-writes-in-flight", type=int, default=None,
                   help="bound on concurrent Kubernetes API writes (env AGENTOPS_MAX_WRITES_IN_FLIGHT; default 8)")
    p.add_argument("--resync-seconds", type=float, default=None,
                   help="full re-list interval that catches deletions a watch missed (env AGENTOPS_RESYNC_SECONDS; default 300)")
    p.add_argument("--liveness", default=None, metavar="URL",
                   help="kopf liveness endpoint, e.g. http://0.0.0.0:8081/healthz (env AGENTOPS_LIVENESS)")
    p.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING (env AGENTOPS_LOG_LEVEL; default INFO)")
    p.add_argument("--control-namespace", default=None,
                   help="the operator's own namespace; annotation agentops.dev/halt-all on it halts every fault in the cluster "
                        "(env AGENTOPS_CONTROL_NAMESPACE, else POD_NAMESPACE; default agentops-system)")
    p.add_argument("--max-concurrent-restarts", type=int, default=None,
                   help="cluster-wide limit on agents restarting (or verifying a restart) at once "
                        "(env AGENTOPS_MAX_CONCURRENT_RESTARTS; default 3)")
    p.add_argument("--cloudrun-endpoint", default=None,
                   help="Cloud Run Admin API endpoint, for a private endpoint or a local stand-in "
                        "(env AGENTOPS_CLOUDRUN_ENDPOINT; default: Google's public endpoint)")
    p.add_argument("--cloudrun-operation-timeout-seconds", type=float, default=None,
                   help="how long to wait for a Cloud Run rollout (env AGENTOPS_CLOUDRUN_OPERATION_TIMEOUT_SECONDS; default 300)")
    p.add_argument("--firestore-project", default=None,
                   help="mirror agent state and incidents to Firestore in this Google Cloud project; off when unset "
                        "(env AGENTOPS_FIRESTORE_PROJECT; FIRESTORE_EMULATOR_HOST selects the emulator)")
    p.add_argument("--firestore-database", default=None, help="Firestore database (env AGENTOPS_FIRESTORE_DATABASE; default (default))")
    p.add_argument("--firestore-collection", default=None,
                   help="Firestore collection of agent documents (env AGENTOPS_FIRESTORE_COLLECTION; default agentops-agents)")
    p.add_argument("--firestore-max-writes-per-second", type=float, default=None,
                   help="rate limit of the Firestore mirror (env AGENTOPS_FIRESTORE_MAX_WRITES_PER_SECOND; default 20)")


def from_args(args: argparse.Namespace) -> OperatorSettings:
    namespaces = tuple(args.namespace or [n.strip() for n in (env("AGENTOPS_NAMESPACES") or "").split(",") if n.strip()])
    all_ns = bool(args.all_namespaces) or env("AGENTOPS_ALL_NAMESPACES") in ("1", "true", "yes")
    if all_ns and namespaces:
        raise ConfigError("--all-namespaces and --namespace exclude each other")
    if not all_ns and not namespaces:
        raise ConfigError("say which namespaces to watch: --namespace NS (repeatable, globs allowed) or --all-namespaces")

    token = bearer_token(args.token_file)

    return OperatorSettings(
        namespaces=namespaces,
        all_namespaces=all_ns,
        http_host=args.http_host or env("AGENTOPS_HTTP_HOST", "0.0.0.0") or "0.0.0.0",
        http_port=int(number(args.http_port, "AGENTOPS_HTTP_PORT", 8080, 0)),
        token=token,
        lease_s=number(args.lease_seconds, "AGENTOPS_LEASE_SECONDS", 30, 1),
        status_heartbeat_s=number(args.status_heartbeat_seconds, "AGENTOPS_STATUS_HEARTBEAT_SECONDS", 60, 1),
        max_writes_in_flight=int(number(args.max_writes_in_flight, "AGENTOPS_MAX_WRITES_IN_FLIGHT", 8, 1)),
        resync_interval_s=number(args.resync_seconds, "AGENTOPS_RESYNC_SECONDS", 300, 10),
        liveness_endpoint=args.liveness or env("AGENTOPS_LIVENESS"),
        log_level=(args.log_level or env("AGENTOPS_LOG_LEVEL", "INFO") or "INFO").upper(),
        control_namespace=args.control_namespace or env("AGENTOPS_CONTROL_NAMESPACE") or env("POD_NAMESPACE") or "agentops-system",
        max_concurrent_restarts=int(number(args.max_concurrent_restarts, "AGENTOPS_MAX_CONCURRENT_RESTARTS", 3, 1)),
        cloudrun_endpoint=args.cloudrun_endpoint or env("AGENTOPS_CLOUDRUN_ENDPOINT"),
        cloudrun_operation_timeout_s=number(args.cloudrun_operation_timeout_seconds, "AGENTOPS_CLOUDRUN_OPERATION_TIMEOUT_SECONDS", 300, 1),
        firestore_project=args.firestore_project or env("AGENTOPS_FIRESTORE_PROJECT"),
        firestore_database=args.firestore_database or env("AGENTOPS_FIRESTORE_DATABASE", "(default)") or "(default)",
        firestore_collection=args.firestore_collection or env("AGENTOPS_FIRESTORE_COLLECTION", "agentops-agents") or "agentops-agents",
        firestore_max_writes_per_second=number(args.firestore_max_writes_per_second, "AGENTOPS_FIRESTORE_MAX_WRITES_PER_SECOND", 20, 0.1),
    )
