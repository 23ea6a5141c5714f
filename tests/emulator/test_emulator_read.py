"""List, get, content, and the clock-driven lifecycle."""

from __future__ import annotations

import uuid

import pytest

from exportjobs.simulator.emulator.app import EmulatorConfig
from exportjobs.simulator.emulator.jobs import encode_job_id
from tests.support.emulator import (
    COLLECTION,
    advance,
    every_store,  # noqa: F401 - runs this module against both stores
    new_pair,
)


async def create(http, body=None) -> tuple[dict, str]:
    async with http.post(COLLECTION, json=body or new_pair()) as r:
        assert r.status == 201
        return await r.json(), r.headers["Location"]


async def get_job(http, url: str, **kwargs) -> tuple[int, dict, dict]:
    async with http.get(url, **kwargs) as r:
        return r.status, dict(r.headers), await r.json()


async def test_full_lifecycle_with_a_controlled_clock(emulator, http):
    _job, location = await create(http)
    status, headers, body = await get_job(http, location)
    assert status == 200 and body["status"] == "notStarted"
    assert headers["Retry-After"] == "7"  # 2 s not started + 5 s running, rounded up

    await advance(http, 2.0)
    status, headers, body = await get_job(http, location)
    assert body["status"] == "running"
    assert 1 <= int(headers["Retry-After"]) <= 5
    assert body["resourceLocation"] is None

    await advance(http, 5.0)
    status, headers, body = await get_job(http, location)
    done = body
    assert done["status"] == "succeeded"
    assert "Retry-After" not in headers
    assert done["resourceLocation"] == f"{location}/content"
    assert done["expirationDateTime"] > done["createdDateTime"]

    async with http.get(done["resourceLocation"]) as r:
        assert r.status == 200
        assert r.content_type == "text/csv"
        text = await r.text()
    assert text.splitlines()[0].startswith("Id,Title,Owner,Status")
    assert len(text.splitlines()) > 1


@pytest.mark.parametrize("emulator_config", [EmulatorConfig(start_after=2.0, run_for=600.0)])
async def test_retry_after_is_capped_at_60(emulator, http):
    _, location = await create(http)
    _, headers, _ = await get_job(http, location)
    assert headers["Retry-After"] == "60"


async def test_content_before_success_is_a_graph_error(http):
    _, location = await create(http)
    async with http.get(f"{location}/content") as r:
        assert r.status == 400
        err = (await r.json())["error"]
    assert err["innerError"]["code"] == "exportJobNotCompleted"
    assert "notStarted" in err["message"]


async def test_failed_job_has_no_content_and_no_resource_location(emulator, http):
    job, location = await create(http)
    async with http.post(f"/_emulator/jobs/{job['id']}/fail", json={"immediately": False}) as r:
        assert (await r.json())["status"] == "notStarted"  # fails when its run ends
    await advance(http, 7.0)
    _, _, body = await get_job(http, location)
    assert body["status"] == "failed"
    assert body["resourceLocation"] is None
    async with http.get(f"{location}/content") as r:
        assert r.status == 400


async def test_content_expires(emulator, http):
    _, location = await create(http)
    await advance(http, 7.0 + 41 * 24 * 3600)
    async with http.get(f"{location}/content") as r:
        assert r.status == 404
        assert (await r.json())["error"]["innerError"]["code"] == "exportJobContentExpired"


async def test_select_trims_properties(http):
    _, location = await create(http)
    _, _, body = await get_job(http, location, params={"$select": "id,goalsOrganizationId"})
    assert set(body) == {"@odata.context", "@odata.type", "id", "goalsOrganizationId"}


async def test_select_of_unknown_property_is_400(http):
    _, location = await create(http)
    status, _, body = await get_job(http, location, params={"$select": "id,colour"})
    assert status == 400
    assert "'colour'" in body["error"]["message"]


async def test_unknown_job_is_404(http):
    status, _, body = await get_job(http, f"{COLLECTION}/{encode_job_id(1)}")
    assert status == 404
    assert body["error"]["code"] == "notFound"
    assert body["error"]["message"] == "Specified export job not found"
    assert body["error"]["innerError"]["code"] == "exportJobNotFound"


@pytest.mark.parametrize("bad_id", ["not-a-key", "%25%25%25", "eyJub3RhIjoia2V5In0"])
async def test_malformed_job_id_is_400(http, bad_id):
    for suffix in ("", "/content"):
        status, _, body = await get_job(http, f"{COLLECTION}/{bad_id}{suffix}")
        assert status == 400
        assert body["error"]["message"] == "Invalid JobKey specified"
        assert body["error"]["innerError"]["code"] == "unknown"


async def test_list_returns_all_jobs_and_filters_by_organization(http):
    org = str(uuid.uuid4())
    mine = [await create(http, {"goalsOrganizationId": org, "explorerViewId": str(uuid.uuid4())})
            for _ in range(3)]
    await create(http)  # another organization
    async with http.get(COLLECTION) as r:
        assert r.status == 200
        everything = (await r.json())["value"]
    assert len(everything) == 4
    # The docs' own example puts a space after '=': it must work too.
    for expr in (f"goalsOrganizationId eq '{org}'", f" goalsOrganizationId eq '{org.upper()}'"):
        async with http.get(COLLECTION, params={"$filter": expr}) as r:
            ids = {j["id"] for j in (await r.json())["value"]}
        assert ids == {job["id"] for job, _ in mine}


@pytest.mark.parametrize(
    "expr, named",
    [
        ("explorerViewId eq '2c8b5fd3-67c3-4677-8eb3-e0066c4d2fd7'", "explorerViewId"),
        ("status eq 'running' and explorerViewId eq 'x'", "status, explorerViewId"),
    ],
)
async def test_filter_on_other_keys_is_400_naming_them(http, expr, named):
    async with http.get(COLLECTION, params={"$filter": expr}) as r:
        assert r.status == 400
        err = (await r.json())["error"]
    assert err["code"] == "badRequest"
    assert err["message"] == f"Invalid filter keys found: {named}"


async def test_unparseable_filter_is_400(http):
    async with http.get(COLLECTION, params={"$filter": "goalsOrganizationId"}) as r:
        assert r.status == 400
        assert "filter" in (await r.json())["error"]["message"]
