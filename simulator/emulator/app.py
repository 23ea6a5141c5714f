"""An aiohttp emulator of Graph's exportJobs service.

``create_app`` builds the application; ``start_emulator`` runs it on a real socket
in-process (port 0 picks a free port) for tests and other commands. Handlers raise
``GraphError``; one middleware renders every error as a Graph error body and stamps the
``request-id`` / ``client-request-id`` headers on every response.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import re
from collections import deque
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from aiohttp import web
from aiohttp.http import HttpVersion11
from aiohttp.http_exceptions import (
    ContentEncodingError,
    DecompressSizeError,
    HttpProcessingError,
    LineTooLong,
)
from aiohttp.web_log import AccessLogger
from aiohttp.web_protocol import RequestHandler, RequestPayloadError

from exportjobs.simulator.emulator.arrivals import ArrivalLog, ArrivalStamp
from exportjobs.simulator.emulator.auth import check_authorization
from exportjobs.graph import (
    CSV_CONTENT_TYPE,
    ERROR_CONTENT_TYPE,
    HTTP_ERRORS,
    ODATA_CONTENT_TYPE,
    MAX_JSON_DEPTH,
    GraphError,
    JsonTooDeep,
    compact_json,
    is_guid,
    load_json,
    new_request_id,
)
from exportjobs.simulator.emulator.jobs import Clock, Job, JobStore, export_csv, is_well_formed_job_id
from exportjobs.simulator.emulator.odata import parse_filter, parse_select, project
from exportjobs.graph import ExportJobsRoute, match_exportjobs

log = logging.getLogger("exportjobs.emulator")



@dataclass
class EmulatorConfig:
    start_after: float = 2.0
    run_for: float = 5.0
    known_organizations: list[str] | None = None
    unsafe_race_window_ms: float = 0.0
    max_body_bytes: int = 1024 * 1024
    retry_after_cap_s: int = 60
    arrival_log_size: int = 100_000


CONFIG = web.AppKey("config", EmulatorConfig)
CLOCK = web.AppKey("clock", Clock)
STORE = web.AppKey("store", JobStore)
ARRIVALS = web.AppKey("arrivals", ArrivalLog)

Handler = Callable[[web.Request, ExportJobsRoute], Awaitable[web.StreamResponse]]


# --- cross-cutting -----------------------------------------------------------------------


def _error_response(err: GraphError, request_id: str, client_request_id: str) -> web.Response:
    return web.Response(
        status=err.status,
        body=err.body(request_id, client_request_id),
        headers={"Content-Type": ERROR_CONTENT_TYPE, **err.headers},
    )


# A client-request-id is echoed in a response header, so only text a header can carry
# comes back; anything else (non-ASCII, control characters, kilobytes) gets a fresh id.
_ECHOABLE_ID = re.compile(r"[\x21-\x7e][\x20-\x7e]{0,127}")


def _client_request_id(request: web.BaseRequest, request_id: str) -> str:
    given = request.headers.get("client-request-id", "")
    return given if _ECHOABLE_ID.fullmatch(given) else request_id


class ClientGone(Exception):
    """The client closed its connection before its request body was complete."""


_UNSUPPORTED_ENCODING = GraphError(
    415,
    "unsupportedMediaType",
    "The request's Content-Encoding is not supported; send gzip, deflate, br or identity.",
)


def _undecodable(request: web.BaseRequest) -> GraphError:
    encoding = request.headers.get("Content-Encoding", "")
    return GraphError(
        400,
        "BadRequest",
        f"The request body could not be decoded as Content-Encoding {encoding!a}.",
    )


async def read_body(request: web.BaseRequest) -> bytes:
    """The whole decoded body, at most ``max_body_bytes`` of it; else a GraphError.

    Every request body is read here (handlers that want one call it, the middleware
    drains the rest), so every way a body can fail is one of: 413 (too large), 400
    (a Content-Encoding that does not decode, broken chunked framing), or ``ClientGone``.
    The last byte's arrival is the moment a create arrives: a last-byte release
    synchronises on it, and the duplicate check runs after it.
    """
    limit = request.app[CONFIG].max_body_bytes if isinstance(request, web.Request) else 0
    if limit and request.content_length is not None and request.content_length > limit:
        raise GraphError(413, *HTTP_ERRORS[413])
    content = request.content
    if content.is_eof() and content.exception() is None:  # all here (the usual create)
        raw = content.read_nowait()
        if limit and len(raw) > limit:  # e.g. a gzip body that grew when decoded
            raise GraphError(413, *HTTP_ERRORS[413])
        return raw
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise GraphError(413, *HTTP_ERRORS[413]) from None
    except (RequestPayloadError, HttpProcessingError) as exc:
        # The rest of this body is unreadable: mark it ended, so aiohttp does not try to
        # drain it after the response (and log the same error again); the middleware
        # closes the connection.
        content.feed_eof()
        if isinstance(exc.__cause__, DecompressSizeError):
            raise GraphError(413, *HTTP_ERRORS[413]) from None
        if request.headers.get("Content-Encoding"):
            raise _undecodable(request) from None
        raise GraphError(400, "BadRequest", "The request body's framing is malformed.") from None
    except ConnectionError:
        raise ClientGone from None


def _check_expect(request: web.Request) -> None:
    """Only ``Expect: 100-continue`` is understood (``_continue`` has answered it)."""
    expect = request.headers.get("Expect")
    if expect is not None and request.version >= HttpVersion11 and expect.lower() != "100-continue":
        raise GraphError(417, *HTTP_ERRORS[417])


async def _continue(request: web.Request) -> None:
    """Each route's Expect handler: send 100 Continue, leave every other value to the
    middleware (aiohttp's own handler raises a plain-text 417, or a 500 when the value
    is not UTF-8, before any middleware runs)."""
    expect = request.headers.get("Expect", "")
    if request.version >= HttpVersion11 and expect.lower() == "100-continue":
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0


@web.middleware
async def graph_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    request_id = new_request_id()
    client_request_id = _client_request_id(request, request_id)
    try:
        _check_expect(request)
        response = await handler(request)
    except Exception as exc:
        response = _error_for(exc, request, request_id, client_request_id)
    if not request.content.is_eof() or request.content.exception() is not None:
        # A body nobody read (a GET's, or one behind an earlier error) is drained here,
        # through read_body, never by aiohttp: its failures are ours to answer. A failure
        # replaces a success; an error already chosen stands.
        try:
            await read_body(request)
        except Exception as exc:
            if response.status < 400 or not isinstance(exc, (GraphError, ClientGone)):
                response = _error_for(exc, request, request_id, client_request_id)
    if request.content.exception() is not None:  # its body failed: the stream is unusable
        response.force_close()
    response.headers["request-id"] = request_id
    response.headers["client-request-id"] = client_request_id
    return response


def _error_for(
    exc: Exception, request: web.Request, request_id: str, client_request_id: str
) -> web.Response:
    """The Graph error response for whatever a handler (or read_body) raised."""
    if isinstance(exc, GraphError):
        err = exc
    elif isinstance(exc, ClientGone):  # nobody is left to answer; this goes nowhere
        log.info("client closed the connection mid-request: %s %s", request.method, request.path)
        err = GraphError(400, "BadRequest", "The request body ended early.")
    elif isinstance(exc, web.HTTPException):
        code, message = HTTP_ERRORS.get(exc.status, ("BadRequest", exc.reason))
        err = GraphError(exc.status, code, message)
    else:  # a bug of ours: still a Graph error, and logged for us to fix
        log.error("unhandled error for %s %s", request.method, request.path, exc_info=exc)
        err = _INTERNAL
    return _error_response(err, request_id, client_request_id)


_INTERNAL = GraphError(500, "generalException", "An internal emulator error occurred.")


class GraphRequestHandler(RequestHandler):
    """aiohttp's connection protocol, answering the errors it finds itself in Graph's shape.

    A bad request line, a header line over 8 KiB, too many headers, a Content-Encoding
    aiohttp cannot decode at all: aiohttp answers these before any application code runs,
    through ``handle_error``, with a plain-text body. Here they are Graph error bodies,
    logged as one line (they are the client's mistakes, not ours).
    """

    __slots__ = ()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:  # the response has begun: nothing left to send
            return super().handle_error(request, status, exc, message)
        if status >= 500:
            self.logger.error("Error handling request", exc_info=exc)
            err = _INTERNAL
        elif isinstance(exc, ContentEncodingError):
            self.logger.info("refused request: %s", _one_line(exc))
            err = _UNSUPPORTED_ENCODING
        else:
            self.logger.info("refused request: %s", _one_line(exc))
            detail = "a header line is too long" if isinstance(exc, LineTooLong) else (
                "malformed HTTP request")
            err = GraphError(status, "BadRequest", f"The request could not be read: {detail}.")
        request_id = new_request_id()
        response = _error_response(err, request_id, request_id)
        response.headers["request-id"] = request_id
        response.headers["client-request-id"] = request_id
        response.force_close()
        return response


def _one_line(exc: BaseException | None) -> str:
    return " ".join(str(exc).split())[:200] if exc is not None else "unknown"


def _json(status: int, payload: object, headers: dict[str, str] | None = None) -> web.Response:
    all_headers = {"Content-Type": ODATA_CONTENT_TYPE}
    if headers:
        all_headers.update(headers)
    return web.Response(status=status, body=compact_json(payload), headers=all_headers)


# A host[:port] fit for a URL: a DNS name, IPv4 address or bracketed IPv6 address.
_URL_HOST = re.compile(
    r"(?:[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62}))*\.?"
    r"|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?"
)


def _base_url(request: web.Request) -> str:
    """Scheme and host the client called, honouring a proxy's X-Forwarded-* headers.

    A forwarded value that could not be a URL's scheme or host (empty, spaces, ``/``,
    ``@``, non-ASCII) is ignored, as is a Host header of that kind: the next source in
    line is used (X-Forwarded-Host, then Host, then the address the client connected to),
    so a ``Location`` is always an absolute URL with a host.
    """
    headers = request.headers
    proto = headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    if proto not in ("http", "https"):
        proto = request.scheme
    for candidate in (headers.get("X-Forwarded-Host", "").split(",")[0].strip(),
                      headers.get("Host", "")):
        if _URL_HOST.fullmatch(candidate):
            return f"{proto}://{candidate}"
    return f"{proto}://{_local_address(request)}"


def _local_address(request: web.Request) -> str:
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if not sockname:
        return "localhost"
    host, port = sockname[0], sockname[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _job_url(request: web.Request, route: ExportJobsRoute, job_id: str) -> str:
    return f"{_base_url(request)}{route.prefix}/{job_id}"


def _authorize(request: web.Request, *, write: bool) -> None:
    failure = check_authorization(request.headers.get("Authorization"), write=write)
    if failure is not None:
        raise GraphError(failure.status, failure.code, failure.message)


# --- exportJobs handlers -------------------------------------------------------------------

_BAD_JSON = GraphError(
    400,
    "BadRequest",
    "Unable to read JSON request payload. Please ensure Content-Type header is set and "
    "payload is of valid JSON format.",
)
_TOO_DEEP = GraphError(
    400,
    "BadRequest",
    f"The request payload nests JSON deeper than {MAX_JSON_DEPTH} levels.",
)
_CREATE_FIELDS = {
    "goalsOrganizationId": "invalidGoalsOrganizationId",
    "explorerViewId": "invalidExplorerViewId",
}


def _json_object(request: web.Request, raw: bytes) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise GraphError(
            415,
            "unsupportedMediaType",
            f"Content-Type must be 'application/json', not '{request.content_type}'.",
        )
    try:
        body = load_json(raw)
    except JsonTooDeep:
        raise _TOO_DEEP from None
    except ValueError:  # bad syntax or UTF-8 (UnicodeDecodeError is a ValueError)
        raise _BAD_JSON from None
    if not isinstance(body, dict):
        raise _BAD_JSON
    return body


def _validate_create(body: dict[str, Any]) -> tuple[str, str]:
    organization_id = body.get("goalsOrganizationId")
    view_id = body.get("explorerViewId")
    if len(body) == 2 and is_guid(organization_id) and is_guid(view_id):
        return organization_id, view_id  # the usual create: skip the error search below
    for name, inner_code in _CREATE_FIELDS.items():
        if not is_guid(body.get(name)):
            label = name[0].upper() + name[1:]
            raise GraphError(
                400,
                "badRequest",
                f"'{label}' must be specified in 'Export Job', and it should be a valid GUID.",
                inner_code=inner_code,
            )
    extra = [k for k in body if k not in _CREATE_FIELDS and k != "@odata.type"]
    if extra:
        raise GraphError(
            400,
            "badRequest",
            f"The property '{extra[0]}' does not exist on type 'microsoft.graph.goalsExportJob'.",
        )
    return body["goalsOrganizationId"], body["explorerViewId"]


async def create_job(request: web.Request, route: ExportJobsRoute) -> web.Response:
    app = request.app
    arrivals = app[ARRIVALS]
    try:
        raw = await read_body(request)
    except GraphError as err:
        arrivals.record(request).status = err.status
        raise
    arrival = arrivals.record(request)
    store = app[STORE]
    try:
        organization_id, view_id = _accepted_create(request, raw, store)
        window_ms = app[CONFIG].unsafe_race_window_ms
        if window_ms > 0:
            job, created = await _unsafe_create(store, organization_id, view_id, window_ms)
        else:
            job, created = store.create(organization_id, view_id)  # check + insert, no await between
        arrival.job_id = job.id
        response = _create_response(request, route, store, job, created)
    except GraphError as err:
        arrival.status = err.status
        raise
    arrival.status = response.status
    return response


def _accepted_create(request: web.Request, raw: bytes, store: JobStore) -> tuple[str, str]:
    """The (organization, view) pair of a create the caller may make, else a GraphError."""
    _authorize(request, write=True)
    organization_id, view_id = _validate_create(_json_object(request, raw))
    if not store.organization_known(organization_id):
        raise GraphError(
            404, "notFound", "Goals organization not found", inner_code="goalsOrganizationIdNotFound"
        )
    return organization_id, view_id


def _create_response(
    request: web.Request, route: ExportJobsRoute, store: JobStore, job: Job, created: bool
) -> web.Response:
    """The 201 for a job just created; for a pending one, the 409 naming it."""
    url = _job_url(request, route, job.id)
    if not created:
        raise GraphError(
            409,
            "notAllowed",
            "Another export job is still active or waiting to be executed",
            target=job.id,
            inner_code="exportJobAlreadyExists",
            inner_key="innererror",  # as in Graph's own 409 example
            headers={"Location": url},
        )
    return _json(201, job.to_graph(store.clock.now(), url), {"Location": url})


async def _unsafe_create(store: JobStore, organization_id: str, view_id: str, window_ms: float):
    """Deliberately broken: other creates may run between the check and the insert."""
    pending = store.pending_job(organization_id, view_id)
    if pending is not None:
        return pending, False
    await asyncio.sleep(window_ms / 1000)
    return store.insert(organization_id, view_id), True


async def list_jobs(request: web.Request, route: ExportJobsRoute) -> web.Response:
    _authorize(request, write=False)
    organizations = parse_filter(request.query.get("$filter", ""))
    select = parse_select(request.query.get("$select"))
    store = request.app[STORE]
    now = store.clock.now()
    if organizations is None:
        jobs = store.list()
    elif len(organizations) == 1:
        jobs = store.list(organizations.pop())
    else:  # "eq a and eq b" with a != b matches nothing
        jobs = []
    value = [project(job.to_graph(now, _job_url(request, route, job.id)), select) for job in jobs]
    return _json(200, {"value": value})


def _find_job(request: web.Request, route: ExportJobsRoute):
    job_id = route.job_id or ""
    if not is_well_formed_job_id(job_id):
        raise GraphError(400, "badRequest", "Invalid JobKey specified", inner_code="unknown")
    job = request.app[STORE].jobs.get(job_id)
    if job is None:
        raise GraphError(
            404, "notFound", "Specified export job not found", inner_code="exportJobNotFound"
        )
    return job


async def get_job(request: web.Request, route: ExportJobsRoute) -> web.Response:
    _authorize(request, write=False)
    job = _find_job(request, route)
    select = parse_select(request.query.get("$select"))
    store = request.app[STORE]
    now = store.clock.now()
    headers = {}
    if job.status(now) in ("notStarted", "running"):
        cap = request.app[CONFIG].retry_after_cap_s
        headers["Retry-After"] = str(min(cap, max(1, math.ceil(job.seconds_to_completion(now)))))
    body = project(job.to_graph(now, _job_url(request, route, job.id)), select)
    return _json(200, {"value": body}, headers)


async def get_content(request: web.Request, route: ExportJobsRoute) -> web.Response:
    _authorize(request, write=False)
    job = _find_job(request, route)
    now = request.app[STORE].clock.now()
    status = job.status(now)
    if status != "succeeded":
        raise GraphError(
            400,
            "badRequest",
            f"The export job is '{status}'; its content is available once it has succeeded.",
            inner_code="exportJobNotCompleted",
        )
    if job.is_expired(now):
        raise GraphError(404, "notFound", "The export job's content has expired",
                         inner_code="exportJobContentExpired")
    return web.Response(body=export_csv(job), headers={"Content-Type": CSV_CONTENT_TYPE})


_HANDLERS: dict[tuple[str, str], Handler] = {
    ("collection", "POST"): create_job,
    ("collection", "GET"): list_jobs,
    ("job", "GET"): get_job,
    ("content", "GET"): get_content,
}


# Parsing a path is a pure function of it, and every create has the same path: cache it.
_match_route = functools.lru_cache(maxsize=1024)(match_exportjobs)


def _unknown_route(path: str) -> GraphError:
    segments = [s for s in path.split("/") if s]
    if not segments or segments[0].lower() not in ("beta", "v1.0"):
        return GraphError(400, "BadRequest", f"Invalid version: {segments[0] if segments else ''}")
    known = ["employeeexperience", "goals", "exportjobs"]
    for i, seg in enumerate(segments[1:4]):
        if seg.lower() != known[i]:
            return GraphError(400, "BadRequest", f"Resource not found for the segment '{seg}'.")
    return GraphError(400, "BadRequest", f"Resource not found for the segment '{segments[-1]}'.")


async def dispatch(request: web.Request) -> web.StreamResponse:
    """Route Graph paths case-insensitively through the shared exportJobs path parser."""
    path = request.raw_path.partition("?")[0]
    route = _match_route(path)
    if route is None:
        raise _unknown_route(path)
    if route.version.lower() != "beta":  # exportJobs exists in beta only
        raise GraphError(400, "BadRequest", "Resource not found for the segment 'goals'.")
    handler = _HANDLERS.get((route.resource, request.method))
    if handler is None:
        allowed = ", ".join(m for (r, m) in _HANDLERS if r == route.resource)
        raise GraphError(
            405,
            "BadRequest",
            f"The HTTP method '{request.method}' is not allowed for the request URI.",
            headers={"Allow": allowed},
        )
    return await handler(request, route)


# --- application -----------------------------------------------------------------------------


def create_app(config: EmulatorConfig | None = None, *, clock: Clock | None = None) -> web.Application:
    """The emulator as an aiohttp ``Application``; state lives on the app."""
    from exportjobs.simulator.emulator.control import add_control_routes  # control imports our app keys

    config = config or EmulatorConfig()
    clock = clock or Clock()
    app = web.Application(middlewares=[graph_middleware], client_max_size=config.max_body_bytes)
    app[CONFIG] = config
    app[CLOCK] = clock
    app[STORE] = JobStore(
        clock,
        start_after=config.start_after,
        run_for=config.run_for,
        known_organizations=config.known_organizations,
    )
    app[ARRIVALS] = ArrivalLog(deque(maxlen=config.arrival_log_size))
    if config.unsafe_race_window_ms > 0:
        log.warning(
            "UNSAFE: check and insert are %.1f ms apart; concurrent creates can all get 201",
            config.unsafe_race_window_ms,
        )
    add_control_routes(app)
    # The documented spelling of the collection gets an exact route, which aiohttp finds
    # with one lookup; every other spelling and path goes through the catch-all.
    app.router.add_route(
        "*", "/beta/employeeExperience/goals/exportJobs", dispatch, expect_handler=_continue
    )
    app.router.add_route("*", "/{path:.*}", dispatch, expect_handler=_continue)
    return app


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
    def store(self) -> JobStore:
        return self.app[STORE]

    @property
    def clock(self) -> Clock:
        return self.app[CLOCK]

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
) -> RunningEmulator:
    """Start the emulator on ``host:port`` (0 = any free port) and return once it listens."""
    app = create_app(config, clock=clock)
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
            connection, host, port, backlog=1024, reuse_address=True
        )
    except OSError:
        await runner.cleanup()
        raise
    bound_host, bound_port = server.sockets[0].getsockname()[:2]
    return RunningEmulator(app, runner, server, bound_host, bound_port)


__all__ = [
    "ARRIVALS",
    "CLOCK",
    "CONFIG",
    "STORE",
    "EmulatorConfig",
    "RunningEmulator",
    "create_app",
    "start_emulator",
]
