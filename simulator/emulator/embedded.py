"""The emulator on its own event loop in a background thread.

A client and a server sharing one event loop take turns: the server cannot read while
the client writes, which blurs every timing a race test cares about. Commands that embed
the emulator run it here instead, on a loop of its own.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Generic, Protocol, TypeVar

from exportjobs.simulator.emulator.app import EmulatorConfig, RunningEmulator, start_emulator

START_TIMEOUT_S = 30.0


class Closable(Protocol):
    async def close(self) -> None: ...


S = TypeVar("S", bound=Closable)


class ServerThread(Generic[S]):
    """A server that ``start`` makes, served from an event loop of its own in a daemon
    thread, until ``stop``. The emulator embedded here and the pytest plugin's proxy both run
    this way, so that the code of the thread that started them (blocking, or on its own
    loop) never keeps them from answering."""

    def __init__(self, start: Callable[[], Awaitable[S]], name: str) -> None:
        self._start = start
        self.running: S | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), name=name,
                                        daemon=True)

    def run(self, timeout_s: float = START_TIMEOUT_S) -> S | None:
        """Start serving and return the server, or None if it did not start within
        ``timeout_s``; an error raised while starting is raised here."""
        self._thread.start()
        self._ready.wait(timeout_s)
        if self._error is not None:
            raise self._error
        return self.running

    def stop(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Close the server (on its loop) and wait for the thread to end."""
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout_s)

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            self.running = await self._start()
        except BaseException as exc:  # noqa: BLE001 - handed to the starting thread, raised there
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        await self._stop.wait()
        await self.running.close()


class EmbeddedEmulator:
    """``with EmbeddedEmulator(config) as emu: emu.url`` — started and stopped for you."""

    def __init__(self, config: EmulatorConfig | None = None, *, host: str = "127.0.0.1", port: int = 0):
        self.config = config or EmulatorConfig()
        self.host, self.port = host, port
        self._server: ServerThread[RunningEmulator] = ServerThread(
            lambda: start_emulator(self.config, host=self.host, port=self.port),
            "exportjobs-emulator")

    @property
    def running(self) -> RunningEmulator | None:
        return self._server.running

    @property
    def url(self) -> str:
        assert self.running is not None, "the emulator is not running"
        return self.running.url

    def start(self) -> EmbeddedEmulator:
        if self._server.run() is None:
            raise RuntimeError(f"the embedded emulator did not start within {START_TIMEOUT_S:.0f} s")
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> EmbeddedEmulator:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
