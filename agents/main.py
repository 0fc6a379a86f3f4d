"""`agentops agent chat|summary`: run one sample agent until SIGTERM or SIGINT.

Settings are parsed once (`settings.py`) and logged with the key redacted; a bad
value ends the process with exit code 2 and a message naming the flag. Once the
socket is bound the agent logs, to stderr,

    <time> INFO agentops.agent: listening on http://HOST:PORT

with the port actually bound (so `--port 0` works): the demo and the tests read
the address from that line, which is why it is logged whatever --log-level says.
SIGTERM or SIGINT stops the agent cleanly (in-flight requests get a short grace
period) with exit code 0; a port that cannot be bound exits with 1.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from datetime import datetime, timezone

from aiohttp import web

from agentops.errors import ConfigError
from agentops_agents.app import AgentInstance, build_app
from agentops_agents.settings import AgentSettings, build_parser, from_args

log = logging.getLogger("agentops.agent")

# In-flight requests get this long after SIGTERM: well inside Kubernetes' default
# 30 s termination grace period and agentops.processes.terminate's 15 s.
SHUTDOWN_GRACE_S = 5.0


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # The "listening on" line is a contract, not chatter: keep it at any --log-level.
    log.setLevel(min(logging.INFO, logging.getLogger().level))


def _url(address: object) -> str:
    """http://HOST:PORT for a socket address (IPv4 or IPv6 tuple)."""
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = str(address[0]), int(address[1])
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    return str(address)


async def serve(settings: AgentSettings, instance: AgentInstance, *, stop: asyncio.Event | None = None) -> int:
    """Serve until `stop` is set (or, without one, until SIGTERM/SIGINT); the exit code."""
    log.info("starting the %s agent, instance %s, with %s", settings.kind, instance.id, settings.redacted())
    signals = stop is None
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    if signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)

    runner = web.AppRunner(build_app(settings, instance), shutdown_timeout=SHUTDOWN_GRACE_S)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, settings.host, settings.port).start()
        except OSError as exc:
            log.error("cannot listen on %s port %d: %s", settings.host, settings.port, exc.strerror or exc)
            return 1
        for address in runner.addresses:
            log.info("listening on %s", _url(address))
        await stop.wait()
        log.info("stopping")
    finally:
        await runner.cleanup()
        if signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
    log.info("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        settings = from_args(args)
    except ConfigError as exc:
        print(f"agentops agent {args.kind}: {exc}", file=sys.stderr)
        return 2
    _configure_logging(settings.log_level)
    instance = AgentInstance.new(datetime.now(timezone.utc))
    try:
        return asyncio.run(serve(settings, instance))
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers were in place
        return 130


if __name__ == "__main__":
    sys.exit(main())
