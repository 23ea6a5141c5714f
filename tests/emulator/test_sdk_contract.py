"""Contract tests with Microsoft's own beta Python SDK (msgraph-beta-sdk) against the emulator.

Most clients of this API are written with the Graph SDKs, which are generated from Graph's
metadata: these tests drive a real emulator on 127.0.0.1 (plain http, its own thread and
loop) with the SDK's real request builders, middleware and parsers, authenticated by a
static token. What a user's ordinary code reads must be there: typed jobs, the 409's inner
error code, a polling loop on ``job.status`` that ends. The last tests show what the SDK
makes of the docs examples' shapes (``quirks="documented"``): the job's fields are None.

The SDK's first entity parse imports ~2,500 model modules (2-4 s); the module fixture does it
once, before any test, so no create is slow enough to let its job finish.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

pytest.importorskip("msgraph_beta")

import httpx
from kiota_abstractions.authentication import (
    AccessTokenProvider,
    AllowedHostsValidator,
    BaseBearerTokenAuthenticationProvider,
)
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_abstractions.native_response_handler import NativeResponseHandler
from kiota_http.kiota_client_factory import DEFAULT_CONNECTION_TIMEOUT, DEFAULT_REQUEST_TIMEOUT
from kiota_http.middleware.options import ResponseHandlerOption
from msgraph_beta import GraphServiceClient
from msgraph_beta.generated.employee_experience.goals.export_jobs.count.count_request_builder import (
    CountRequestBuilder,
)
from msgraph_beta.generated.employee_experience.goals.export_jobs.export_jobs_request_builder import (
    ExportJobsRequestBuilder,
)
from msgraph_beta.generated.employee_experience.goals.export_jobs.item.goals_export_job_item_request_builder import (
    GoalsExportJobItemRequestBuilder,
)
from msgraph_beta.generated.models.goals_export_job import GoalsExportJob
from msgraph_beta.generated.models.long_running_operation_status import (
    LongRunningOperationStatus,
)
from msgraph_beta.generated.models.o_data_errors.o_data_error import ODataError
from msgraph_beta.graph_request_adapter import GraphRequestAdapter
from msgraph_beta.graph_request_adapter import options as graph_options
from msgraph_core import APIVersion, GraphClientFactory

from exportjobs.simulator.emulator.app import EmulatorConfig
from exportjobs.simulator.emulator.client import EmulatorClient
from exportjobs.simulator.emulator.embedded import EmbeddedEmulator
from tests.support.emulator import new_pair

Succeeded = LongRunningOperationStatus.Succeeded


class StaticTokenProvider(AccessTokenProvider):
    """A fixed token, handed only to the hosts allowed (the emulator's)."""

    def __init__(self, token: str, allowed_hosts: list[str]) -> None:
        self._token = token
        self._validator = AllowedHostsValidator(allowed_hosts)

    async def get_authorization_token(self, uri: str, additional_authentication_context: Any = None) -> str:
        return self._token if self._validator.is_url_host_valid(uri) else ""

    def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
        return self._validator


def make_client(base_url: str) -> tuple[GraphServiceClient, httpx.AsyncClient]:
    """The SDK's client with its default middleware (retry, redirect, telemetry...), at ``base_url``."""
    host = httpx.URL(base_url).host
    auth = BaseBearerTokenAuthenticationProvider(StaticTokenProvider("opaque-test-token", [host]))
    http = httpx.AsyncClient(timeout=httpx.Timeout(DEFAULT_REQUEST_TIMEOUT, connect=DEFAULT_CONNECTION_TIMEOUT),
                             trust_env=False)
    http = GraphClientFactory.create_with_default_middleware(
        api_version=APIVersion.beta, client=http, options=dict(graph_options))
    adapter = GraphRequestAdapter(auth, client=http)
    adapter.base_url = base_url  # before the client is built, which only fills an empty one
    return GraphServiceClient(request_adapter=adapter), http


@pytest.fixture(scope="module", autouse=True)
def sdk_warm() -> None:
    """The SDK's slow first parse (the whole model tree's imports), once, outside any test."""
    GoalsExportJob().get_field_deserializers()


def _embedded(quirks: str) -> Iterator[EmbeddedEmulator]:
    with EmbeddedEmulator(EmulatorConfig(start_after=30, run_for=30, quirks=quirks)) as emulator:  # type: ignore[arg-type]
        yield emulator


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmbeddedEmulator]:
    yield from _embedded("none")


@pytest.fixture(scope="module")
def documented_emulator() -> Iterator[EmbeddedEmulator]:
    yield from _embedded("documented")


@pytest.fixture
async def jobs(emulator) -> AsyncIterator[ExportJobsRequestBuilder]:
    client, http = make_client(f"{emulator.url}/beta")
    yield client.employee_experience.goals.export_jobs
    await http.aclose()


@pytest.fixture
async def control(emulator) -> AsyncIterator[EmulatorClient]:
    async with EmulatorClient(emulator.url) as client:
        yield client


def new_job() -> GoalsExportJob:
    pair = new_pair()
    return GoalsExportJob(goals_organization_id=pair["goalsOrganizationId"],
                          explorer_view_id=pair["explorerViewId"])


