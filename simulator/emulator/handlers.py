"""The exportJobs handlers (create, list, count, get, content) and the dispatch that routes to them.

Handlers raise ``GraphError``; the middleware renders it. State is read from the app
through the keys in ``keys``; what a valid create is comes from ``exportjobs.graph``.
Bodies follow Graph's metadata and OData's JSON format (an ``@odata.context`` first, a
single entity bare, ``innerError``), unless the config asks for the docs examples' shapes
(``quirks="documented"``: get-one wrapped in ``value``, the 409's ``innererror``).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Awaitable, Callable

from aiohttp import web

from exportjobs.graph import (
    CSV_CONTENT_TYPE,
    ODATA_CONTENT_TYPE,
    REQUEST_JSON,
    ExportJobsRoute,
    GraphError,
    compact_json,
    match_exportjobs,
    odata_context,
    parse_create,
)
from exportjobs.simulator.emulator.arrivals import new_arrival
from exportjobs.simulator.emulator.auth import check_authorization
from exportjobs.simulator.emulator.jobs import Job, export_csv, is_well_formed_job_id
from exportjobs.simulator.emulator.keys import CONFIG, STORE
from exportjobs.simulator.emulator.odata import (
    CONTENT_OPTIONS,
    COUNT_OPTIONS,
    GET_OPTIONS,
    LIST_OPTIONS,
    check_query_options,
    parse_count,
    parse_filter,
    parse_select,
    project,
)
from exportjobs.simulator.emulator.reading import read_body

Handler = Callable[[web.Request, ExportJobsRoute], Awaitable[web.StreamResponse]]


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
    proto, host = _forwarded_base(headers.get("X-Forwarded-Proto", ""), request.scheme,
                                  headers.get("X-Forwarded-Host", ""), headers.get("Host", ""))
    return f"{proto}://{host or _local_address(request)}"


@functools.lru_cache(maxsize=256)
def _forwarded_base(forwarded_proto: str, scheme: str, forwarded_host: str,
                    host: str) -> tuple[str, str | None]:
    """The scheme and host (None: none fit) these header values name: a pure function of
    them, cached, since a client sends the same ones on every request."""
    proto = forwarded_proto.split(",")[0].strip().lower()
    if proto not in ("http", "https"):
        proto = scheme
    for candidate in (forwarded_host.split(",")[0].strip(), host):
        if _URL_HOST.fullmatch(candidate):
            return proto, candidate
    return proto, None


def _local_address(request: web.Request) -> str:
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if not sockname:
        return "localhost"
    host, port = sockname[0], sockname[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _job_url(request: web.Request, route: ExportJobsRoute, job_id: str) -> str:
    return f"{_base_url(request)}{route.prefix}/{job_id}"


def _context(request: web.Request, route: ExportJobsRoute, select: list[str] | None = None,
             *, entity: bool = False) -> str:
    return odata_context(_base_url(request), route.version, select=select, entity=entity)


def _documented(request: web.Request) -> bool:
    """True when the emulator answers in the docs examples' shapes (``quirks="documented"``)."""
    return request.config_dict[CONFIG].quirks == "documented"


def _authorize(request: web.Request, *, write: bool) -> None:
    failure = check_authorization(request.headers.get("Authorization"), write=write)
    if failure is not None:
        raise GraphError(failure.status, failure.code, failure.message)


# --- create ----------------------------------------------------------------------------------


async def create_job(request: web.Request, route: ExportJobsRoute) -> web.Response:
    state = request.config_dict  # one lookup: aiohttp builds a new view on every access
    config, store = state[CONFIG], state[STORE]
    arrival = new_arrival(request)
    try:
        raw = await read_body(request, config.max_body_bytes)
        _authorize(request, write=True)
        create = parse_create(raw, _media_type(request))
    except GraphError as err:
        arrival.status = err.status
        await store.record_arrival(arrival)
        raise
    # The organization is checked by the store, in the same step as the insert; an unknown
    # one raises the 404 there (its arrival logged).
    window_ms = config.unsafe_race_window_ms
    if window_ms > 0:
        job, created = await store.create_racy(create.organization_id, create.view_id, arrival,
                                               window_ms / 1000)
    else:  # atomic: see store
        job, created = await store.create(create.organization_id, create.view_id, arrival)
    return _create_response(request, route, job, created, config.quirks == "documented")


