"""Several emulator processes on one host, sharing one port and one store (``serve --workers N``).

Each worker is a process of its own with its own event loop, listening on the same port with
``SO_REUSEPORT``, so the kernel spreads connections over them. They act as one service only
because they share a store that lives outside them (Redis): with the in-memory store each
would keep its own jobs, so N > 1 is refused (``needs_shared_store``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import multiprocessing
import signal
import socket
import sys
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess

from exportjobs.simulator.emulator.app import start_emulator
from exportjobs.simulator.emulator.keys import EmulatorConfig
from exportjobs.simulator.emulator.store import StoreUnreachable

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


class WorkersFailed(Exception):
    """A worker could not start (its port, its store): the first worker's reason."""


def needs_shared_store(config: EmulatorConfig, workers: int) -> str | None:
    """Why ``workers`` processes cannot serve this config, or None when they can."""
    if workers > 1 and config.store_url is None:
        return ("--workers N > 1 needs a shared store (--store redis://HOST:PORT/DB): with the "
                "in-memory store each worker would keep its own jobs, so a duplicate create "
                "reaching another worker would get a second 201")
    return None


def _worker(config: EmulatorConfig, host: str, port: int, access_log: bool, ready: Connection) -> None:
    """One worker process: serve until SIGTERM or SIGINT, then close cleanly."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    _stop_with_parent()

    async def serve() -> None:
        try:
            emulator = await start_emulator(config, host=host, port=port, access_log=access_log,
                                            reuse_port=True)
        except (OSError, StoreUnreachable) as exc:
            ready.send(str(exc))
            return
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        ready.send(None)
        await stop.wait()
        await emulator.close()

    asyncio.run(serve())


def _stop_with_parent() -> None:
    """On Linux, get SIGTERM when the parent dies, even by SIGKILL: no orphaned workers."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Workers:
    """N running workers on ``host:port``."""

    host: str
    port: int
    processes: list[BaseProcess] = field(default_factory=list)
    _holder: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def wait_any(self, timeout: float | None = None) -> bool:
        """Block until a worker exits (True) or ``timeout`` passes (False)."""
        return bool(wait([p.sentinel for p in self.processes], timeout))

    def stop(self) -> None:
        """SIGTERM every worker, wait for each (bounded), kill any that will not stop."""
        for p in self.processes:
            if p.is_alive() and p.pid is not None:
                p.terminate()
        for p in self.processes:
            p.join(STOP_TIMEOUT_S)
            if p.is_alive():
                p.kill()
                p.join()
        if self._holder is not None:
            self._holder.close()


def _hold_port(host: str, port: int) -> tuple[socket.socket, int]:
    """A bound (not listening) SO_REUSEPORT socket: it fixes port 0 to one free port that
    every worker then binds, and keeps it ours until the workers stop."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    holder = socket.socket(family, socket.SOCK_STREAM)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        holder.bind((host, port))
    except OSError:
        holder.close()
        raise
    return holder, holder.getsockname()[1]


def start_workers(config: EmulatorConfig, host: str, port: int, workers: int,
                  *, access_log: bool) -> Workers:
    """Start ``workers`` processes serving ``config`` on ``host:port``; return once all listen.

    Raises ``WorkersFailed`` with the first worker's reason if any cannot start, after
    stopping the others."""
    reason = needs_shared_store(config, workers)
    if reason is not None:
        raise WorkersFailed(reason)
    holder, port = _hold_port(host, port)
    running = Workers(host, port, _holder=holder)
    context = multiprocessing.get_context("spawn")
    pipes = []
    for _ in range(workers):
        receive, send = context.Pipe(duplex=False)
        process = context.Process(target=_worker, args=(config, host, port, access_log, send),
                                  daemon=True)
        process.start()
        send.close()
        running.processes.append(process)
        pipes.append(receive)
    try:
        for receive in pipes:
            if not receive.poll(START_TIMEOUT_S):
                raise WorkersFailed(f"a worker did not start within {START_TIMEOUT_S:g} s")
            try:
                failure = receive.recv()
            except EOFError:
                raise WorkersFailed("a worker exited while starting") from None
            if failure is not None:
                raise WorkersFailed(failure)
    except WorkersFailed:
        running.stop()
        raise
    return running
