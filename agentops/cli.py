"""`agentops` — one console script, a subcommand per component.

Each subcommand imports only its own package, so a sidecar never loads the operator
(and its kopf dependency) and vice versa.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from agentops import __version__
from agentops.errors import ConfigError
from agentops.logs import configure_logging


def _run_operator(args: argparse.Namespace) -> int:
    from agentops_operator.main import serve
    from agentops_operator.settings import from_args

    settings = from_args(args)
    configure_logging(settings.log_level)
    asyncio.run(serve(settings))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agentops", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"agentops {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    op = sub.add_parser("operator", help="run the operator (kopf controller + sidecar API)")
    from agentops_operator.settings import add_arguments

    add_arguments(op)
    op.set_defaults(func=_run_operator)

    # Listed for --help; dispatched in main() before parsing.
    sub.add_parser("controlplane", help="start a local etcd + kube-apiserver (as the tests do); --print-binaries builds or finds them")
    sub.add_parser("demo", help="the local all-in-one run: control plane, CRDs, operator, sample agents")
    sub.add_parser("sidecar", help="the proxy beside one agent: applies faults, probes, reports telemetry; '-- CMD' supervises the agent")
    sub.add_parser("agent", help="a sample agent: 'agentops agent chat' or 'agentops agent summary'")
    sub.add_parser("ui", help="the read-only web UI: agents, faults and incidents, live")

    from agentops.check_commands import add_check_parser, add_report_parser

    add_check_parser(sub)
    add_report_parser(sub)
    return parser


# Subcommands that parse their own arguments (argparse.REMAINDER will not pass on
# leading options such as --print-binaries).
_PASS_THROUGH = {
    "controlplane": "agentops.envtest",
    "demo": "agentops.demo",
    "sidecar": "agentops_sidecar.main",
    "agent": "agentops_agents.main",
    "ui": "agentops_ui.main",
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in _PASS_THROUGH:
        import importlib

        return int(importlib.import_module(_PASS_THROUGH[argv[0]]).main(argv[1:]))
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"agentops {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
