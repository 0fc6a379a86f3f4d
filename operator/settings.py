"""The operator's settings: CLI flag → environment variable → default, parsed once.

Every setting has its unit in its name (durations carry theirs in the value: "30s")
and its default in `--help`, read from the dataclass below, where each default is
stated once. The API token is redacted whenever settings are logged.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, field
from typing import Any

from agentops.config import DurationOption, bearer_token, defaults, env, number
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


DEFAULTS = defaults(OperatorSettings)

LEASE = DurationOption(
    "--lease", "AGENTOPS_LEASE", DEFAULTS["lease_s"], minimum_s=1,
    help="sidecars drop every fault after this long without reaching the operator",
    old_flag="--lease-seconds", old_env="AGENTOPS_LEASE_SECONDS")
STATUS_HEARTBEAT = DurationOption(
    "--status-heartbeat", "AGENTOPS_STATUS_HEARTBEAT", DEFAULTS["status_heartbeat_s"], minimum_s=1,
    help="write an Agent's metrics at most this often when only metrics changed",
    old_flag="--status-heartbeat-seconds", old_env="AGENTOPS_STATUS_HEARTBEAT_SECONDS")
# At least 10 s: each resync re-lists every Agent and Fault from the API server.
RESYNC_INTERVAL = DurationOption(
    "--resync-interval", "AGENTOPS_RESYNC_INTERVAL", DEFAULTS["resync_interval_s"], minimum_s=10,
    help="full re-list interval that catches deletions a watch missed",
    old_flag="--resync-seconds", old_env="AGENTOPS_RESYNC_SECONDS")
CLOUDRUN_OPERATION_TIMEOUT = DurationOption(
    "--cloudrun-operation-timeout", "AGENTOPS_CLOUDRUN_OPERATION_TIMEOUT", DEFAULTS["cloudrun_operation_timeout_s"], minimum_s=1,
    help="how long to wait for a Cloud Run rollout",
    old_flag="--cloudrun-operation-timeout-seconds", old_env="AGENTOPS_CLOUDRUN_OPERATION_TIMEOUT_SECONDS")


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = DEFAULTS
    p.add_argument("-n", "--namespace", action="append", default=None, metavar="NS",
                   help="namespace to watch, or a glob such as 'team-*'; repeatable "
                        "(env AGENTOPS_NAMESPACES, comma-separated)")
    p.add_argument("-A", "--all-namespaces", action="store_true", default=None,
                   help="watch every namespace (env AGENTOPS_ALL_NAMESPACES=1)")
    p.add_argument("--http-host", default=None, help=f"address of the sidecar API (env AGENTOPS_HTTP_HOST; default {d['http_host']})")
    p.add_argument("--http-port", type=int, default=None, help=f"port of the sidecar API (env AGENTOPS_HTTP_PORT; default {d['http_port']})")
    p.add_argument("--token-file", default=None,
                   help="file holding the bearer token sidecars must send, e.g. a mounted Secret "
                        "(env AGENTOPS_API_TOKEN_FILE; or the token itself in AGENTOPS_API_TOKEN)")
    LEASE.add_to(p)
    STATUS_HEARTBEAT.add_to(p)
    p.add_argument("--max-writes-in-flight", type=int, default=None,
                   help=f"bound on concurrent Kubernetes API writes (env AGENTOPS_MAX_WRITES_IN_FLIGHT; default {d['max_writes_in_flight']})")
    RESYNC_INTERVAL.add_to(p)
    p.add_argument("--liveness", default=None, metavar="URL",
                   help="kopf liveness endpoint, e.g. http://0.0.0.0:8081/healthz (env AGENTOPS_LIVENESS)")
    p.add_argument("--log-level", default=None, help=f"DEBUG, INFO, WARNING (env AGENTOPS_LOG_LEVEL; default {d['log_level']})")
    p.add_argument("--control-namespace", default=None,
                   help="the operator's own namespace; annotation agentops.dev/halt-all on it halts every fault in the cluster "
                        f"(env AGENTOPS_CONTROL_NAMESPACE, else POD_NAMESPACE; default {d['control_namespace']})")
    p.add_argument("--max-concurrent-restarts", type=int, default=None,
                   help="cluster-wide limit on agents restarting (or verifying a restart) at once "
                        f"(env AGENTOPS_MAX_CONCURRENT_RESTARTS; default {d['max_concurrent_restarts']})")
    p.add_argument("--cloudrun-endpoint", default=None,
                   help="Cloud Run Admin API endpoint, for a private endpoint or a local stand-in "
                        "(env AGENTOPS_CLOUDRUN_ENDPOINT; default: Google's public endpoint)")
    CLOUDRUN_OPERATION_TIMEOUT.add_to(p)
    p.add_argument("--firestore-project", default=None,
                   help="mirror agent state and incidents to Firestore in this Google Cloud project; off when unset "
                        "(env AGENTOPS_FIRESTORE_PROJECT; FIRESTORE_EMULATOR_HOST selects the emulator)")
    p.add_argument("--firestore-database", default=None,
                   help=f"Firestore database (env AGENTOPS_FIRESTORE_DATABASE; default {d['firestore_database']})")
    p.add_argument("--firestore-collection", default=None,
                   help=f"Firestore collection of agent documents (env AGENTOPS_FIRESTORE_COLLECTION; default {d['firestore_collection']})")
    p.add_argument("--firestore-max-writes-per-second", type=float, default=None,
                   help=f"rate limit of the Firestore mirror (env AGENTOPS_FIRESTORE_MAX_WRITES_PER_SECOND; default {d['firestore_max_writes_per_second']:g})")


def from_args(args: argparse.Namespace) -> OperatorSettings:
    d = DEFAULTS
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
        http_host=args.http_host or env("AGENTOPS_HTTP_HOST") or d["http_host"],
        http_port=int(number(args.http_port, "--http-port", "AGENTOPS_HTTP_PORT", d["http_port"], 0)),
        token=token,
        lease_s=LEASE.read(args),
        status_heartbeat_s=STATUS_HEARTBEAT.read(args),
        max_writes_in_flight=int(number(args.max_writes_in_flight, "--max-writes-in-flight", "AGENTOPS_MAX_WRITES_IN_FLIGHT",
                                        d["max_writes_in_flight"], 1)),
        resync_interval_s=RESYNC_INTERVAL.read(args),
        liveness_endpoint=args.liveness or env("AGENTOPS_LIVENESS"),
        log_level=(args.log_level or env("AGENTOPS_LOG_LEVEL") or d["log_level"]).upper(),
        control_namespace=args.control_namespace or env("AGENTOPS_CONTROL_NAMESPACE") or env("POD_NAMESPACE") or d["control_namespace"],
        max_concurrent_restarts=int(number(args.max_concurrent_restarts, "--max-concurrent-restarts", "AGENTOPS_MAX_CONCURRENT_RESTARTS",
                                           d["max_concurrent_restarts"], 1)),
        cloudrun_endpoint=args.cloudrun_endpoint or env("AGENTOPS_CLOUDRUN_ENDPOINT"),
        cloudrun_operation_timeout_s=CLOUDRUN_OPERATION_TIMEOUT.read(args),
        firestore_project=args.firestore_project or env("AGENTOPS_FIRESTORE_PROJECT"),
        firestore_database=args.firestore_database or env("AGENTOPS_FIRESTORE_DATABASE") or d["firestore_database"],
        firestore_collection=args.firestore_collection or env("AGENTOPS_FIRESTORE_COLLECTION") or d["firestore_collection"],
        firestore_max_writes_per_second=number(args.firestore_max_writes_per_second, "--firestore-max-writes-per-second",
                                               "AGENTOPS_FIRESTORE_MAX_WRITES_PER_SECOND", d["firestore_max_writes_per_second"], 0.1),
    )
