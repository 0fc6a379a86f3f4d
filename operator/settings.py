"""The operator's settings: CLI flag → environment variable → default, parsed once.

Every setting has its unit in its name (durations carry theirs in the value: "30s")
and its default in `--help`, read from the dataclass below, where each default is
stated once. The static token (if any) is redacted whenever settings are logged.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

from agentops.config import DurationOption, defaults, env, number, static_token
from agentops.errors import ConfigError

TLSMode = Literal["self-signed", "secret", "off"]
GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"


@dataclass(frozen=True)
class OperatorSettings:
    namespaces: tuple[str, ...] = ()  # names or globs; empty with all_namespaces=False is an error
    all_namespaces: bool = False
    http_host: str = "0.0.0.0"
    http_port: int = 8080
    # Who sidecars may be: projected ServiceAccount tokens for this audience (always),
    # Google ID tokens for it (unless google_certs_url is None), the static token (only if set).
    token_audience: str = "agentops"
    token_review_cache_s: float = 120.0
    google_certs_url: str | None = GOOGLE_CERTS_URL
    static_token: str = field(default="", repr=False)
    # TLS of the sidecar API: a certificate the operator makes and renews in a Secret
    # (self-signed), one someone else writes there (secret: cert-manager), or none (off).
    tls: TLSMode = "self-signed"
    tls_secret: str = ""  # NAMESPACE/NAME; empty: <control namespace>/agentops-operator-tls
    tls_hosts: tuple[str, ...] = ()  # names and IPs in the certificate; empty: the operator Service's names + loopback
    ca_configmap: str | None = "agentops-ca"  # published with the CA into every watched namespace with Agents; None: not
    tls_check_interval_s: float = 60.0  # how often the Secret is re-read (renewal due? rotated by someone else?)
    # Sidecar injection (POST /mutate-pods): the MutatingWebhookConfiguration whose caBundle the
    # operator keeps equal to its CA; None: no admission route, no caBundle management.
    webhook_configuration: str | None = "agentops-sidecar-injector"
    sidecar_image: str = "agentops:dev"  # of injected sidecars; from_args prefers AGENTOPS_OPERATOR_IMAGE
    sidecar_operator_url: str = ""  # what injected sidecars dial; empty: the operator Service in the control namespace
    sidecar_scan_interval_s: float = 30.0  # how often pods are checked for a missing sidecar (SidecarMissing)
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
        shown["static_token"] = "<redacted>" if self.static_token else "<unset>"
        return shown

    @property
    def tls_secret_ref(self) -> tuple[str, str]:
        """(namespace, name) of the serving certificate's Secret."""
        namespace, _, name = (self.tls_secret or f"{self.control_namespace}/agentops-operator-tls").partition("/")
        return namespace, name

    @property
    def tls_host_names(self) -> tuple[str, ...]:
        if self.tls_hosts:
            return self.tls_hosts
        ns = self.tls_secret_ref[0]
        return (f"agentops-operator.{ns}.svc", f"agentops-operator.{ns}.svc.cluster.local", "localhost", "127.0.0.1")

    @property
    def sidecar_operator_address(self) -> str:
        """The operator's URL as injected sidecars dial it: the Service named in the serving certificate."""
        if self.sidecar_operator_url:
            return self.sidecar_operator_url
        scheme = "http" if self.tls == "off" else "https"
        return f"{scheme}://agentops-operator.{self.control_namespace}.svc:{self.http_port}"


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
TLS_CHECK_INTERVAL = DurationOption(
    "--tls-check-interval", "AGENTOPS_TLS_CHECK_INTERVAL", DEFAULTS["tls_check_interval_s"], minimum_s=1,
    help="how often the serving certificate's Secret is read again, to renew it or to load one rotated by cert-manager")
SIDECAR_SCAN_INTERVAL = DurationOption(
    "--sidecar-scan-interval", "AGENTOPS_SIDECAR_SCAN_INTERVAL", DEFAULTS["sidecar_scan_interval_s"], minimum_s=1,
    help="how often the pods of namespaces with Agents are listed to find those running without the injected sidecar")
