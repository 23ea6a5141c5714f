"""OData's shapes by default, the docs examples' shapes under ``quirks="documented"``.

Default: a single job is the bare entity, every JSON body starts with its
``@odata.context`` (the service root the client called), the inherited longRunningOperation
properties are selectable, ``/$count`` and ``$count=true`` count, and system query options
the API does not support are a Graph 400. Quirks: get-one in ``{"value": ...}`` and the
409's ``innererror``; everything else as by default.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from exportjobs.simulator.emulator.app import EmulatorConfig, start_emulator
from exportjobs.simulator.emulator.auth import fake_token
from tests.support.emulator import COLLECTION, new_pair

ROOT = "/beta/$metadata#employeeExperience/goals/exportJobs"


async def create(http, body=None) -> tuple[dict, str]:
    async with http.post(COLLECTION, json=body or new_pair()) as r:
        assert r.status == 201, await r.text()
        return await r.json(), r.headers["Location"]


async def get(http, url: str, **kwargs) -> tuple[int, dict, str]:
    async with http.get(url, **kwargs) as r:
        return r.status, await r.json(content_type=None), r.headers["Content-Type"]


# --- the default: Graph's metadata and the SDKs ------------------------------------------------


async def test_get_one_is_the_bare_entity_with_its_context(emulator, http):
    created, location = await create(http)
    assert created["@odata.context"] == f"{emulator.url}{ROOT}/$entity"
    status, body, _ = await get(http, location)
    assert status == 200
    assert "value" not in body
    assert next(iter(body)) == "@odata.context"  # OData writes it first
    assert body["@odata.context"] == f"{emulator.url}{ROOT}/$entity"
    assert body["id"] == created["id"] and body["status"] == "notStarted"
    # Inherited from longRunningOperation: present, null while the emulator knows no value.
    assert body["lastActionDateTime"] is None and body["statusDetail"] is None


async def test_list_context_and_select_context_name_what_was_asked(emulator, http):
    await create(http)
    _, listed, _ = await get(http, COLLECTION)
    assert listed["@odata.context"] == f"{emulator.url}{ROOT}"
    assert "@odata.count" not in listed
    _, trimmed, _ = await get(http, COLLECTION, params={"$select": "id,status"})
    assert trimmed["@odata.context"] == f"{emulator.url}{ROOT}(id,status)"
    assert set(trimmed["value"][0]) == {"@odata.type", "id", "status"}


async def test_select_takes_the_inherited_properties(emulator, http):
    _, location = await create(http)
    status, body, _ = await get(http, location, params={"$select": "id,lastActionDateTime,statusDetail"})
    assert status == 200, body
    assert body["@odata.context"] == f"{emulator.url}{ROOT}(id,lastActionDateTime,statusDetail)/$entity"
    assert set(body) == {"@odata.context", "@odata.type", "id", "lastActionDateTime", "statusDetail"}


async def test_context_uses_the_host_the_client_called(http):
    _, location = await create(http)
    headers = {"X-Forwarded-Host": "graph.microsoft.com", "X-Forwarded-Proto": "https"}
    _, body, _ = await get(http, location, headers=headers)
    assert body["@odata.context"] == f"https://graph.microsoft.com{ROOT}/$entity"


async def test_count_segment_and_count_option(http):
    org = new_pair()["goalsOrganizationId"]
    for _ in range(3):
        await create(http, {"goalsOrganizationId": org, "explorerViewId": new_pair()["explorerViewId"]})
    await create(http)
    flt = {"$filter": f"goalsOrganizationId eq '{org}'"}
    async with http.get(f"{COLLECTION}/$count", params=flt) as r:
        assert r.status == 200
        assert r.content_type == "text/plain"
        assert await r.text() == "3"
    async with http.get(f"{COLLECTION}/%24count") as r:
        assert r.status == 200 and int(await r.text()) == 4
    _, counted, _ = await get(http, COLLECTION, params={**flt, "$count": "true"})
    assert counted["@odata.count"] == 3 == len(counted["value"])
    _, uncounted, _ = await get(http, COLLECTION, params={"$count": "false"})
    assert "@odata.count" not in uncounted
    status, body, _ = await get(http, COLLECTION, params={"$count": "maybe"})
    assert status == 400 and "'maybe' is not a valid count option" in body["error"]["message"]


@pytest.mark.parametrize(("option", "name"), [
    ("$top", "Top"), ("$skip", "Skip"), ("$orderby", "OrderBy"), ("$expand", "Expand"),
    ("$search", "Search"), ("$TOP", "Top"), ("$skiptoken", "SkipToken"),
])
async def test_unsupported_query_options_are_a_graph_400(http, option, name):
    _, location = await create(http)
    for url in (COLLECTION, location, f"{location}/content", f"{COLLECTION}/$count"):
        status, body, content_type = await get(http, url, params={option: "1"})
        assert status == 400, (url, body)
        assert content_type.startswith("application/json")
        assert body["error"]["code"] == "BadRequest"
        assert f"Query option '{name}' is not allowed" in body["error"]["message"]
        assert "innerError" in body["error"]


async def test_empty_select_is_a_400_and_other_parameters_are_left_alone(http):
    _, location = await create(http)
    for url in (COLLECTION, location):
        status, body, _ = await get(http, url, params={"$select": ""})
        assert status == 400 and "'$select' cannot be empty" in body["error"]["message"]
    status, _, _ = await get(http, location, params={"api-version": "x"})
    assert status == 200


async def test_the_409_spells_inner_error_as_graph_does(http):
    pair = new_pair()
    await create(http, pair)
    async with http.post(COLLECTION, json=pair) as r:
        assert r.status == 409
        error = (await r.json())["error"]
    assert error["innerError"]["code"] == "exportJobAlreadyExists"
    assert "innererror" not in error


# --- quirks="documented": the docs page's example shapes ---------------------------------------


@pytest.fixture
async def documented():
    running = await start_emulator(EmulatorConfig(quirks="documented"))
    async with aiohttp.ClientSession(
        running.url, headers={"Authorization": f"Bearer {fake_token()}"}
    ) as session:
        yield session
    await running.close()


async def test_documented_quirks_wrap_get_one_and_spell_innererror(documented):
    pair = new_pair()
    created, location = await create(documented, pair)
    status, body, _ = await get(documented, location)
    assert status == 200
    assert set(body) == {"value"}  # the docs' example: {"value": {job}}, nothing else
    assert body["value"]["id"] == created["id"] and body["value"]["status"] == "notStarted"
    _, trimmed, _ = await get(documented, location, params={"$select": "id"})
    assert trimmed == {"value": {"@odata.type": "#microsoft.graph.goalsExportJob", "id": created["id"]}}
    async with documented.post(COLLECTION, json=pair) as r:
        assert r.status == 409
        error = (await r.json())["error"]
    assert error["innererror"]["code"] == "exportJobAlreadyExists"
    assert "innerError" not in error
    # Only those two shapes change: a list, a 201 and other errors are as by default.
    _, listed, _ = await get(documented, COLLECTION)
    assert "@odata.context" in listed and "@odata.context" in created
    status, other, _ = await get(documented, f"{location}/content")
    assert status == 400 and "innerError" in other["error"]


def test_quirks_must_be_a_known_name():
    with pytest.raises(ValueError, match="quirks must be one of none, documented"):
        EmulatorConfig(quirks="graph")  # type: ignore[arg-type]


# --- the command line --------------------------------------------------------------------------

EXPORTJOBS = [sys.executable, "-m", "exportjobs"]


def test_serve_quirks_documented_reaches_the_emulator():
    import json
    import re
    import urllib.request

    proc = subprocess.Popen([*EXPORTJOBS, "serve", "--port", "0", "--quiet", "--quirks", "documented"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        match = re.search(r"(http://127\.0\.0\.1:\d+)", line)
        assert match, (line, proc.stderr.read() if proc.stderr else "")
        auth = {"Authorization": "Bearer opaque", "Content-Type": "application/json"}
        req = urllib.request.Request(f"{match[1]}{COLLECTION}", data=json.dumps(new_pair()).encode(),
                                     headers=auth, method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            location = r.headers["Location"]
        with urllib.request.urlopen(urllib.request.Request(location, headers=auth), timeout=10) as r:
            assert set(json.loads(r.read())) == {"value"}
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(10)


SCENARIO = """\
name: docs-shapes
variables:
  org: {generate: guid}
  view: {generate: guid}
