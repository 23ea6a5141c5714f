"""Create: 201, 409, validation, organizations, URLs, re-create after completion."""

from __future__ import annotations

import re
import uuid

import aiohttp
import pytest

from exportjobs.graph import is_guid, new_request_id
from exportjobs.simulator.emulator.app import EmulatorConfig
from tests.support.emulator import (
    COLLECTION,
    advance,
    every_store,  # noqa: F401 - runs this module against both stores
    new_pair,
)

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")




async def test_create_returns_201_with_job_and_absolute_location(emulator, http):
    body = new_pair()
    async with http.post(COLLECTION, json=body, headers={"client-request-id": "abc-123"}) as r:
        assert r.status == 201
        job = await r.json()
        assert r.headers["Location"] == f"{emulator.url}{COLLECTION}/{job['id']}"
        assert is_guid(r.headers["request-id"])
        assert r.headers["client-request-id"] == "abc-123"
        assert "Date" in r.headers
        assert r.content_type == "application/json"
    assert job["@odata.type"] == "#microsoft.graph.goalsExportJob"
    assert job["status"] == "notStarted"
    assert ISO_Z.match(job["createdDateTime"])
    assert job["goalsOrganizationId"] == body["goalsOrganizationId"]
    assert job["explorerViewId"] == body["explorerViewId"]
    assert job["resourceLocation"] is None and job["expirationDateTime"] is None
    assert re.fullmatch(r"[A-Za-z0-9_-]+", job["id"])


async def test_client_request_id_is_generated_when_not_sent(http):
    async with http.post(COLLECTION, json=new_pair()) as r:
        assert r.headers["client-request-id"] == r.headers["request-id"]