# At most 10 minutes: a ServiceAccount that is deleted must stop working soon after. Each
# review costs the operator ~1.4 ms of CPU, and a steady sidecar's token is reviewed about
# once per 3/4 of this (in the background): 10,000 sidecars at 2 min ≈ 110 reviews/s.
TOKEN_REVIEW_CACHE = DurationOption(
    "--token-review-cache", "AGENTOPS_TOKEN_REVIEW_CACHE", DEFAULTS["token_review_cache_s"], minimum_s=0, maximum_s=600,
    help="how long a verified sidecar token is trusted without asking the API server again (a deleted ServiceAccount's "
         "token works at most this long, plus the API server's own ~10s cache); 0s: review every call")
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
    p.add_argument("--token-audience", default=None,
                   help="audience that sidecars' projected ServiceAccount tokens and Google ID tokens must be issued for "
                        f"(env AGENTOPS_TOKEN_AUDIENCE; default {d['token_audience']})")
    TOKEN_REVIEW_CACHE.add_to(p)
    p.add_argument("--google-certs-url", default=None,
                   help="where Google's ID-token signing certificates are fetched (cached), to verify Cloud Run sidecars; "
                        f"'off' refuses Google ID tokens (env AGENTOPS_GOOGLE_CERTS_URL; default {d['google_certs_url']})")
    p.add_argument("--static-token-file", default=None,
                   help="ALSO accept this one shared token from any sidecar, for any agent: weaker than workload identity, "
                        "only for sidecars that can have neither a ServiceAccount nor a Google identity; off when unset "
                        "(env AGENTOPS_STATIC_TOKEN_FILE, or the token in AGENTOPS_STATIC_TOKEN)")
    p.add_argument("--token-file", default=None, help=argparse.SUPPRESS)  # renamed: refused with a message
    p.add_argument("--tls", default=None, choices=get_args(TLSMode),
                   help="TLS of the sidecar API: self-signed = the operator makes and renews its certificate and CA in --tls-secret; "
                        "secret = someone else (cert-manager) writes tls.crt/tls.key/ca.crt there; off = plain HTTP, tokens in clear "
                        f"(env AGENTOPS_TLS; default {d['tls']})")
    p.add_argument("--tls-secret", default=None, metavar="NAMESPACE/NAME",
                   help="the serving certificate's Secret (env AGENTOPS_TLS_SECRET; default <control namespace>/agentops-operator-tls)")
    p.add_argument("--tls-hosts", default=None, metavar="NAMES",
                   help="comma-separated DNS names and IPs the certificate is for (env AGENTOPS_TLS_HOSTS; default "
                        "agentops-operator.<secret's namespace>.svc, ….svc.cluster.local, localhost, 127.0.0.1)")
    TLS_CHECK_INTERVAL.add_to(p)
    p.add_argument("--ca-configmap", default=None,
                   help="ConfigMap the CA bundle is published as (key ca.crt) in every watched namespace that has Agents, "
                        f"for their sidecars to mount; 'off' publishes nothing (env AGENTOPS_CA_CONFIGMAP; default {d['ca_configmap']})")
    p.add_argument("--webhook-configuration", default=None, metavar="NAME",
                   help="the MutatingWebhookConfiguration of sidecar injection: the operator serves POST /mutate-pods and keeps "
                        "the configuration's caBundle equal to its CA; 'off' does neither (env AGENTOPS_WEBHOOK_CONFIGURATION; "
                        f"default {d['webhook_configuration']})")
    p.add_argument("--sidecar-image", default=None,
                   help="image of the injected sidecar (env AGENTOPS_SIDECAR_IMAGE; default: env AGENTOPS_OPERATOR_IMAGE, the "
                        f"operator's own image, else {d['sidecar_image']})")
    SIDECAR_SCAN_INTERVAL.add_to(p)
    p.add_argument("--sidecar-operator-url", default=None, metavar="URL",
                   help="the operator's API as injected sidecars reach it (env AGENTOPS_SIDECAR_OPERATOR_URL; default "
                        "https://agentops-operator.<control namespace>.svc:<http port>, http:// with --tls off)")
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

    tls = args.tls or env("AGENTOPS_TLS") or d["tls"]
    if tls not in get_args(TLSMode):
        raise ConfigError(f"AGENTOPS_TLS: {tls!r} is not allowed; use one of {', '.join(get_args(TLSMode))}")
    tls_secret = args.tls_secret or env("AGENTOPS_TLS_SECRET") or ""
    if tls_secret and (tls_secret.count("/") != 1 or not all(tls_secret.split("/"))):
        raise ConfigError(f"--tls-secret: {tls_secret!r} is not NAMESPACE/NAME")
    google = args.google_certs_url or env("AGENTOPS_GOOGLE_CERTS_URL") or d["google_certs_url"]
    ca_configmap = args.ca_configmap or env("AGENTOPS_CA_CONFIGMAP") or d["ca_configmap"]
    audience = args.token_audience or env("AGENTOPS_TOKEN_AUDIENCE") or d["token_audience"]
    webhook_configuration = args.webhook_configuration or env("AGENTOPS_WEBHOOK_CONFIGURATION") or d["webhook_configuration"]
    sidecar_image = (args.sidecar_image or env("AGENTOPS_SIDECAR_IMAGE") or env("AGENTOPS_OPERATOR_IMAGE")
                     or d["sidecar_image"]).strip()
    if not sidecar_image:
        raise ConfigError("--sidecar-image must not be empty")
    sidecar_operator_url = args.sidecar_operator_url or env("AGENTOPS_SIDECAR_OPERATOR_URL") or d["sidecar_operator_url"]
    if sidecar_operator_url and not sidecar_operator_url.startswith(("https://", "http://")):
        raise ConfigError(f"--sidecar-operator-url: {sidecar_operator_url!r} is not an http:// or https:// URL")
    if not audience.strip():
        raise ConfigError("--token-audience must not be empty")

    return OperatorSettings(
        namespaces=namespaces,
        all_namespaces=all_ns,
        http_host=args.http_host or env("AGENTOPS_HTTP_HOST") or d["http_host"],
        http_port=int(number(args.http_port, "--http-port", "AGENTOPS_HTTP_PORT", d["http_port"], 0)),
        token_audience=audience,
        token_review_cache_s=TOKEN_REVIEW_CACHE.read(args),
        google_certs_url=None if google.lower() == "off" else google,
        static_token=_static_token(args.static_token_file, args.token_file),
        tls=tls,  # type: ignore[arg-type]  # checked above
        tls_secret=tls_secret,
        tls_hosts=tuple(h.strip() for h in (args.tls_hosts or env("AGENTOPS_TLS_HOSTS") or "").split(",") if h.strip()),
        ca_configmap=None if ca_configmap.lower() == "off" else ca_configmap,
        tls_check_interval_s=TLS_CHECK_INTERVAL.read(args),
        webhook_configuration=None if webhook_configuration.lower() == "off" else webhook_configuration,
        sidecar_image=sidecar_image,
        sidecar_operator_url=sidecar_operator_url,
        sidecar_scan_interval_s=SIDECAR_SCAN_INTERVAL.read(args),
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


def _static_token(path: str | None, old_flag: str | None) -> str:
    """The opt-in static token: --static-token-file / AGENTOPS_STATIC_TOKEN_FILE / AGENTOPS_STATIC_TOKEN, else ""."""
    if old_flag or env("AGENTOPS_API_TOKEN") or env("AGENTOPS_API_TOKEN_FILE"):
        raise ConfigError("--token-file, AGENTOPS_API_TOKEN and AGENTOPS_API_TOKEN_FILE were replaced: sidecars now prove "
                          "their identity (projected ServiceAccount tokens, Google ID tokens); a shared token is the "
                          "opt-in --static-token-file / AGENTOPS_STATIC_TOKEN_FILE / AGENTOPS_STATIC_TOKEN")
    return static_token(path)
