"""The emulator's control API: an aiohttp sub-app mounted at ``/_emulator`` (a prefix no
Graph path uses).

Tests and the simulator use it to reset state, move the clock, fail a job, set the known
organizations, and read the server-side arrival time of every create; ``client`` is its
one client. The state lives on the root app (``keys``): in a sub-app ``request.app`` is
the sub-app, so every handler reads ``request.config_dict``. The root app's middleware
wraps these handlers too, so their errors are Graph error bodies like any other.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from exportjobs.graph import (
    MAX_JSON_DEPTH,
    GraphError,
    JsonTooDeep,
    graph_date,
    graph_time,
    is_guid,
    load_json,
)
from exportjobs.simulator.emulator.handlers import dispatch
from exportjobs.simulator.emulator.keys import CONFIG, STORE
from exportjobs.simulator.emulator.reading import continue_expected, read_body

PREFIX = "/_emulator"
# A hundred years: far past any job's expiry, well inside what timestamps can format.
MAX_ADVANCE_S = 100 * 365 * 24 * 3600


def _ok(payload: dict[str, Any]) -> web.Response:
    return web.json_response(payload, dumps=lambda o: json.dumps(o, separators=(",", ":")))


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = load_json(await read_body(request))
    except JsonTooDeep:
        raise GraphError(
            400, "badRequest", f"Control API bodies nest at most {MAX_JSON_DEPTH} levels."
        ) from None
    except ValueError:
        raise GraphError(400, "badRequest", "Control API bodies are JSON objects.") from None
    if not isinstance(body, dict):
        raise GraphError(400, "badRequest", "Control API bodies are JSON objects.")
    return body


async def info(request: web.Request) -> web.Response:
    config = request.config_dict[CONFIG]
    store = request.config_dict[STORE]
    return _ok({
        "now": graph_time(await store.now()),
        "clockOffsetSeconds": await store.clock_offset(),
        "startAfterSeconds": config.start_after,
        "runForSeconds": config.run_for,
        "unsafeRaceWindowMs": config.unsafe_race_window_ms,
        "knownOrganizations": await store.known_organizations() or None,
        "jobs": await store.count(),
    })


async def reset(request: web.Request) -> web.Response:
    await request.config_dict[STORE].reset()
    return _ok({"reset": True})


async def advance_clock(request: web.Request) -> web.Response:
    seconds = (await _body(request)).get("seconds")
    store = request.config_dict[STORE]
    room = MAX_ADVANCE_S - await store.clock_offset()
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not 0 <= seconds <= room:
        raise GraphError(400, "badRequest", f"Give {{\"seconds\": N}} with N from 0 to {room:g} "
                         "(the clock moves at most a hundred years in all).")
    offset = await store.advance_clock(float(seconds))
    return _ok({"now": graph_time(await store.now()), "clockOffsetSeconds": offset})


async def fail_job(request: web.Request) -> web.Response:
    store = request.config_dict[STORE]
    job_id = request.match_info["job_id"]
    if await store.get(job_id) is None:
        raise GraphError(404, "notFound", "No such job in the emulator.")
    immediately = (await _body(request)).get("immediately", True)
    failed = await store.fail(job_id, immediately=bool(immediately))
    if failed is None:  # reset meanwhile
        raise GraphError(404, "notFound", "No such job in the emulator.")
    job, now = failed
    return _ok({"id": job.id, "status": job.status(now), "endsAt": graph_time(job.ends_at)})


async def arrivals(request: web.Request) -> web.Response:
    entries = await request.config_dict[STORE].arrivals()
    times = [a.monotonic_us for a in entries]
    return _ok({
        "arrivals": [
            {"monotonicUs": a.monotonic_us, "status": a.status, "jobId": a.job_id,
             "clientRequestId": a.client_request_id} for a in entries
        ],
        "spreadUs": (max(times) - min(times)) if times else 0,
        "readAt": graph_date(),
    })


async def clear_arrivals(request: web.Request) -> web.Response:
    await request.config_dict[STORE].clear_arrivals()
    return _ok({"cleared": True})


async def set_organizations(request: web.Request) -> web.Response:
    known = (await _body(request)).get("known")
    if known is not None and (not isinstance(known, list) or not all(is_guid(o) for o in known)):
        raise GraphError(400, "badRequest", "Give {\"known\": [GUID, ...]} or {\"known\": null}.")
    await request.config_dict[STORE].set_known_organizations(known)
    return _ok({"knownOrganizations": known})


# The routes, relative to PREFIX. "" is PREFIX itself.
ROUTES = (
    ("GET", "", info),
    ("POST", "/reset", reset),
    ("POST", "/clock/advance", advance_clock),
    ("POST", "/jobs/{job_id}/fail", fail_job),
    ("GET", "/arrivals", arrivals),
    ("DELETE", "/arrivals", clear_arrivals),
    ("PUT", "/organizations", set_organizations),
)


def control_app() -> web.Application:
    """The control API as a sub-app; mount it with ``app.add_subapp(PREFIX, control_app())``.

    A path or method under the prefix that it does not serve falls through to the Graph
    dispatch, which answers it as Graph answers any path it does not know (as though the
    control API were not there).
    """
    app = web.Application()
    for method, path, handler in ROUTES:  # every route answers Expect the emulator's way
        app.router.add_route(method, path, handler, expect_handler=continue_expected)
    for rest in ("", "/{path:.*}"):
        app.router.add_route("*", rest, dispatch, expect_handler=continue_expected)
    return app
