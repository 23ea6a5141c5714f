"""Microsoft's beta Python SDK (msgraph-beta-sdk) over HTTPS to graph.microsoft.com through
the in-process recording proxy, with the emulator as upstream; then the same calls replayed
from the cassette with no upstream at all; then the SDK's RetryHandler against injected
faults: a 429's Retry-After honoured, and a lost create's 504 retried into a 409 naming the
job the first attempt made.

All traffic stays on 127.0.0.1: the client's base URL is Graph's, the proxy intercepts it
(its CA trusted through httpx ``verify=``) and sends it to the emulator, or to nothing in
replay. The SDK's slow first entity parse is done once by a module fixture.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
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
from kiota_http.kiota_client_factory import DEFAULT_CONNECTION_TIMEOUT, DEFAULT_REQUEST_TIMEOUT
from kiota_http.middleware import RetryHandler
from kiota_http.middleware.options import RetryHandlerOption
from msgraph_beta import GraphServiceClient
from msgraph_beta.generated.employee_experience.goals.export_jobs.export_jobs_request_builder import (
    ExportJobsRequestBuilder,
)
from msgraph_beta.generated.models.goals_export_job import GoalsExportJob
from msgraph_beta.generated.models.long_running_operation_status import LongRunningOperationStatus
from msgraph_beta.generated.models.o_data_errors.o_data_error import ODataError
from msgraph_beta.graph_request_adapter import GraphRequestAdapter
from msgraph_beta.graph_request_adapter import options as graph_options
from msgraph_core import APIVersion, GraphClientFactory

from exportjobs.addons.cassette import load_cassette
from exportjobs.simulator.emulator.app import EmulatorConfig
from tests.support.emulator import new_pair
from tests.support.proxy import ConnectSpy, Tripwire

GRAPH_BETA = "https://graph.microsoft.com/beta"
Succeeded = LongRunningOperationStatus.Succeeded


class StaticTokenProvider(AccessTokenProvider):
    """A fixed token for graph.microsoft.com only."""

    def __init__(self) -> None:
        self._validator = AllowedHostsValidator(["graph.microsoft.com"])

    async def get_authorization_token(self, uri: str, additional_authentication_context: Any = None) -> str:
        return "opaque-test-token" if self._validator.is_url_host_valid(uri) else ""

    def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
        return self._validator


def sdk_client(proxy) -> tuple[ExportJobsRequestBuilder, httpx.AsyncClient]:
    """The SDK's client with its default middleware, at Graph's URL, through ``proxy``."""
    auth = BaseBearerTokenAuthenticationProvider(StaticTokenProvider())
    http = httpx.AsyncClient(proxy=proxy.url, verify=str(proxy.ca_cert), trust_env=False,
                             timeout=httpx.Timeout(DEFAULT_REQUEST_TIMEOUT, connect=DEFAULT_CONNECTION_TIMEOUT))
    http = GraphClientFactory.create_with_default_middleware(
        api_version=APIVersion.beta, client=http, options=dict(graph_options))
    adapter = GraphRequestAdapter(auth, client=http)
    adapter.base_url = GRAPH_BETA
    return GraphServiceClient(request_adapter=adapter).employee_experience.goals.export_jobs, http


def retrying(**kwargs: Any) -> RequestConfiguration:
    return RequestConfiguration(options=[RetryHandlerOption(**kwargs)])


@pytest.fixture(scope="module", autouse=True)
def sdk_warm() -> None:
    """The SDK's slow first parse (the whole model tree's imports), once, outside any test."""
    GoalsExportJob().get_field_deserializers()


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    return EmulatorConfig(start_after=1.0, run_for=1.0)


@pytest.fixture
def no_backoff(monkeypatch):
    """The RetryHandler's backoff without Retry-After (0.25 s + up to 1 s of jitter) made 0;
    a Retry-After it is given is still honoured as sent."""
    monkeypatch.setattr(RetryHandler, "_get_delay_time_exp_backoff", lambda self, n, d: 0.0)


async def session(jobs: ExportJobsRequestBuilder, pair: dict[str, str]) -> dict[str, Any]:
    """Create, conflict, list, poll until succeeded, content: what a user's code reads."""
    body = GoalsExportJob(goals_organization_id=pair["goalsOrganizationId"],
                          explorer_view_id=pair["explorerViewId"])
    job = await jobs.post(body)
    assert job is not None and job.id
    with pytest.raises(ODataError) as conflict:
        await jobs.post(body)
    e = conflict.value
    assert e.response_status_code == 409 and e.error is not None
    assert e.error.code == "notAllowed" and e.error.target == job.id
    assert e.error.inner_error is not None
    assert e.error.inner_error.additional_data.get("code") == "exportJobAlreadyExists"
    assert e.response_headers.get("location").endswith(f"/exportJobs/{job.id}")
    query = ExportJobsRequestBuilder.ExportJobsRequestBuilderGetQueryParameters(
        filter=f"goalsOrganizationId eq '{pair['goalsOrganizationId']}'")
    listed = await jobs.get(RequestConfiguration(query_parameters=query))
    assert listed is not None and [j.id for j in listed.value or []] == [job.id]
    item = jobs.by_goals_export_job_id(job.id)
    polls = 0
    while (got := await item.get()) is not None and got.status != Succeeded:
        polls += 1
        assert polls < 50, "the job never succeeded"
        await asyncio.sleep(0.2)
    content = await item.content.get()
    assert content
    return {"job": job.id, "status": got.status, "polls": polls, "content": content,
            "conflict_inner": e.error.inner_error}


