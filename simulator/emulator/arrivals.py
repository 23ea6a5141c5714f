"""When each create reached the emulator, so race tests can see how tightly a burst landed.

A create's arrival is when its last bytes reached the server, not when its handler got
to run: on one event loop, handlers run one after another, so their start times spread a
burst out by the server's own per-request cost. ``ArrivalStamp`` wraps aiohttp's protocol
for each connection and notes when data last came in; the create handler reads it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field

from aiohttp import web


@dataclass(slots=True)
class Arrival:
    monotonic_us: int
    status: int = 0
    job_id: str | None = None
    # The create's client-request-id (cut to 128 characters): a client that sends a distinct
    # one per request, as Graph's SDKs do, can tie each arrival to its own request.
    client_request_id: str | None = None


@dataclass
class ArrivalLog:
    """Server-side arrival times of creates, so race tests can see how tight a burst was."""

    entries: deque[Arrival] = field(default_factory=deque)

    def record(self, request: web.Request) -> Arrival:
        arrival = new_arrival(request)
        self.entries.append(arrival)
        return arrival


def new_arrival(request: web.Request) -> Arrival:
    """The arrival of this create, not yet logged (the store logs it with its outcome)."""
    return Arrival(arrival_ns(request) // 1000,
                   client_request_id=request.headers.get("client-request-id", "")[:128] or None)


def arrival_ns(request: web.Request) -> int:
    """When the request's last bytes reached the server (now, if no stamp is available)."""
    transport = request.transport
    protocol = transport.get_protocol() if transport is not None else None
    stamp = getattr(protocol, "last_data_ns", 0)
    return stamp or time.monotonic_ns()


class ArrivalStamp(asyncio.Protocol):
    """Wraps aiohttp's protocol for one connection and notes when data last arrived."""

    __slots__ = ("inner", "last_data_ns")

    def __init__(self, inner: asyncio.Protocol) -> None:
        self.inner = inner
        self.last_data_ns = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.last_data_ns = time.monotonic_ns()
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()