def test_request_ids_are_distinct_version_4_guids():
    ids = [new_request_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    for request_id in ids[:500]:
        parsed = uuid.UUID(request_id)
        assert str(parsed) == request_id
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


async def test_duplicate_create_is_409_naming_the_pending_job(http):
    body = new_pair()
    async with http.post(COLLECTION, json=body) as r:
        winner = await r.json()
        location = r.headers["Location"]
    async with http.post(COLLECTION, json=body, headers={"client-request-id": "c-2"}) as r:
        assert r.status == 409
        assert r.headers["Location"] == location
        err = (await r.json())["error"]
    assert err["code"] == "notAllowed"
    assert err["message"] == "Another export job is still active or waiting to be executed"
    assert err["target"] == winner["id"]
    assert err["innerError"]["code"] == "exportJobAlreadyExists"
    assert err["innerError"]["client-request-id"] == "c-2"
    assert is_guid(err["innerError"]["request-id"])
    assert "innererror" not in err  # the docs example's spelling: only under quirks


async def test_pair_match_ignores_guid_case(http):
    body = new_pair()
    async with http.post(COLLECTION, json=body) as r:
        assert r.status == 201
    upper = {k: v.upper() for k, v in body.items()}
    async with http.post(COLLECTION, json=upper) as r:
        assert r.status == 409


async def test_same_organization_other_view_is_not_a_conflict(http):
    body = new_pair()
    async with http.post(COLLECTION, json=body) as r:
        assert r.status == 201
    other = {**body, "explorerViewId": str(uuid.uuid4())}
    async with http.post(COLLECTION, json=other) as r:
        assert r.status == 201


@pytest.mark.parametrize(
    "body, inner",
    [
        ({"explorerViewId": str(uuid.uuid4())}, "invalidGoalsOrganizationId"),
        ({"goalsOrganizationId": "not-a-guid", "explorerViewId": str(uuid.uuid4())},
         "invalidGoalsOrganizationId"),
        ({"goalsOrganizationId": 42, "explorerViewId": str(uuid.uuid4())},
         "invalidGoalsOrganizationId"),
        ({"goalsOrganizationId": str(uuid.uuid4())}, "invalidExplorerViewId"),
        ({"goalsOrganizationId": str(uuid.uuid4()), "explorerViewId": "{bad}"},
         "invalidExplorerViewId"),
    ],
)
async def test_missing_or_malformed_ids_are_400(http, body, inner):
    async with http.post(COLLECTION, json=body) as r:
        assert r.status == 400
        err = (await r.json())["error"]
    assert err["code"] == "badRequest"
    assert err["innerError"]["code"] == inner
    label = "GoalsOrganizationId" if "Organization" in inner else "ExplorerViewId"
    assert err["message"] == (
        f"'{label}' must be specified in 'Export Job', and it should be a valid GUID."
    )


async def test_unknown_body_property_is_400_naming_it(http):
    async with http.post(COLLECTION, json={**new_pair(), "colour": "blue"}) as r:
        assert r.status == 400
        assert "'colour'" in (await r.json())["error"]["message"]


async def test_paths_are_case_insensitive_and_location_keeps_the_clients_spelling(emulator, http):
    path = "/beta/employeeexperience/goals/exportjobs"
    async with http.post(path, json=new_pair()) as r:
        assert r.status == 201
        job = await r.json()
        assert r.headers["Location"] == f"{emulator.url}{path}/{job['id']}"
    async with http.get(f"/BETA/EmployeeExperience/Goals/ExportJobs/{job['id']}") as r:
        assert r.status == 200


async def test_location_uses_forwarded_host_and_proto(http):
    headers = {"X-Forwarded-Host": "graph.microsoft.com", "X-Forwarded-Proto": "https"}
    async with http.post(COLLECTION, json=new_pair(), headers=headers) as r:
        job = await r.json()
        assert r.headers["Location"] == (
            f"https://graph.microsoft.com{COLLECTION}/{job['id']}"
        )
    async with http.get(f"{COLLECTION}/{job['id']}", headers=headers) as r:
        assert r.status == 200


async def test_recreate_after_success_and_after_failure_is_201(emulator, http):
    body = new_pair()
    async with http.post(COLLECTION, json=body) as r:
        first = await r.json()
    await advance(http, 7.0)  # past start_after + run_for
    async with http.post(COLLECTION, json=body) as r:
        assert r.status == 201
        second = await r.json()
    assert second["id"] != first["id"]
    async with http.post(f"/_emulator/jobs/{second['id']}/fail") as r:
        assert r.status == 200
        assert (await r.json())["status"] == "failed"
    async with http.post(COLLECTION, json=body) as r:
        assert r.status == 201


class TestKnownOrganizations:
    KNOWN = "9ab0fcab-c1d4-4b26-963b-a3c33155f853"

    @pytest.fixture
    def emulator_config(self) -> EmulatorConfig:
        return EmulatorConfig(known_organizations=[self.KNOWN])

    async def test_unknown_organization_is_404(self, http):
        async with http.post(COLLECTION, json=new_pair()) as r:
            assert r.status == 404
            err = (await r.json())["error"]
        assert err["code"] == "notFound"
        assert err["message"] == "Goals organization not found"
        assert err["innerError"]["code"] == "goalsOrganizationIdNotFound"

    async def test_unknown_organization_is_logged_as_404_and_never_creates(self, http):
        """The store checks the organization in the create's own step: the 404 is logged
        in the arrival log with no job, and no job exists afterwards."""
        async with http.post(COLLECTION, json=new_pair(),
                             headers={"client-request-id": "unknown-org-1"}) as r:
            assert r.status == 404
        async with http.get("/_emulator/arrivals") as r:
            (arrival,) = (await r.json())["arrivals"]
        assert (arrival["status"], arrival["jobId"]) == (404, None)
        assert arrival["clientRequestId"] == "unknown-org-1"
        async with http.get("/_emulator") as r:
            assert (await r.json())["jobs"] == 0

    async def test_organizations_replaced_while_serving_apply_to_the_next_create(self, http):
        body = new_pair()
        async with http.post(COLLECTION, json=body) as r:
            assert r.status == 404
        async with http.put("/_emulator/organizations",
                            json={"known": [self.KNOWN, body["goalsOrganizationId"].upper()]}) as r:
            assert r.status == 200
        async with http.post(COLLECTION, json=body) as r:
            assert r.status == 201
        async with http.put("/_emulator/organizations", json={"known": None}) as r:
            assert r.status == 200
        async with http.post(COLLECTION, json=new_pair()) as r:
            assert r.status == 201  # every organization exists again

    async def test_known_organization_is_201(self, http):
        body = {"goalsOrganizationId": self.KNOWN.upper(), "explorerViewId": str(uuid.uuid4())}
        async with http.post(COLLECTION, json=body) as r:
            assert r.status == 201

    async def test_control_api_replaces_the_list(self, http):
        body = new_pair()
        async with http.put("/_emulator/organizations",
                            json={"known": [body["goalsOrganizationId"]]}) as r:
            assert r.status == 200
        async with http.post(COLLECTION, json=body) as r:
            assert r.status == 201
        async with http.put("/_emulator/organizations", json={"known": ["nope"]}) as r:
            assert r.status == 400


async def test_201_body_is_the_documented_shape_over_a_raw_client(emulator):
    """No client library in between: the wire bytes are JSON with the documented fields."""
    async with aiohttp.ClientSession() as raw:
        async with raw.post(
            f"{emulator.url}{COLLECTION}",
            data=b'{ "goalsOrganizationId": "9ab0fcab-c1d4-4b26-963b-a3c33155f853",'
                 b' "explorerViewId": "2c8b5fd3-67c3-4677-8eb3-e0066c4d2fd7" }',
            headers={"Content-Type": "application/json; charset=utf-8",
                     "Authorization": "Bearer opaque-token"},
        ) as r:
            assert r.status == 201
            job = await r.json()
    assert {"id", "status", "createdDateTime"} <= job.keys()
