"""A real emulator in a background thread, and raw HTTP/1.1 over a real socket to it.

Hostile-input tests need bytes no HTTP client library will send (non-UTF-8 header values,
a broken request line, a body cut short), so they write requests by hand. One emulator
serves a whole test module: it must keep serving after every request anyway.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from exportjobs.graph import COLLECTION_PATH, is_guid
from exportjobs.simulator.emulator.app import EmulatorConfig, RunningEmulator, start_emulator

COLLECTION = COLLECTION_PATH


class ErrorLog(logging.Handler):
    """Keeps every record at WARNING or above from the emulator's and aiohttp's loggers
    (``records``), and the emulator's INFO lines (``infos``), which tests wait on."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []
        self.infos: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        (self.records if record.levelno >= logging.WARNING else self.infos).append(record)

    def text(self) -> str:
        return "\n".join(f"{r.name} {r.levelname} {r.getMessage()}" for r in self.records)


@dataclass
class Background:
    """An emulator on 127.0.0.1 served by its own event loop in a thread."""

    emulator: RunningEmulator
    loop: asyncio.AbstractEventLoop
    errors: ErrorLog = field(default_factory=ErrorLog)

    @property
    def port(self) -> int:
        return self.emulator.port


@contextmanager
def background_emulator(config: EmulatorConfig | None = None) -> Iterator[Background]:
    loop = asyncio.new_event_loop()
    started = threading.Event()
    thread = threading.Thread(target=lambda: (asyncio.set_event_loop(loop), started.set(),
                                              loop.run_forever()), daemon=True)
    thread.start()
    started.wait()
    emulator = asyncio.run_coroutine_threadsafe(
        start_emulator(config or EmulatorConfig()), loop).result(10)
    errors = ErrorLog()
    loggers = [logging.getLogger(n) for n in ("aiohttp", "exportjobs")]
    emulator_log = logging.getLogger("exportjobs.emulator")
    level = emulator_log.level
    emulator_log.setLevel(logging.INFO)
    for lg in loggers:
        lg.addHandler(errors)
    try:
        yield Background(emulator, loop, errors)
    finally:
        emulator_log.setLevel(level)
        for lg in loggers:
            lg.removeHandler(errors)
        asyncio.run_coroutine_threadsafe(emulator.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


def build_request(method: bytes, target: bytes, headers: Iterable[tuple[bytes, bytes]],
                  body: bytes | None) -> bytes:
    lines = [method + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
    lines += [name + b": " + value for name, value in headers]
    if body is not None:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")


def exchange(port: int, data: bytes, *, timeout: float = 10.0) -> bytes:
    """Send ``data`` and read until the server closes (every request says Connection: close).

    No half-close after sending: asyncio closes a connection whose peer half-closed, as
    aiohttp asks, so a response not yet written would be lost."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before reading everything: read the answer
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def parse_reply(raw: bytes, *, head: bool = False) -> Reply:
    """The final response in ``raw`` (interim 1xx responses skipped)."""
    while True:
        header_block, sep, rest = raw.partition(b"\r\n\r\n")
        assert sep, f"no complete response head in {raw[:300]!r}"
        lines = header_block.split(b"\r\n")
        version, status_text = lines[0].split(b" ", 2)[:2]
        assert version.startswith(b"HTTP/1."), lines[0]
        status = int(status_text)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.decode("ascii").strip().lower()] = value.decode("latin-1").strip()
        if 100 <= status < 200:
            raw = rest
            continue
        if head:
            return Reply(status, headers, b"")
        length = headers.get("content-length")
        body = rest[: int(length)] if length is not None else rest
        return Reply(status, headers, body)


def request(port: int, method: bytes | str, target: bytes | str,
            headers: Iterable[tuple[bytes | str, bytes | str]] = (), body: bytes | None = None,
            ) -> Reply:
    def b(x: bytes | str) -> bytes:
        return x if isinstance(x, bytes) else x.encode()

    method, target = b(method), b(target)
    raw = exchange(port, build_request(method, target, [(b(n), b(v)) for n, v in headers], body))
    return parse_reply(raw, head=method == b"HEAD")


def assert_graph_error(reply: Reply) -> dict:
    """``reply`` carries Graph's error shape and headers; returns the ``error`` object."""
    assert reply.headers.get("content-type", "").startswith("application/json"), reply
    assert is_guid(reply.headers.get("request-id")), reply.headers
    assert reply.headers.get("client-request-id"), reply.headers
    error = reply.json()["error"]
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    inner = error.get("innerError") or error.get("innererror")
    assert is_guid(inner["request-id"]) and inner["date"]
    return error


def valid_create(port: int, organization: str, view: str) -> Reply:
    body = json.dumps({"goalsOrganizationId": organization, "explorerViewId": view}).encode()
    return request(port, "POST", COLLECTION,
                   [("Authorization", "Bearer opaque"), ("Content-Type", "application/json")],
                   body)
