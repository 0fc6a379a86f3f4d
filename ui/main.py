"""Run the UI: watches into the store, the HTTP server on top, until SIGTERM/SIGINT.

Start order: the watches first, and the server once every first list is in (bounded
by INITIAL_SYNC_S), so the first page anyone sees is complete; past that bound it
serves anyway and the pages say what is still loading or failing. Each part is
registered on one exit stack as soon as it runs, so the stop order is the reverse:
the server (live streams ended first), then the watches (their blocked threads
released by shutting their sockets down), then the thread pool and the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web

from agentops import kube_credentials
from agentops.errors import ConfigError
from agentops.logs import configure_logging
from agentops_ui.app import build_app
from agentops_ui.changes import ChangeFeed
from agentops_ui.context import UIContext
from agentops_ui.kube_watch import RESOURCES, KubeReader, SourceWatch
from agentops_ui.settings import UISettings, from_args
from agentops_ui.store import Change, Store

log = logging.getLogger("agentops_ui")

INITIAL_SYNC_S = 10.0
# Open requests get this long to finish on shutdown (live streams end at once).
SHUTDOWN_GRACE_S = 5.0


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def serve(settings: UISettings, *, load_config: Callable[[], Any] = kube_credentials.load) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    feed = ChangeFeed()
    synced = asyncio.Event()
    store = Store()

    def on_change(change: Change) -> None:
        feed.publish(change)
        if store.synced:
            synced.set()

    store.on_change = on_change
    scopes: tuple[str | None, ...] = settings.namespaces or (None,)
    sources = [(res, ns) for ns in scopes for res in RESOURCES]
    async with contextlib.AsyncExitStack() as stack:
        reader = KubeReader(max_connections=len(sources) + 1, load_config=load_config)
        stack.callback(reader.close)
        log.info("starting: listen %s, %s, API server %s", _url(settings.listen_host, settings.listen_port),
                 f"namespaces {', '.join(settings.namespaces)}" if settings.namespaces else "all namespaces", reader.server)
        # One thread per source: each spends its life blocked in a watch.
        pool = ThreadPoolExecutor(max_workers=len(sources), thread_name_prefix="kube-watch")
        stack.callback(pool.shutdown, wait=False, cancel_futures=True)
        for res, ns in sources:
            store.expect_source(res.kind, ns, time.time())

        def start(name: str, coro: Coroutine[Any, Any, object]) -> asyncio.Task[Any]:
            task = asyncio.create_task(coro, name=name)
            stack.push_async_callback(_stop, task)
            return task

        tasks = []
        for res, ns in sources:
            watch = SourceWatch(reader, pool, store, res, ns)
            tasks.append(start(f"watch {watch.scope}", watch.run()))
        stopper = start("stop-signal", stop.wait())
        sync_waiter = start("initial-sync", synced.wait())
        try:
            done, _ = await asyncio.wait([stopper, sync_waiter, *tasks],
                                         timeout=INITIAL_SYNC_S, return_when=asyncio.FIRST_COMPLETED)
            if stopper in done:
                return 0
            if not store.synced:
                log.warning("not every list completed within %.0fs; serving anyway (the pages say what is missing)", INITIAL_SYNC_S)
            runner = web.AppRunner(build_app(UIContext(store, feed, settings.namespaces)), access_log=None,
                                   shutdown_timeout=SHUTDOWN_GRACE_S)
            await runner.setup()
            stack.push_async_callback(runner.cleanup)
            stack.callback(feed.close)  # live streams end first: the server need not wait out their grace
            site = web.TCPSite(runner, settings.listen_host, settings.listen_port)
            try:
                await site.start()
            except OSError as exc:
                log.error("--listen %s: %s", _url(settings.listen_host, settings.listen_port), exc.strerror or exc)
                return 2
            port = next((int(a[1]) for a in runner.addresses if isinstance(a, tuple)), settings.listen_port)
            log.info("listening on %s", _url(settings.listen_host, port))
            done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
            crashed = [t for t in done if t is not stopper and not t.cancelled() and t.exception() is not None]
            for task in crashed:
                log.error("%s stopped unexpectedly", task.get_name(), exc_info=task.exception())
            return 1 if crashed else 0
        finally:
            log.info("stopping")


async def _stop(task: asyncio.Task[Any]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def main(argv: list[str] | None = None) -> int:
    try:
        settings = from_args(sys.argv[2:] if argv is None else argv)
    except SystemExit as exc:  # argparse: --help (0) or a bad flag (2, message already printed)
        return exc.code if isinstance(exc.code, int) else 2
    except ConfigError as exc:
        print(f"agentops ui: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    try:
        return asyncio.run(serve(settings))
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
