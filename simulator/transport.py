"""Sending requests: one at a time over aiohttp, and bursts over raw HTTP/1.1 connections.

Bursts need control aiohttp does not give (when each connection opens, when each byte
goes out), so they speak HTTP/1.1 themselves through h11 (the sans-I/O protocol library
mitmproxy also uses) over asyncio streams:

- ``none``: every request starts at once on its own new connection.
- ``barrier``: every connection is opened first, then every request is written together.
- ``last-byte``: every request is written but for its final byte, then all final bytes go
  out in one tight loop, the HTTP/1.1 single-packet technique from race-condition research.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import re
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import aiohttp
import h11
from yarl import URL

from exportjobs.simulator.steps import ABSENT, Release, RequestSpec, build
from exportjobs.simulator.values import MISSING, interpolate, shown_url

USER_AGENT = "exportjobs-simulator"
_NOT_JSON = object()

CONNECT_TIMEOUT_S = 10.0  # to open a connection (TCP, TLS, a proxy's CONNECT)
RESPONSE_TIMEOUT_S = 30.0  # for the whole response, connection included
MAX_BODY_BYTES = 16 * 1024 * 1024  # a response body larger than this is not kept

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # an HTTP header name
_NOT_IN_HEADER = re.compile(r"[^\t\x20-\x7e]")  # header values: printable ASCII and tab
_NOT_IN_URL = re.compile(r"[^!-~]")  # URLs: printable ASCII without spaces


def is_loopback_host(host: str) -> bool:
    """Whether only this machine can reach ``host`` (a name or an address, IPv6 maybe in
    brackets); "" and 0.0.0.0 are every interface, so not loopback."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


