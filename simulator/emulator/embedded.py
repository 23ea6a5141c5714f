"""The emulator on its own event loop in a background thread.

A client and a server sharing one event loop take turns: the server cannot read while
the client writes, which blurs every timing a race test cares about. Commands that embed
the emulator run it here instead, on a loop of its own.
"""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType

from exportjobs.simulator.emulator.app import EmulatorConfig, RunningEmulator, start_emulator


class EmbeddedEmulator:
    """``with EmbeddedEmulator(config) as emu: emu.url`` — started and stopped for you."""

    def __init__(self, config: EmulatorConfig | None = None, *, host: str = "127.0.0.1", port: int = 0):
        self.config = config or EmulatorConfig()
        self.host, self.port = host, port
        self.running: RunningEmulator | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="exportjobs-emulator", daemon=True)

    @property
    def url(self) -> str:
        assert self.running is not None, "the emulator is not running"
        return self.running.url

    def start(self) -> EmbeddedEmulator:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        if self.running is None:
            raise RuntimeError("the embedded emulator did not start within 30 s")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(30)

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            self.running = await start_emulator(self.config, host=self.host, port=self.port)
        except BaseException as exc:  # noqa: BLE001 - handed to the starting thread, re-raised there
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        await self._stop.wait()
        await self.running.close()

    def __enter__(self) -> EmbeddedEmulator:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
