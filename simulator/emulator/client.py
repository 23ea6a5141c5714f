"""The one client of the emulator's control API (``control``), beside the API it speaks.

Each call is described once (``_Call``: method, path, body, and how its answer is read
into a small value) and sent by one of two transports: ``EmulatorClient`` (aiohttp, for
the runner, the race gate and async tests) and ``SyncEmulatorClient`` (urllib, for code
without an event loop, such as the benchmarks' drivers). Both refuse to talk through an
environment proxy: the control API is always reached directly.

Whether a URL is the emulator has one rule: ``info`` answers 200 with the whole
documented info object. Anything else raises ``NotAnEmulator``, so callers ask
explicitly (``find_emulator``) instead of sniffing a field.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import aiohttp

from exportjobs.simulator.emulator.control import PREFIX

T = TypeVar("T")


class EmulatorError(Exception):
    """A control call failed: no answer, or an error the emulator gave (its message kept)."""


class NotAnEmulator(EmulatorError):
    """The URL answers, but not as the emulator's control API does."""


def control_url(base_url: str, path: str = "") -> str:
    """The control API URL of ``path`` (``""``, ``/arrivals``, ...) on the emulator at ``base_url``."""
    return f"{base_url.rstrip('/')}{PREFIX}{path}"


# --- what the calls return -------------------------------------------------------------------


def _get(data: object, name: str, *types: type) -> Any:
    """``data[name]`` when ``data`` is an object and the value has one of ``types``."""
    if not isinstance(data, dict) or name not in data:
        raise NotAnEmulator(f"the answer has no {name!r} field")
    value = data[name]
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        raise NotAnEmulator(f"the answer's {name!r} field is {type(value).__name__}, "
                            f"not {' or '.join(t.__name__ for t in types)}")
    return value


@dataclass(frozen=True, slots=True)
class Info:
    """``GET /_emulator``: the emulator's clock and configuration."""

    now: str
    clock_offset_s: float
    start_after_s: float
    run_for_s: float
    unsafe_race_window_ms: float
    known_organizations: tuple[str, ...] | None
    jobs: int

    @classmethod
    def from_json(cls, data: object) -> Info:
        known = _get(data, "knownOrganizations", list, type(None))
        if known is not None and not all(isinstance(o, str) for o in known):
            raise NotAnEmulator("the answer's 'knownOrganizations' are not all strings")
        return cls(
            now=_get(data, "now", str),
            clock_offset_s=float(_get(data, "clockOffsetSeconds", int, float)),
            start_after_s=float(_get(data, "startAfterSeconds", int, float)),
            run_for_s=float(_get(data, "runForSeconds", int, float)),
            unsafe_race_window_ms=float(_get(data, "unsafeRaceWindowMs", int, float)),
            known_organizations=None if known is None else tuple(known),
            jobs=_get(data, "jobs", int),
        )


@dataclass(frozen=True, slots=True)
class ClockState:
    """``POST /_emulator/clock/advance``: the emulator's time after the move."""

    now: str
    clock_offset_s: float

    @classmethod
    def from_json(cls, data: object) -> ClockState:
        return cls(_get(data, "now", str), float(_get(data, "clockOffsetSeconds", int, float)))


@dataclass(frozen=True, slots=True)
class FailedJob:
    """``POST /_emulator/jobs/{id}/fail``: the job's status now and when it ends."""

    id: str
    status: str
    ends_at: str

    @classmethod
    def from_json(cls, data: object) -> FailedJob:
        return cls(_get(data, "id", str), _get(data, "status", str), _get(data, "endsAt", str))


@dataclass(frozen=True, slots=True)
class Arrival:
    """One create as the emulator saw it: when its last byte came, and its answer."""

    monotonic_us: int
    status: int
    job_id: str | None
    client_request_id: str | None = None  # as the create sent it


@dataclass(frozen=True, slots=True)
class Arrivals:
    """``GET /_emulator/arrivals``: every create logged since the last clear."""

    arrivals: tuple[Arrival, ...]
    spread_us: int  # last arrival minus first (0 for fewer than two)
    read_at: str

    @classmethod
    def from_json(cls, data: object) -> Arrivals:
        entries = tuple(
            Arrival(_get(a, "monotonicUs", int), _get(a, "status", int), _get(a, "jobId", str, type(None)),
                    a.get("clientRequestId") if isinstance(a.get("clientRequestId"), str) else None)
            for a in _get(data, "arrivals", list)
        )
        return cls(entries, _get(data, "spreadUs", int), _get(data, "readAt", str))


def _known(data: object) -> tuple[str, ...] | None:
    known = _get(data, "knownOrganizations", list, type(None))
    return None if known is None else tuple(str(o) for o in known)


# --- the calls ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Call(Generic[T]):
    method: str
    path: str
    read: Callable[[object], T]
    body: dict[str, Any] | None = None


def _confirmed(field: str) -> Callable[[object], None]:
    def read(data: object) -> None:
        if _get(data, field, bool) is not True:
            raise NotAnEmulator(f"the answer's {field!r} field is not true")
    return read