async def reachable(url: str, timeout: float) -> str | None:
    """None when a TCP connection to ``url``'s host and port opens, else the reason."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(parts.hostname, port), timeout)
    except (TimeoutError, OSError) as exc:
        return f"{parts.hostname}:{port}: {getattr(exc, 'strerror', None) or type(exc).__name__}"
    writer.close()
    return None



class RequestError(ValueError):
    """A request that cannot be sent as written (a header value with a line break, a path
    that is a number); the message names the field and what to write instead."""


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, (int, float)):
        return f"a number ({value!r})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


def _char(c: str) -> str:
    name = {"\n": "a line break", "\r": "a carriage return", "\t": "a tab", " ": "a space"}.get(c)
    return name or (f"the character {c!r} (U+{ord(c):04X})")


def check_url(url: Any, what: str = "url") -> str:
    """``url`` when it is an absolute http(s) URL that can be sent as it stands (printable
    ASCII, a host, a port in range); RequestError saying what to change otherwise."""
    if not isinstance(url, str):
        raise RequestError(f"{what} is {_kind(url)}; it must be text such as http://127.0.0.1:8000/path")
    bad = _NOT_IN_URL.search(url)
    if bad:
        encoded = quote(bad[0], safe="")
        raise RequestError(f"{what} {url!r} holds {_char(bad[0])}; percent-encode it ({encoded})")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises for a port out of range
    except ValueError as exc:
        fix = ("close the brackets of an IPv6 address, e.g. http://[::1]:8000" if "IPv6" in str(exc)
               else "use a port from 1 to 65535" if "ort" in str(exc) else "write it as http://host:port/path")
        raise RequestError(f"{what} {url!r} is not a valid URL ({exc}); {fix}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RequestError(f"{what} {url!r} is not an absolute http:// or https:// URL with a host")
    return url


def check_base_url(url: Any, what: str) -> str:
    """``url`` when it is a base URL (scheme, host, optional port; no path); else RequestError."""
    check_url(url, what)
    parts = urlsplit(url)
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise RequestError(f"{what} {url!r} has a path; give a base URL such as http://127.0.0.1:8000")
    return url


@dataclass(slots=True)
class Outcome:
    """What came back for one request (``status`` None: no response, see ``error``)."""

    status: int | None
    headers: dict[str, str]  # lower-case names
    body: bytes
    latency_s: float
    error: str | None = None
    _json: Any = field(default=MISSING, repr=False)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        """The body as JSON, or ``MISSING`` when it is not JSON."""
        if self._json is MISSING:
            try:
                self._json = json.loads(self.body) if self.body else _NOT_JSON
            except (ValueError, UnicodeDecodeError):
                self._json = _NOT_JSON
        return MISSING if self._json is _NOT_JSON else self._json


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    method: str
    url: str  # absolute and already percent-encoded
    headers: dict[str, str]
    body: bytes

    @property
    def description(self) -> str:
        parts = urlsplit(self.url)
        return f"{self.method} {parts.path}"


def prepare_request(
    spec: RequestSpec | Mapping[str, Any], variables: Mapping[str, Any], *, target: str, token: str | None
) -> PreparedRequest:
    """A scenario request with ``${...}`` filled in, joined to ``target``, authorised.

    Every part is checked here, after interpolation, where a saved value first meets the
    place it goes: RequestError names the field and the fix, whatever the value held.
    """
    if not isinstance(spec, RequestSpec):
        spec = build(RequestSpec, spec)
    if spec.url is not None:
        url = check_url(interpolate(spec.url, variables), "url")
    else:
        path = interpolate(spec.path, variables)
        if not isinstance(path, str):
            raise RequestError(f"path is {_kind(path)}; a path is text starting with /")
        if not path.startswith("/"):
            raise RequestError(f"path {path!r} does not start with /; write /{path.lstrip('/')}"
                               " or give a full url:")
        bad = _NOT_IN_URL.search(path)
        if bad:
            raise RequestError(f"path {path!r} holds {_char(bad[0])}; percent-encode it "
                               f"({quote(bad[0], safe='')})")
        url = check_url(target.rstrip("/") + path, "path")
    query = interpolate(dict(spec.query), variables)
    for name, value in query.items():
        if not isinstance(value, (str, int, float)):
            raise RequestError(f"query parameter {name!r} is {_kind(value)}; give text or a number")
    if query:
        url += ("&" if "?" in url else "?") + urlencode({k: str(v) for k, v in query.items()}, quote_via=quote)
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    body = b""
    if spec.json is not ABSENT:
        try:
            body = json.dumps(interpolate(spec.json, variables), separators=(",", ":"),
                              allow_nan=False).encode()
        except (TypeError, ValueError, RecursionError, UnicodeEncodeError) as exc:
            raise RequestError(f"json cannot be written as JSON ({exc}); give text, numbers, "
                               "true/false, null, lists and mappings") from None
        headers["Content-Type"] = "application/json"
    elif spec.body is not None:
        raw = interpolate(spec.body, variables)
        if not isinstance(raw, (str, int, float)):
            raise RequestError(f"body is {_kind(raw)}; give text, or use json: for structured data")
        try:
            body = str(raw).encode()
        except UnicodeEncodeError:
            raise RequestError("body holds a lone surrogate (\\ud800 to \\udfff); remove it") from None
    if spec.auth and token:
        headers["Authorization"] = f"Bearer {token}"
    for name, value in interpolate(dict(spec.headers), variables).items():
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise RequestError(f"header name {name!r} is not a valid HTTP header name; use letters, "
                               "digits and - only")
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise RequestError(f"header {name} is {_kind(value)}; a header value is text")
        text = str(value)
        bad = _NOT_IN_HEADER.search(text)
        if bad:
            raise RequestError(f"header {name} holds {_char(bad[0])}; a header value is one line of "
                               "printable ASCII: remove it (percent-encode text that needs it)")
        headers[name] = text
    return PreparedRequest(spec.method, url, headers, body)


Observer = Callable[[PreparedRequest, Outcome], None]


class Client:
    """One aiohttp session for single requests, polls and load phases. ``observer``, when
    given, sees every request with its outcome as it completes (``run -v``)."""

    def __init__(self, *, proxy: str | None = None, ssl_context: ssl.SSLContext | None = None,
                 limit: int = 100, connect_timeout: float = CONNECT_TIMEOUT_S,
                 observer: Observer | None = None) -> None:
        self.proxy = proxy
        self.connect_timeout = connect_timeout
        self.observer = observer
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=limit, ssl=self._ssl),
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=True,
        )

    async def send(self, request: PreparedRequest, *, timeout: float = RESPONSE_TIMEOUT_S) -> Outcome:
        """Send once; the outcome says what came back, or why nothing did. Bounded: the
        connection within ``connect_timeout``, the whole exchange within ``timeout``."""
        outcome = await self._send(request, timeout)
        if self.observer is not None:
            self.observer(request, outcome)
        return outcome

    async def _send(self, request: PreparedRequest, timeout: float) -> Outcome:
        started = time.perf_counter()
        connect = min(self.connect_timeout, timeout)
        try:
            async with self._session.request(
                request.method,
                URL(request.url, encoded=True),
                headers=request.headers,
                data=request.body or None,
                proxy=self.proxy,
                timeout=aiohttp.ClientTimeout(total=timeout, connect=connect, sock_connect=connect),
                allow_redirects=False,
            ) as resp:
                body = bytearray()
                async for chunk in resp.content.iter_chunked(65536):
                    body += chunk
                    if len(body) > MAX_BODY_BYTES:
                        return Outcome(None, {}, b"", time.perf_counter() - started,
                                       f"the response body is larger than {MAX_BODY_BYTES >> 20} MiB")
                headers = {k.lower(): v for k, v in resp.headers.items()}
                return Outcome(resp.status, headers, bytes(body), time.perf_counter() - started)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            return Outcome(None, {}, b"", time.perf_counter() - started,
                           _describe_error(exc, connect if isinstance(exc, _CONNECT_TIMEOUTS) else timeout))

    async def close(self) -> None:
        await self._session.close()


_CONNECT_TIMEOUTS = (getattr(aiohttp, "ConnectionTimeoutError", aiohttp.ServerTimeoutError),)


# The start of the error of every request that failed because the server's certificate is
# not trusted: the runner tells the user which CA to pass (see ``untrusted``).
UNTRUSTED = "the server's TLS certificate is not trusted"


def untrusted(error: str | None) -> bool:
    """Whether an outcome's ``error`` says the server's certificate was not trusted."""
    return error is not None and error.startswith(UNTRUSTED)


def _describe_error(exc: BaseException, timeout: float | None = None) -> str:
    cert_error = getattr(exc, "certificate_error", exc)  # aiohttp wraps the ssl module's error
    if isinstance(cert_error, ssl.SSLCertVerificationError):
        return f"{UNTRUSTED} ({cert_error.verify_message or cert_error.reason or cert_error})"
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out" if timeout is None else f"timed out: no answer within {timeout:.3g} s"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__



# --- proxies from the environment ---------------------------------------------------------------
#
# ``exportjobs run`` honours HTTPS_PROXY, HTTP_PROXY and NO_PROXY when no proxy is given, as
# curl and requests do: the variable for the target's scheme (lower case first), a value
# without a scheme taken as http://, NO_PROXY a list of names (``host``, ``.domain`` or
# ``*.domain`` for the domain and its subdomains, ``host:port``, IP addresses and CIDR
# ranges, ``*`` for all). Like curl and requests, a loopback target (127.0.0.1, localhost)
# is proxied unless NO_PROXY names it: nothing is exempted implicitly.


@dataclass(frozen=True, slots=True)
class EnvironmentProxy:
    """What the environment says for one target: the ``proxy`` to send it through (None:
    connect directly, ``exempted_by`` names the NO_PROXY entry), and the ``variable`` set."""

    variable: str
    proxy: str | None
    exempted_by: str | None = None


def _proxy_variable(scheme: str, environ: Mapping[str, str]) -> tuple[str, str] | None:
    names = ["https_proxy", "HTTPS_PROXY"] if scheme == "https" else ["http_proxy", "HTTP_PROXY"]
    if "REQUEST_METHOD" in environ and "HTTP_PROXY" in names:
        names.remove("HTTP_PROXY")  # a CGI request's Proxy: header lands there (httpoxy), as requests
    for name in names:
        value = environ.get(name, "").strip()
        if value:
            return name, value
    return None


def no_proxy_entry(host: str, port: int, no_proxy: str) -> str | None:
    """The entry of ``no_proxy`` (a NO_PROXY value) that exempts ``host``:``port``, or None."""
    host = host.lower().rstrip(".")
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for raw in re.split(r"[,\s]+", no_proxy):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return raw
        name, wanted = entry, None
        if entry.startswith("["):  # [::1] or [::1]:8080
            name, _, rest = entry[1:].partition("]")
            wanted = int(rest[1:]) if rest[:1] == ":" and rest[1:].isdigit() else None
        elif entry.count(":") == 1:  # host:port (an IPv6 address has more colons)
            head, _, tail = entry.partition(":")
            if tail.isdigit():
                name, wanted = head, int(tail)
        if wanted is not None and wanted != port:
            continue
        try:
            network = ipaddress.ip_network(name, strict=False)
        except ValueError:
            network = None
        if network is not None:
            if address is not None and address in network:
                return raw
            continue
        name = name.removeprefix("*").lstrip(".").rstrip(".")
        if name and (host == name or host.endswith("." + name)):
            return raw
    return None


def environment_proxy(target: str, environ: Mapping[str, str] | None = None) -> EnvironmentProxy | None:
    """The proxy the environment gives ``target`` (a base URL), or None when no proxy
    variable is set for its scheme. Raises RequestError naming the variable when its value
    is not a proxy this tool can use (an http:// URL with a host)."""
    environ = os.environ if environ is None else environ
    parts = urlsplit(target)
    found = _proxy_variable(parts.scheme, environ)
    if found is None:
        return None
    variable, value = found
    port = parts.port or (443 if parts.scheme == "https" else 80)
    no_proxy = environ.get("no_proxy") or environ.get("NO_PROXY") or ""
    exempted = no_proxy_entry(parts.hostname or "", port, no_proxy)
    if exempted is not None:
        return EnvironmentProxy(variable, None, exempted)
    proxy = value if "://" in value else f"http://{value}"
    scheme = proxy.partition("://")[0].lower()
    if scheme != "http":
        raise RequestError(f"{variable} {shown_url(proxy)!r}: only http:// proxies are supported "
                           f"(not {scheme}://); unset {variable} or pass --proxy URL")
    try:
        check_base_url(proxy, variable)
    except RequestError as exc:
        raise RequestError(f"{exc}; fix {variable}, unset it, or pass --proxy URL") from None
    return EnvironmentProxy(variable, proxy.rstrip("/"))


# --- raw connections for bursts ---------------------------------------------------------------


@dataclass(slots=True)
class RequestTiming:
    """When one burst request's bytes went out and its response came back, in monotonic
    ns (0: it did not happen: the connection did not open, or no response came)."""

    first_byte_ns: int = 0  # the write holding the request's first byte returned
    last_byte_ns: int = 0  # the write holding its last byte returned
    response_ns: int = 0  # its whole response had been read


@dataclass
class BurstResult:
    outcomes: list[Outcome]
    send_ns: list[int]  # monotonic times of the writes (first and last, for synchronised releases)
    timings: list[RequestTiming] = field(default_factory=list)  # one per outcome, same order

    @property
    def send_spread_us(self) -> float:
        return (max(self.send_ns) - min(self.send_ns)) / 1000 if len(self.send_ns) > 1 else 0.0

    def timeline(self, limit: int) -> dict[str, Any]:
        """The first ``limit`` requests' times in ms from the release (the earliest last
        byte), with their status: what a picture of the burst needs, bounded by ``limit``."""
        sent = [t.last_byte_ns for t in self.timings if t.last_byte_ns]
        origin = min(sent) if sent else 0

        def ms(ns: int) -> float | None:
            return round((ns - origin) / 1e6, 4) if ns and origin else None

        rows = [{"first_byte_ms": ms(t.first_byte_ns), "last_byte_ms": ms(t.last_byte_ns),
                 "response_ms": ms(t.response_ns), "status": o.status}
                for t, o in zip(self.timings[:limit], self.outcomes)]
        return {"origin_ns": origin, "rows": rows, "total": len(self.timings)}


def proxy_authorization(proxy: str) -> str | None:
    """The ``Proxy-Authorization`` value for credentials in a proxy URL
    (``http://user:pass@host:port``), encoded as aiohttp encodes them for single requests;
    None without credentials. Raises ValueError for credentials HTTP cannot carry."""
    auth = aiohttp.BasicAuth.from_url(URL(proxy))
    return auth.encode() if auth is not None else None


class _RawConnection:
    """One HTTP/1.1 connection driven by h11, direct or through an HTTP proxy."""

    def __init__(self, request: PreparedRequest, proxy: str | None, ssl_context: ssl.SSLContext | None):
        self.request = request
        self.url = urlsplit(request.url)
        self.proxy = urlsplit(proxy) if proxy else None
        self.proxy_authorization = proxy_authorization(proxy) if proxy else None
        self.ssl_context = ssl_context
        self.h11 = h11.Connection(h11.CLIENT)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.started = 0.0

    async def open(self) -> None:
        secure = self.url.scheme == "https"
        port = self.url.port or (443 if secure else 80)
        tls = (self.ssl_context or ssl.create_default_context()) if secure else None
        if self.proxy is None:
            self.reader, self.writer = await asyncio.open_connection(
                self.url.hostname, port, ssl=tls, server_hostname=self.url.hostname if tls else None)
            return
        self.reader, self.writer = await asyncio.open_connection(self.proxy.hostname, self.proxy.port or 8080)
        if tls is not None:  # tunnel, then TLS to the target inside it
            authority = f"{self.url.hostname}:{port}"
            credentials = (f"Proxy-Authorization: {self.proxy_authorization}\r\n"
                           if self.proxy_authorization else "")
            self.writer.write(
                f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n{credentials}\r\n".encode())
            head = await self.reader.readuntil(b"\r\n\r\n")
            if head.split(b" ", 2)[1:2] != [b"200"]:
                raise ConnectionError(f"proxy refused CONNECT: {head.splitlines()[0].decode(errors='replace')}")
            await self.writer.start_tls(tls, server_hostname=self.url.hostname)

    def wire_bytes(self) -> bytes:
        req = self.request
        absolute = self.proxy is not None and self.url.scheme == "http"
        target = req.url if absolute else (self.url.path or "/") + (f"?{self.url.query}" if self.url.query else "")
        headers = [("Host", self.url.netloc), *req.headers.items(),
                   ("Content-Length", str(len(req.body)))]
        if absolute and self.proxy_authorization:
            headers.append(("Proxy-Authorization", self.proxy_authorization))
        data = self._bytes(h11.Request(method=req.method, target=target, headers=headers))
        if req.body:
            data += self._bytes(h11.Data(data=req.body))
        return data + self._bytes(h11.EndOfMessage())

    def _bytes(self, event: h11.Request | h11.Data | h11.EndOfMessage) -> bytes:
        data = self.h11.send(event)
        assert data is not None  # h11 returns None only for ConnectionClosed, never sent here
        return data

    @property
    def out(self) -> asyncio.StreamWriter:
        """The open connection's writer (only used after ``open``)."""
        assert self.writer is not None
        return self.writer

    async def read_response(self) -> Outcome:
        assert self.reader is not None
        status, headers, body = 0, {}, bytearray()
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                data = await self.reader.read(65536)
                self.h11.receive_data(data)
            elif isinstance(event, h11.Response):
                status = event.status_code
                headers = {k.decode().lower(): v.decode("latin-1") for k, v in event.headers}
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_BODY_BYTES:
                    raise ConnectionError(f"the response body is larger than {MAX_BODY_BYTES >> 20} MiB")
            elif isinstance(event, h11.EndOfMessage):
                return Outcome(status, headers, bytes(body), time.perf_counter() - self.started)
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("connection closed before a full response")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def send_burst(
    request: PreparedRequest | list[PreparedRequest],
    count: int,
    release: Release,
    *,
    proxy: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    timeout: float = RESPONSE_TIMEOUT_S,
    connect_timeout: float = CONNECT_TIMEOUT_S,
) -> BurstResult:
    """Send ``count`` copies of ``request`` released as ``release`` says; each connection
    opens within ``connect_timeout`` and each response comes within ``timeout``. A list
    gives each copy its own request (per-request values)."""
    connect = min(connect_timeout, timeout)
    requests = request if isinstance(request, list) else [request] * count
    conns = [_RawConnection(requests[i], proxy, ssl_context) for i in range(count)]
    send_ns: list[int] = [0] * count
    timings = [RequestTiming() for _ in range(count)]

    async def finish(i: int, conn: _RawConnection) -> Outcome:
        try:
            outcome = await asyncio.wait_for(conn.read_response(), timeout)
            timings[i].response_ns = time.monotonic_ns()
            return outcome
        except (TimeoutError, OSError, EOFError, h11.ProtocolError) as exc:
            return Outcome(None, {}, b"", time.perf_counter() - conn.started, _describe_error(exc, timeout))
        finally:
            conn.close()

    try:
        if release == "none":
            async def whole(i: int, conn: _RawConnection) -> Outcome:
                try:
                    await asyncio.wait_for(conn.open(), connect)
                except (TimeoutError, OSError, EOFError) as exc:  # EOF: proxy hung up
                    return Outcome(None, {}, b"", 0.0, _describe_error(exc, connect))
                conn.started = time.perf_counter()
                payload = conn.wire_bytes()
                timings[i].first_byte_ns = time.monotonic_ns()
                conn.out.write(payload)
                send_ns[i] = timings[i].last_byte_ns = time.monotonic_ns()
                return await finish(i, conn)

            wholes = await asyncio.gather(*(whole(i, c) for i, c in enumerate(conns)))
            return BurstResult(list(wholes), [t for t in send_ns if t], timings)

        opened = await asyncio.gather(*(asyncio.wait_for(c.open(), connect) for c in conns),
                                      return_exceptions=True)
        failed = {i: _describe_error(r, connect) for i, r in enumerate(opened) if isinstance(r, BaseException)}
        live = [(i, c) for i, c in enumerate(conns) if i not in failed]
        payloads = {i: c.wire_bytes() for i, c in live}
        if release == "last-byte":
            for i, c in live:
                c.out.write(payloads[i][:-1])
                timings[i].first_byte_ns = time.monotonic_ns()
            await asyncio.gather(*(c.out.drain() for _, c in live), return_exceptions=True)
            await asyncio.sleep(0.05)  # let the partial requests reach the server and be parsed
            tails = {i: payloads[i][-1:] for i, _ in live}
        else:
            tails = payloads
        # The release: writes only, no awaits between them, so nothing else runs and the
        # writes go out back to back. Each is followed by one read of the clock (a vDSO call,
        # tens of ns beside the microseconds of the write's own system call) into a list
        # made beforehand, so each request's last byte has its own time.
        writes = [(c.out.write, tails[i]) for i, c in live]
        stamps = [0] * len(writes)
        clock = time.monotonic_ns
        released = time.perf_counter()
        first_ns = clock()
        for k, (write, tail) in enumerate(writes):
            write(tail)
            stamps[k] = clock()
        last_ns = stamps[-1] if stamps else first_ns
        for k, (i, c) in enumerate(live):
            c.started = released
            timings[i].last_byte_ns = stamps[k]
            if release != "last-byte":  # the whole request went out in that one write
                timings[i].first_byte_ns = first_ns if k == 0 else stamps[k - 1]
        results = await asyncio.gather(*(finish(i, c) for i, c in live))
        outcomes: list[Outcome] = [Outcome(None, {}, b"", 0.0, failed.get(i)) for i in range(count)]
        for (i, _), outcome in zip(live, results):
            outcomes[i] = outcome
        return BurstResult(outcomes, [first_ns, last_ns] if live else [], timings)
    finally:
        for c in conns:
            c.close()