def _media_type(request: web.Request) -> str:
    """The request's Content-Type without parameters: the usual create's value as it is,
    any other one through aiohttp's parser."""
    given = request.headers.get("Content-Type")
    return REQUEST_JSON if given == REQUEST_JSON else request.content_type


def _create_response(
    request: web.Request, route: ExportJobsRoute, job: Job, created: bool, documented: bool
) -> web.Response:
    """The 201 for a job just created (as it stood then); for a pending one, the 409 naming it."""
    base_url = _base_url(request)
    url = f"{base_url}{route.prefix}/{job.id}"
    if not created:
        raise GraphError(
            409,
            "notAllowed",
            "Another export job is still active or waiting to be executed",
            target=job.id,
            inner_code="exportJobAlreadyExists",
            # Graph's error format says innerError; the docs' 409 example, innererror.
            inner_key="innererror" if documented else "innerError",
            headers={"Location": url},
        )
    body = {"@odata.context": odata_context(base_url, route.version, entity=True),
            **job.to_graph(job.created_at, url)}
    return _json(201, body, {"Location": url})


# --- reads -----------------------------------------------------------------------------------


async def _filtered_jobs(request: web.Request) -> list[Job]:
    """The jobs a list's (or a count's) ``$filter`` names, all of them without one."""
    organizations = parse_filter(request.query.get("$filter", ""))
    store = request.config_dict[STORE]
    if organizations is None:
        return await store.list_jobs()
    if len(organizations) == 1:
        return await store.list_jobs(organizations.pop())
    return []  # "eq a and eq b" with a != b matches nothing


async def list_jobs(request: web.Request, route: ExportJobsRoute) -> web.Response:
    _authorize(request, write=False)
    check_query_options(request.query, LIST_OPTIONS)
    jobs = await _filtered_jobs(request)
    select = parse_select(request.query.get("$select"))
    counted = parse_count(request.query.get("$count"))
    now = await request.config_dict[STORE].now()
    value = [project(job.to_graph(now, _job_url(request, route, job.id)), select) for job in jobs]
    body: dict[str, object] = {"@odata.context": _context(request, route, select)}
    if counted:
        body["@odata.count"] = len(value)
    body["value"] = value
    return _json(200, body)


async def count_jobs(request: web.Request, route: ExportJobsRoute) -> web.Response:
    """``GET .../exportJobs/$count``: how many jobs (a ``$filter`` applies), as plain text."""
    _authorize(request, write=False)
    check_query_options(request.query, COUNT_OPTIONS)
    return web.Response(text=str(len(await _filtered_jobs(request))), content_type="text/plain")


async def _find_job(request: web.Request, route: ExportJobsRoute) -> Job:
    job_id = route.job_id or ""
    if not is_well_formed_job_id(job_id):
        raise GraphError(400, "badRequest", "Invalid JobKey specified", inner_code="unknown")
    job = await request.config_dict[STORE].get(job_id)
    if job is None:
        raise GraphError(
            404, "notFound", "Specified export job not found", inner_code="exportJobNotFound"
        )
    return job


async def get_job(request: web.Request, route: ExportJobsRoute) -> web.Response:
    if route.job_id == "$count":  # OData's count segment, not a job id
        return await count_jobs(request, route)
    _authorize(request, write=False)
    check_query_options(request.query, GET_OPTIONS)
    job = await _find_job(request, route)
    select = parse_select(request.query.get("$select"))
    now = await request.config_dict[STORE].now()
    headers = {}
    if job.status(now) in ("notStarted", "running"):
        cap = request.config_dict[CONFIG].retry_after_cap_s
        headers["Retry-After"] = str(min(cap, max(1, math.ceil(job.seconds_to_completion(now)))))
    body = project(job.to_graph(now, _job_url(request, route, job.id)), select)
    if _documented(request):  # the docs' examples: {"value": {job}}, no context
        return _json(200, {"value": body}, headers)
    return _json(200, {"@odata.context": _context(request, route, select, entity=True), **body}, headers)


async def get_content(request: web.Request, route: ExportJobsRoute) -> web.Response:
    _authorize(request, write=False)
    check_query_options(request.query, CONTENT_OPTIONS)
    job = await _find_job(request, route)
    now = await request.config_dict[STORE].now()
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


# --- dispatch --------------------------------------------------------------------------------

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
    """Route Graph paths case-insensitively through the shared exportJobs path parser.

    Any path no other route serves ends here too, and is answered as Graph answers a path
    it does not know.
    """
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