async def test_the_sdk_records_through_the_proxy_and_replays_with_no_upstream(
        emulator, proxies, tmp_path):
    cassette = str(tmp_path / "sdk.yaml")
    recorder = await proxies("record", cassette, emulator.url)
    jobs, http = sdk_client(recorder)
    pair = new_pair()
    recorded = await session(jobs, pair)
    await http.aclose()
    await recorder.close()
    assert recorded["status"] == Succeeded and recorded["polls"] >= 1
    # create, 409, list, every poll, content
    assert len(load_cassette(cassette).interactions) == 3 + recorded["polls"] + 1 + 1

    async with Tripwire() as tripwire:  # replay's upstream: any connection would be counted
        spy = ConnectSpy(block=True)
        player = await proxies("replay", cassette, tripwire.url, extra_addons=[spy])
        jobs, http = sdk_client(player)
        replayed = await session(jobs, pair)
        await http.aclose()
        assert tripwire.accepts == 0 and spy.attempts == []
    assert {k: replayed[k] for k in ("job", "status", "polls", "content")} == \
        {k: recorded[k] for k in ("job", "status", "polls", "content")}
    # The replayed 409's inner error names this answer's ids, not the recording's.
    assert str(replayed["conflict_inner"].request_id) != str(recorded["conflict_inner"].request_id)


async def test_the_retry_handler_waits_out_an_injected_429s_retry_after(emulator, proxies, tmp_path, no_backoff):
    cassette = str(tmp_path / "throttled.yaml")
    proxy = await proxies("record", cassette, emulator.url, faults="create:429(1s)#1")
    jobs, http = sdk_client(proxy)
    pair = new_pair()
    job = await jobs.post(GoalsExportJob(goals_organization_id=pair["goalsOrganizationId"],
                                         explorer_view_id=pair["explorerViewId"]),
                          retrying(delay=0, max_retries=2))
    await http.aclose()
    await proxy.close()
    assert job is not None and job.id
    throttled, created = load_cassette(cassette).interactions
    assert throttled["injected"]["status"] == 429 and throttled["response"]["status"] == 429
    assert created["response"]["status"] == 201
    headers = {k.lower(): v for k, v in created["request"]["headers"]}
    assert headers.get("retry-attempt") == "1"
    answered = throttled["started"] + throttled["duration"]
    assert created["started"] - answered >= 1.0, "the retry went out inside Retry-After"


async def test_a_lost_create_retried_by_the_sdk_gets_a_409_for_its_own_job(
        emulator, proxies, tmp_path, no_backoff):
    cassette = str(tmp_path / "lost.yaml")
    proxy = await proxies("record", cassette, emulator.url, faults="create:lost(504)#1")
    jobs, http = sdk_client(proxy)
    pair = new_pair()
    body = GoalsExportJob(goals_organization_id=pair["goalsOrganizationId"],
                          explorer_view_id=pair["explorerViewId"])
    with pytest.raises(ODataError) as conflict:
        await jobs.post(body, retrying(delay=0, max_retries=2))
    e = conflict.value
    assert e.response_status_code == 409 and e.error is not None
    assert e.error.inner_error is not None
    assert e.error.inner_error.additional_data.get("code") == "exportJobAlreadyExists"
    # The recipe: adopt the job the 409 names; it is the one the lost create made.
    adopted = await jobs.by_goals_export_job_id(e.error.target).get()
    await http.aclose()
    await proxy.close()
    lost, retried, read = load_cassette(cassette).interactions
    assert lost["lost"]["answer"] == "504" and lost["response"]["status"] == 201
    assert lost["response"]["json"]["id"] == e.error.target == adopted.id
    assert e.response_headers.get("location").endswith(f"/exportJobs/{adopted.id}")
    assert adopted.goals_organization_id == pair["goalsOrganizationId"]
    retry_headers = {k.lower(): v for k, v in retried["request"]["headers"]}
    assert retry_headers.get("retry-attempt") == "1" and retried["response"]["status"] == 409
    assert read["response"]["status"] == 200
    assert Path(cassette).exists()
