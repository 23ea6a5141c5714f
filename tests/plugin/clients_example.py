"""Run by tests/plugin/test_pytest_plugin.py in a separate pytest: the clients the plugin's
environment is for (urllib, aiohttp with trust_env, the Graph SDK), from sync and async
tests, with the default cassette names of a parametrized test in a class."""

from __future__ import annotations

import json
import os
import urllib.request
from typing import Any

import aiohttp
import pytest

from exportjobs.simulator.emulator.app import EmulatorConfig

GRAPH_BETA = "https://graph.microsoft.com/beta"
GRAPH = GRAPH_BETA + "/employeeExperience/goals/exportJobs"
HEADERS = {"Authorization": "Bearer example-token"}
PAIR = {"goalsOrganizationId": "55555555-5555-4555-8555-555555555555",
        "explorerViewId": "66666666-6666-4666-8666-666666666666"}
BEFORE = os.environ.get("HTTPS_PROXY")


@pytest.fixture
def exportjobs_emulator_config() -> EmulatorConfig:
    return EmulatorConfig(start_after=0.1, run_for=0.2)


class TestClients:
    @pytest.mark.parametrize("case", ["a/b"])
    def test_urllib(self, exportjobs_proxy, case):
        exportjobs_proxy.apply_env()
        request = urllib.request.Request(GRAPH, method="POST", data=json.dumps(PAIR).encode(),
                                         headers={**HEADERS, "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 201

    def test_env_is_restored_after_the_test(self):
        assert os.environ.get("HTTPS_PROXY") == BEFORE


@pytest.mark.asyncio
async def test_aiohttp_trusting_env(exportjobs_proxy):
    exportjobs_proxy.apply_env()
    async with aiohttp.ClientSession(trust_env=True) as session:
        async with session.post(GRAPH, json=PAIR, headers=HEADERS,
                                ssl=exportjobs_proxy.ssl_context()) as response:
            assert response.status == 201


@pytest.mark.asyncio
async def test_async_control_of_the_emulator(exportjobs_emulator):
    async with exportjobs_emulator.async_control() as control:
        moved = await control.advance_clock(60)
    assert moved.clock_offset_s == 60
    assert exportjobs_emulator.control.info().clock_offset_s == 60  # the sync client, same emulator


@pytest.mark.asyncio
async def test_graph_sdk_from_env(exportjobs_proxy):
    msgraph = pytest.importorskip("msgraph_beta")
    from kiota_abstractions.authentication import (
        AccessTokenProvider,
        AllowedHostsValidator,
        BaseBearerTokenAuthenticationProvider,
    )
    from msgraph_beta.generated.models.goals_export_job import GoalsExportJob
    from msgraph_beta.graph_request_adapter import GraphRequestAdapter

    class Token(AccessTokenProvider):
        async def get_authorization_token(self, uri: str, context: Any = None) -> str:
            return "example-token"

        def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
            return AllowedHostsValidator(["graph.microsoft.com"])

    exportjobs_proxy.apply_env()  # before the SDK makes its httpx client, which reads it then
    adapter = GraphRequestAdapter(BaseBearerTokenAuthenticationProvider(Token()))
    adapter.base_url = GRAPH_BETA
    jobs = msgraph.GraphServiceClient(request_adapter=adapter).employee_experience.goals.export_jobs
    job = await jobs.post(GoalsExportJob(goals_organization_id=PAIR["goalsOrganizationId"],
                                         explorer_view_id=PAIR["explorerViewId"]))
    assert job is not None and job.id
    got = await jobs.by_goals_export_job_id(job.id).get()
    assert got is not None and got.id == job.id
