"""The UI's settings: CLI flag → environment variable → default, parsed once.

    agentops ui [--listen HOST:PORT] [--namespace NS ... | --all-namespaces] [--log-level LEVEL]

Without --namespace (or AGENTOPS_NAMESPACES) the UI shows every namespace its
credentials can read, as kube-web-view does: a viewer usually wants the whole picture,
and the ClusterRole in manifests/base/ui-rbac.yaml allows exactly that.

Each default is stated once, on the dataclass below; the parser and `--help` read it
from there.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass

from agentops.config import defaults, env, listen_address
from agentops.errors import ConfigError

# A namespace is a DNS-1123 label; anything else would only produce 404s from the API.
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True)
class UISettings:
    listen_host: str = "0.0.0.0"
    listen_port: int = 8090
    namespaces: tuple[str, ...] = ()  # empty: all namespaces
    log_level: str = "INFO"

    @property
    def all_namespaces(self) -> bool:
        return not self.namespaces


DEFAULTS = defaults(UISettings)
_LISTEN = f"{DEFAULTS['listen_host']}:{DEFAULTS['listen_port']}"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="agentops ui",
        description="Read-only web UI: agents, faults and their events, live. Kubernetes credentials "
                    "come from KUBECONFIG or the in-cluster service account.",
    )
    p.add_argument("--listen", metavar="HOST:PORT",
                   help=f"address to serve on (env AGENTOPS_UI_LISTEN; default {_LISTEN})")
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", action="append", metavar="NS",
                       help="namespace to show; repeatable (env AGENTOPS_NAMESPACES, comma-separated; "
                            "default: all namespaces)")
    scope.add_argument("-A", "--all-namespaces", action="store_true", default=False,
                       help="show every namespace (the default when no namespace is given)")
    p.add_argument("--log-level", type=str.upper, choices=_LEVELS,
                   help=f"env AGENTOPS_LOG_LEVEL; default {DEFAULTS['log_level']}")
    return p


def from_args(argv: list[str]) -> UISettings:
    """Parse `argv`; argparse exits with status 2 on unknown flags, ConfigError on bad values."""
    args = build_parser().parse_args(argv)
    listen_flag = "--listen" if args.listen else "AGENTOPS_UI_LISTEN"
    host, port = listen_address(args.listen or env("AGENTOPS_UI_LISTEN") or _LISTEN, listen_flag)

    if args.all_namespaces:
        namespaces: tuple[str, ...] = ()
        ns_flag = ""
    elif args.namespace:
        namespaces, ns_flag = tuple(args.namespace), "--namespace"
    else:
        raw = env("AGENTOPS_NAMESPACES") or ""
        namespaces, ns_flag = tuple(n.strip() for n in raw.split(",") if n.strip()), "AGENTOPS_NAMESPACES"
    for ns in namespaces:
        if not _NAMESPACE.match(ns):
            raise ConfigError(f"{ns_flag}: {ns!r} is not a namespace name (lowercase letters, digits and '-')")

    level = (args.log_level or env("AGENTOPS_LOG_LEVEL") or DEFAULTS["log_level"]).upper()
    if level not in _LEVELS:
        raise ConfigError(f"AGENTOPS_LOG_LEVEL: {level!r} is not one of {', '.join(_LEVELS)}")
    return UISettings(listen_host=host, listen_port=port, namespaces=tuple(dict.fromkeys(namespaces)), log_level=level)