steps:
  - name: create
    request:
      method: POST
      path: /beta/employeeExperience/goals/exportJobs
      json: {goalsOrganizationId: "${org}", explorerViewId: "${view}"}
    expect: {status: 201}
    save: {job_url: {header: Location}}
  - name: get one in the docs example's shape
    request: {url: "${job_url}"}
    expect:
      status: 200
      json: {value.status: notStarted}
"""


def test_run_quirks_documented_reaches_the_embedded_emulator(tmp_path: Path):
    scenario = tmp_path / "docs-shapes.yaml"
    scenario.write_text(SCENARIO, encoding="utf-8")
    env = {**os.environ, "NO_COLOR": "1"}
    run = [*EXPORTJOBS, "run", str(scenario), "--no-progress"]
    quirky = subprocess.run([*run, "--quirks", "documented"], capture_output=True, text=True,
                            timeout=60, env=env)
    assert quirky.returncode == 0, quirky.stdout + quirky.stderr
    plain = subprocess.run(run, capture_output=True, text=True, timeout=60, env=env)
    assert plain.returncode == 1, plain.stdout + plain.stderr  # the default sends the bare entity
    targeted = subprocess.run([*run, "--quirks", "documented", "--target", "http://127.0.0.1:9"],
                              capture_output=True, text=True, timeout=60, env=env)
    assert targeted.returncode == 2
    assert "--quirks shapes the embedded emulator only" in targeted.stderr
