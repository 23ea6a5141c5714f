"""The emulator's control API, under ``/_emulator/`` (a prefix no Graph path uses).

Tests and the simulator use it to reset state, move the clock, fail a job, set the known
organizations, and read the server-side arrival time of every create.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from exportjobs.simulator.emulator.app import ARRIVALS, CLOCK, CONFIG, STORE, _continue, read_body
from exportjobs.graph import (
    MAX_JSON_DEPTH,
    GraphError,
    JsonTooDeep,
    graph_date,
    graph_time,
    is_guid,
    load_json,
)

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
    app = request.app
    config = app[CONFIG]
    return _ok({
        "now": graph_time(app[CLOCK].now()),
        "clockOffsetSeconds": app[CLOCK].offset,
        "startAfterSeconds": config.start_after,
        "runForSeconds": config.run_for,
        "unsafeRaceWindowMs": config.unsafe_race_window_ms,
        "knownOrganizations": sorted(app[STORE].known_organizations or []) or None,
        "jobs": len(app[STORE].jobs),
    })


async def reset(request: web.Request) -> web.Response:
    request.app[STORE].reset()
    request.app[ARRIVALS].entries.clear()
    return _ok({"reset": True})


async def advance_clock(request: web.Request) -> web.Response:
    seconds = (await _body(request)).get("seconds")
    room = MAX_ADVANCE_S - request.app[CLOCK].offset
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not 0 <= seconds <= room:
        raise GraphError(400, "badRequest", f"Give {{\"seconds\": N}} with N from 0 to {room:g} "
                         "(the clock moves at most a hundred years in all).")
    now = request.app[CLOCK].advance(float(seconds))
    return _ok({"now": graph_time(now), "clockOffsetSeconds": request.app[CLOCK].offset})


async def fail_job(request: web.Request) -> web.Response:
    store = request.app[STORE]
    job = store.jobs.get(request.match_info["job_id"])
    if job is None:
        raise GraphError(404, "notFound", "No such job in the emulator.")
    immediately = (await _body(request)).get("immediately", True)
    now = store.clock.now()
    job.fail(now, immediately=bool(immediately))
    return _ok({"id": job.id, "status": job.status(now), "endsAt": graph_time(job.ends_at)})


async def arrivals(request: web.Request) -> web.Response:
    entries = list(request.app[ARRIVALS].entries)
    times = [a.monotonic_us for a in entries]
    return _ok({
        "arrivals": [
            {"monotonicUs": a.monotonic_us, "status": a.status, "jobId": a.job_id} for a in entries
        ],
        "spreadUs": (max(times) - min(times)) if times else 0,
        "readAt": graph_date(),
    })


async def clear_arrivals(request: web.Request) -> web.Response:
    request.app[ARRIVALS].entries.clear()
    return _ok({"cleared": True})


async def set_organizations(request: web.Request) -> web.Response:
    known = (await _body(request)).get("known")
    if known is not None and (not isinstance(known, list) or not all(is_guid(o) for o in known)):
        raise GraphError(400, "badRequest", "Give {\"known\": [GUID, ...]} or {\"known\": null}.")
    store = request.app[STORE]
    store.known_organizations = None if known is None else {o.lower() for o in known}
    return _ok({"knownOrganizations": known})


def add_control_routes(app: web.Application) -> None:
    routes = (
        ("GET", PREFIX, info),
        ("POST", f"{PREFIX}/reset", reset),
        ("POST", f"{PREFIX}/clock/advance", advance_clock),
        ("POST", PREFIX + "/jobs/{job_id}/fail", fail_job),
        ("GET", f"{PREFIX}/arrivals", arrivals),
        ("DELETE", f"{PREFIX}/arrivals", clear_arrivals),
        ("PUT", f"{PREFIX}/organizations", set_organizations),
    )
    for method, path, handler in routes:  # every route answers Expect the emulator's way
        app.router.add_route(method, path, handler, expect_handler=_continue)