INFO = _Call("GET", "", Info.from_json)
RESET = _Call("POST", "/reset", _confirmed("reset"))
ARRIVALS = _Call("GET", "/arrivals", Arrivals.from_json)
CLEAR_ARRIVALS = _Call("DELETE", "/arrivals", _confirmed("cleared"))


def _advance(seconds: float) -> _Call[ClockState]:
    return _Call("POST", "/clock/advance", ClockState.from_json, {"seconds": seconds})


def _fail(job_id: str, immediately: bool) -> _Call[FailedJob]:
    return _Call("POST", f"/jobs/{quote(job_id, safe='')}/fail", FailedJob.from_json,
                 {"immediately": immediately})


def _organizations(known: list[str] | None) -> _Call[tuple[str, ...] | None]:
    return _Call("PUT", "/organizations", _known, {"known": known})


def _answer(call: _Call[T], url: str, status: int, raw: bytes) -> T:
    """The value of a call's answer; an error answer raises with the emulator's message."""
    try:
        data = json.loads(raw)
    except ValueError:
        raise NotAnEmulator(f"{call.method} {url} answered {status} without JSON; "
                            "is this the exportjobs emulator?") from None
    if status >= 400:
        error = data.get("error") if isinstance(data, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        if not isinstance(message, str):
            raise NotAnEmulator(f"{call.method} {url} answered {status}; "
                                "is this the exportjobs emulator?")
        raise EmulatorError(f"{call.method} {url}: {status} {message}")
    try:
        return call.read(data)
    except NotAnEmulator as exc:
        raise NotAnEmulator(f"{call.method} {url}: {exc}; is this the exportjobs emulator?") from None


# --- the transports --------------------------------------------------------------------------


class EmulatorClient:
    """The control API of the emulator at ``base_url``, over aiohttp.

    ``async with EmulatorClient(url) as emulator: await emulator.reset()``; or pass a
    ``session`` to share one (it is then not closed here).
    """

    def __init__(self, base_url: str, *, timeout: float = 5.0,
                 session: aiohttp.ClientSession | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session = session
        self._owns_session = session is None

    async def __aenter__(self) -> EmulatorClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def info(self) -> Info:
        return await self._send(INFO)

    async def reset(self) -> None:
        await self._send(RESET)

    async def advance_clock(self, seconds: float) -> ClockState:
        return await self._send(_advance(seconds))

    async def fail_job(self, job_id: str, *, immediately: bool = True) -> FailedJob:
        return await self._send(_fail(job_id, immediately))

    async def arrivals(self) -> Arrivals:
        return await self._send(ARRIVALS)

    async def clear_arrivals(self) -> None:
        await self._send(CLEAR_ARRIVALS)

    async def set_organizations(self, known: list[str] | None) -> tuple[str, ...] | None:
        return await self._send(_organizations(known))

    async def _send(self, call: _Call[T]) -> T:
        url = control_url(self.base_url, call.path)
        if self._session is None:  # trust_env off: never through an environment proxy
            self._session = aiohttp.ClientSession(trust_env=False)
        try:
            async with self._session.request(call.method, url, json=call.body,
                                             timeout=self.timeout) as response:
                status, raw = response.status, await response.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise EmulatorError(f"{call.method} {url}: no answer ({exc or type(exc).__name__})") from None
        return _answer(call, url, status, raw)


async def find_emulator(base_url: str, *, timeout: float = 2.0) -> EmulatorClient | None:
    """A client for ``base_url`` when it is the emulator (its ``info`` answers), else None.

    The caller closes the client it gets.
    """
    client = EmulatorClient(base_url, timeout=timeout)
    try:
        await client.info()
    except EmulatorError:
        await client.close()
        return None
    return client


# Direct connections only, whatever the environment's proxy settings say.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class SyncEmulatorClient:
    """The same calls as ``EmulatorClient``, blocking, over urllib (no event loop needed)."""

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def info(self) -> Info:
        return self._send(INFO)

    def reset(self) -> None:
        self._send(RESET)

    def advance_clock(self, seconds: float) -> ClockState:
        return self._send(_advance(seconds))

    def fail_job(self, job_id: str, *, immediately: bool = True) -> FailedJob:
        return self._send(_fail(job_id, immediately))

    def arrivals(self) -> Arrivals:
        return self._send(ARRIVALS)

    def clear_arrivals(self) -> None:
        self._send(CLEAR_ARRIVALS)

    def set_organizations(self, known: list[str] | None) -> tuple[str, ...] | None:
        return self._send(_organizations(known))

    def _send(self, call: _Call[T]) -> T:
        url = control_url(self.base_url, call.path)
        data = None if call.body is None else json.dumps(call.body).encode()
        request = urllib.request.Request(url, method=call.method, data=data)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with _DIRECT.open(request, timeout=self.timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        except (urllib.error.URLError, OSError) as exc:
            raise EmulatorError(f"{call.method} {url}: no answer ({exc})") from None
        return _answer(call, url, status, raw)


__all__ = [
    "Arrival", "Arrivals", "ClockState", "EmulatorClient", "EmulatorError", "FailedJob", "Info",
    "NotAnEmulator", "SyncEmulatorClient", "control_url", "find_emulator",
]
