"""An aiohttp emulator of Graph's exportJobs service: the application factory and its server.

``create_app`` builds the application (state on the root app, see ``keys``; the Graph
error middleware, see ``middleware``; the exportJobs routes, see ``handlers``; the control
API mounted as a sub-app, see ``control``). ``start_emulator`` runs it on a real socket
in-process (port 0 picks a free port) for tests and other commands.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.web_log import AccessLogger

from exportjobs.graph import COLLECTION_PATH
from exportjobs.simulator.emulator.arrivals import ArrivalStamp
from exportjobs.simulator.emulator.control import PREFIX, control_app
from exportjobs.simulator.emulator.handlers import dispatch
from exportjobs.simulator.emulator.jobs import Clock
from exportjobs.simulator.emulator.keys import CONFIG, STORE, EmulatorConfig
from exportjobs.simulator.emulator.middleware import GraphRequestHandler, graph_middleware
from exportjobs.simulator.emulator.reading import continue_expected
from exportjobs.simulator.emulator.store import MemoryStore, Store, StoreUnreachable

log = logging.getLogger("exportjobs.emulator")


def create_app(config: EmulatorConfig | None = None, *, clock: Clock | None = None) -> web.Application:
    """The emulator as an aiohttp ``Application``; state lives on the app (``keys``)."""
    config = config or EmulatorConfig()
    app = web.Application(middlewares=[graph_middleware], client_max_size=config.max_body_bytes)
    app[CONFIG] = config
    app[STORE] = new_store(config, clock)
    app.on_cleanup.append(_close_store)
    if config.unsafe_race_window_ms > 0:
        log.warning(
            "UNSAFE: check and insert are %.1f ms apart; concurrent creates can all get 201",
            config.unsafe_race_window_ms,
        )
    app.add_subapp(PREFIX, control_app())
    # The documented spelling of the collection gets an exact route, which aiohttp finds
    # with one lookup; every other spelling and path goes through the catch-all.
    app.router.add_route("*", COLLECTION_PATH, dispatch, expect_handler=continue_expected)
    app.router.add_route("*", "/{path:.*}", dispatch, expect_handler=continue_expected)
    return app


def new_store(config: EmulatorConfig, clock: Clock | None = None) -> Store:
    """The store the config names: Redis for a ``store_url``, else this process's memory.

    ``clock`` (memory store only) lets an in-process caller share and move the clock."""
    if config.store_url is None:
        return MemoryStore(start_after=config.start_after, run_for=config.run_for,
                           known_organizations=config.known_organizations,
                           arrival_log_size=config.arrival_log_size, clock=clock)
    if clock is not None:
        raise ValueError("a shared clock lives in the store; give clock only for the memory store")
    try:
        from exportjobs.simulator.emulator.redis_store import RedisStore
    except ImportError:
        raise StoreUnreachable("the Redis store needs the redis package: "
                               "pip install 'exportjobs[redis]'") from None
    return RedisStore(config.store_url, start_after=config.start_after, run_for=config.run_for,
                      known_organizations=config.known_organizations,
                      arrival_log_size=config.arrival_log_size)


async def _close_store(app: web.Application) -> None:
    await app[STORE].close()


@dataclass
class RunningEmulator:
    """An emulator serving on a real socket; ``url`` is its base URL."""

    app: web.Application
    runner: web.AppRunner
    server: asyncio.AbstractServer
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def store(self) -> Store:
        return self.app[STORE]

    @property
    def clock(self) -> Clock:
        """The memory store's clock, for in-process tests (a shared one moves by the control API)."""
        store = self.app[STORE]
        if not isinstance(store, MemoryStore):
            raise TypeError("this emulator's clock lives in its store: use the control API")
        return store.clock

    async def close(self) -> None:
        self.server.close()
        await self.runner.cleanup()
        await self.server.wait_closed()


ACCESS_LOG_FORMAT = '%a "%r" %s %b %Tfs'


async def start_emulator(
    config: EmulatorConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    clock: Clock | None = None,
    access_log: bool = False,
    reuse_port: bool = False,
) -> RunningEmulator:
    """Start the emulator on ``host:port`` (0 = any free port) and return once it listens.

    ``reuse_port``: share the port with other processes (``SO_REUSEPORT``, see ``workers``)."""
    app = create_app(config, clock=clock)
    try:
        await app[STORE].open()
    except StoreUnreachable:
        await app[STORE].close()
        raise
    handler_options: dict[str, Any] = {
        "access_log": logging.getLogger("exportjobs.access") if access_log else None,
        "access_log_format": ACCESS_LOG_FORMAT,
        "access_log_class": AccessLogger,
    }
    runner = web.AppRunner(app, handle_signals=False, **handler_options)
    await runner.setup()
    manager = runner.server
    assert manager is not None
    loop = asyncio.get_running_loop()

    def connection() -> asyncio.Protocol:
        # Our own listener rather than web.TCPSite, to stamp each connection's arrivals,
        # and our own protocol class, to answer aiohttp's own errors in Graph's shape.
        return ArrivalStamp(GraphRequestHandler(manager, loop=loop, **handler_options))

    try:
        server = await loop.create_server(
            connection, host, port, backlog=1024, reuse_address=True, reuse_port=reuse_port or None
        )
    except OSError:
        await runner.cleanup()
        raise
    bound_host, bound_port = server.sockets[0].getsockname()[:2]
    return RunningEmulator(app, runner, server, bound_host, bound_port)


# EmulatorConfig is part of this factory's signature: the one import a caller needs.
__all__ = ["EmulatorConfig", "RunningEmulator", "StoreUnreachable", "create_app", "new_store",
           "start_emulator"]
