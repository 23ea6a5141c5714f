"""The benchmark baselines: the least an aiohttp server can do for an exportJobs create.

One handler on the emulator's create path returning a fixed 201 JSON body of the same
shape and size as the emulator's, no middleware and no access log, so the ratio against
the emulator measures the emulator's own work and nothing else.

With ``--read-body`` the handler first does what no create can skip: it reads the body,
decodes the JSON and checks both ids are GUIDs (a 400 otherwise). That is the floor
under any emulator, and the bench reports against it too.
"""

from __future__ import annotations

import argparse
import json

from aiohttp import web

from exportjobs.graph import is_guid

PATH = "/beta/employeeExperience/goals/exportJobs"

# A goalsExportJob as the emulator returns it, so both servers send the same bytes' worth.
_BODY = (
    b'{"@odata.type":"#microsoft.graph.goalsExportJob","id":"eyJfdHlwZSI6IkV4cG9ydEpvYiIsImlk'
    b'IjoiODQxMjM0NSJ9","status":"notStarted","createdDateTime":"2026-01-01T00:00:00.0000Z",'
    b'"expirationDateTime":null,"goalsOrganizationId":"9ab0fcab-c1d4-4b26-963b-a3c33155f853",'
    b'"explorerViewId":"7a6d1c3e-0b5f-4e2a-8c9d-1f2e3a4b5c6d","resourceLocation":null}'
)
_HEADERS = {
    "Content-Type": "application/json",
    "Location": "http://127.0.0.1" + PATH + "/eyJfdHlwZSI6IkV4cG9ydEpvYiIsImlkIjoiODQxMjM0NSJ9",
}


async def create(request: web.Request) -> web.Response:
    return web.Response(status=201, body=_BODY, headers=_HEADERS)


async def create_after_reading(request: web.Request) -> web.Response:
    content = request.content  # read as the emulator reads a body that has all arrived
    raw = content.read_nowait() if content.is_eof() else await request.read()
    try:
        body = json.loads(raw)
        valid = is_guid(body["goalsOrganizationId"]) and is_guid(body["explorerViewId"])
    except (ValueError, KeyError, TypeError):
        valid = False
    if not valid:
        return web.Response(status=400)
    return web.Response(status=201, body=_BODY, headers=_HEADERS)


def build_app(*, read_body: bool = False) -> web.Application:
    app = web.Application()
    app.router.add_post(PATH, create_after_reading if read_body else create)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--read-body", action="store_true",
                        help="read, decode and check the body before the fixed 201")
    args = parser.parse_args()
    # Same socket settings as start_emulator (backlog 1024), and no access log, as --quiet.
    web.run_app(build_app(read_body=args.read_body), host=args.host, port=args.port, backlog=1024,
                access_log=None, print=None, handle_signals=True)


if __name__ == "__main__":
    main()