def inner_code(error: ODataError) -> Any:
    """The inner error code as SDK 1.66 exposes it: InnerError has no ``code`` field, so the
    parser keeps it in ``additional_data``."""
    assert error.error is not None and error.error.inner_error is not None, error.error
    return error.error.inner_error.additional_data.get("code")


# --- the default shapes ------------------------------------------------------------------------


async def test_create_returns_a_typed_job_and_its_location(jobs):
    job = await jobs.post(new_job())
    assert isinstance(job, GoalsExportJob)
    assert job.id and job.status == LongRunningOperationStatus.NotStarted
    assert job.created_date_time is not None
    raw = await jobs.post(new_job(), RequestConfiguration(options=[ResponseHandlerOption(NativeResponseHandler())]))
    assert raw.status_code == 201
    assert raw.headers["location"].endswith(f"/exportJobs/{raw.json()['id']}")


async def test_conflict_is_an_odata_error_with_the_inner_code_target_and_location(jobs):
    body = new_job()
    winner = await jobs.post(body)
    with pytest.raises(ODataError) as caught:
        await jobs.post(body)
    e = caught.value
    assert e.response_status_code == 409
    assert e.error is not None and e.error.code == "notAllowed"
    assert e.error.target == winner.id
    assert inner_code(e) == "exportJobAlreadyExists"
    assert e.response_headers.get("location").endswith(f"/exportJobs/{winner.id}")


async def test_list_with_filter_and_count(jobs):
    org = new_pair()["goalsOrganizationId"]
    made = [await jobs.post(GoalsExportJob(goals_organization_id=org, explorer_view_id=new_pair()["explorerViewId"]))
            for _ in range(2)]
    await jobs.post(new_job())  # another organization's
    q = ExportJobsRequestBuilder.ExportJobsRequestBuilderGetQueryParameters(
        filter=f"goalsOrganizationId eq '{org}'", count=True)
    listed = await jobs.get(RequestConfiguration(query_parameters=q))
    assert listed is not None and listed.value is not None
    assert sorted(j.id for j in listed.value) == sorted(j.id for j in made)
    assert all(isinstance(j, GoalsExportJob) and j.status is not None for j in listed.value)
    assert listed.odata_count == 2
    counted = await jobs.count.get(RequestConfiguration(
        query_parameters=CountRequestBuilder.CountRequestBuilderGetQueryParameters(
            filter=f"goalsOrganizationId eq '{org}'")))
    assert counted == 2
    assert isinstance(await jobs.count.get(), int)


async def test_get_and_poll_on_status_until_succeeded_then_download(jobs, control):
    job = await jobs.post(new_job())
    item = jobs.by_goals_export_job_id(job.id)
    got = await item.get()
    assert got is not None and got.id == job.id
    assert got.status == LongRunningOperationStatus.NotStarted
    assert got.goals_organization_id == job.goals_organization_id
    polls = 0
    while (got := await item.get()).status != Succeeded:  # an ordinary SDK polling loop
        polls += 1
        assert polls <= 10, f"still {got.status} after {polls} polls"
        await control.advance_clock(15)
    assert got.resource_location is not None and got.resource_location.endswith(f"{job.id}/content")
    data = await item.content.get()
    assert isinstance(data, bytes) and data.startswith(b"Id,Title,Owner,Status")


async def test_select_takes_an_inherited_property(jobs):
    job = await jobs.post(new_job())
    q = GoalsExportJobItemRequestBuilder.GoalsExportJobItemRequestBuilderGetQueryParameters(
        select=["id", "status", "lastActionDateTime", "statusDetail"])
    got = await jobs.by_goals_export_job_id(job.id).get(RequestConfiguration(query_parameters=q))
    assert got is not None and got.id == job.id and got.status is not None
    assert got.goals_organization_id is None  # trimmed away
    assert got.last_action_date_time is None and got.status_detail is None
    assert "value" not in got.additional_data


async def test_twenty_concurrent_creates_give_one_job_and_nineteen_conflicts_naming_it(jobs):
    body = new_job()
    results = await asyncio.gather(*(jobs.post(body) for _ in range(20)), return_exceptions=True)
    winners = [r for r in results if isinstance(r, GoalsExportJob)]
    conflicts = [r for r in results if isinstance(r, ODataError)]
    assert len(winners) == 1 and len(conflicts) == 19, results
    for e in conflicts:
        assert e.response_status_code == 409
        assert e.error is not None and e.error.target == winners[0].id
        assert inner_code(e) == "exportJobAlreadyExists"


# --- quirks="documented": what SDK users would see if Graph sent the docs' example shapes -------


async def test_documented_shapes_leave_the_sdk_fields_empty(documented_emulator):
    client, http = make_client(f"{documented_emulator.url}/beta")
    try:
        jobs = client.employee_experience.goals.export_jobs
        body = new_job()
        job = await jobs.post(body)
        got = await jobs.by_goals_export_job_id(job.id).get()
        assert got is not None
        assert got.id is None and got.status is None and got.goals_organization_id is None
        assert got.additional_data["value"]["id"] == job.id  # everything landed here
        with pytest.raises(ODataError) as caught:
            await jobs.post(body)
        error = caught.value.error
        assert error is not None and error.inner_error is None
        assert error.additional_data["innererror"]["code"] == "exportJobAlreadyExists"
    finally:
        await http.aclose()
