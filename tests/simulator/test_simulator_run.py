"""Running scenarios against real servers on 127.0.0.1: every step kind and release mode."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from aiohttp import web

from exportjobs.simulator.emulator.app import EmulatorConfig, start_emulator
from exportjobs.simulator.runner import RunAborted, run_scenario
from exportjobs.simulator.scenario import load_scenario
from tests.support.scenarios import RACE, broken, scenario

SCENARIOS = Path(__file__).parent.parent.parent / "scenarios"
JOBS = "/beta/employeeExperience/goals/exportJobs"



@pytest.mark.parametrize("release", ["none", "barrier", "last-byte"])
async def test_every_release_mode_sees_one_201_against_the_emulator(emulator, release):
    result = await run_scenario(scenario(RACE.replace("RELEASE", release)), target=emulator.url)
    assert result.ok, broken(result)
    burst = result.steps[0]
    assert dict(burst.stats.statuses) == {201: 1, 409: 29}
    assert burst.details["release"] == release
    assert burst.details["send_spread_ms"] >= 0
    assert "arrival_spread_ms" in burst.details  # the emulator's control API was found
    assert len(result.variables["job_id"]) > 8  # saved from the winner, used by step 2


async def test_the_race_scenario_fails_against_an_unsafe_server_naming_the_invariant():
    """Deterministic: a last-byte release lands well inside a 200 ms check-insert gap."""
    unsafe = await start_emulator(EmulatorConfig(unsafe_race_window_ms=200))
    try:
        result = await run_scenario(load_scenario(SCENARIOS / "duplicate-create-race.yaml"),
                                    target=unsafe.url)
    finally:
        await unsafe.close()
    assert not result.ok
    race = result.steps[0]
    assert race.stats.statuses[201] > 1
    names = {c.what for c in race.checks if not c.ok}
    assert {"exactly-one-201", "count of 201"} <= names
    # Steps that needed the single winner's id are skipped, not sent with a hole in them.
    assert result.steps[1].skipped == (
        "needs ${job_id} and ${job_url}, which an earlier step did not save")


async def test_shipped_scenarios_pass_against_the_emulator():
    fast = EmulatorConfig(start_after=0.2, run_for=0.3)
    emulator = await start_emulator(fast)
    try:
        for name in ("duplicate-create-race", "lifecycle", "validation-errors"):
            result = await run_scenario(load_scenario(SCENARIOS / f"{name}.yaml"), target=emulator.url)
            assert result.ok, (name, broken(result))
    finally:
        await emulator.close()


async def test_broken_expectations_say_what_was_expected_and_what_came_back(emulator):
    result = await run_scenario(scenario(f"""\
        name: wrong
        steps:
          - request: {{path: {JOBS}/not-a-key}}
            expect:
              status: 404
              json: {{error.code: notFound, error.target: {{present: true}}}}
        """), target=emulator.url)
    checks = {c.what: c for c in result.steps[0].checks}
    assert (checks["status"].ok, checks["status"].expected, checks["status"].actual) == (False, "404", "400")
    assert checks["json error.code"].actual == "'badRequest'"
    assert checks["json error.target"].actual == "nothing (absent)"


class _RetryAfterServer:
    """A peer that asks for Retry-After: 1 twice, then answers done; notes request times."""

    def __init__(self) -> None:
        self.times: list[float] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.times.append(time.monotonic())
        if len(self.times) < 3:
            return web.json_response({"value": {"status": "running"}}, headers={"Retry-After": "1"})
        return web.json_response({"value": {"status": "succeeded"}})


@pytest.fixture
async def retry_after_server():
    peer = _RetryAfterServer()
    app = web.Application()
    app.router.add_get("/job", peer.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    peer.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield peer
    await runner.cleanup()


POLL = """\
name: poll
steps:
  - name: poll
    poll:
      request: {path: /job}
      until: {json: {value.status: succeeded}}
      interval: 0.05
      max_retry_after: CAP
      timeout: TIMEOUT
"""


async def test_poll_honours_retry_after(retry_after_server):
    text = POLL.replace("CAP", "5").replace("TIMEOUT", "10")
    result = await run_scenario(scenario(text), target=retry_after_server.url)
    assert result.ok, broken(result)
    gaps = [b - a for a, b in zip(retry_after_server.times, retry_after_server.times[1:])]
    assert len(gaps) == 2 and all(g >= 0.99 for g in gaps), gaps
    assert result.steps[0].details["honoured_retry_after"] is True


async def test_poll_cap_is_reported_when_retry_after_is_cut_short(retry_after_server):
    text = POLL.replace("CAP", "0.1").replace("TIMEOUT", "10")
    result = await run_scenario(scenario(text), target=retry_after_server.url)
    assert result.steps[0].details["honoured_retry_after"] is False
    assert max(b - a for a, b in zip(retry_after_server.times, retry_after_server.times[1:])) < 0.9


async def test_poll_times_out_with_a_clear_check(retry_after_server):
    text = POLL.replace("CAP", "5").replace("TIMEOUT", "0.5")
    result = await run_scenario(scenario(text), target=retry_after_server.url)
    assert not result.ok
    check = result.steps[0].checks[0]
    assert check.what == "poll until" and "not within 0.5 s" in check.actual


async def test_pause_waits(emulator):
    started = time.monotonic()
    result = await run_scenario(scenario("name: p\nsteps:\n  - pause: 0.3\n"), target=emulator.url)
    assert result.ok and time.monotonic() - started >= 0.3


LOAD = f"""\
name: load
variables: {{org: {{generate: guid}}}}
steps:
  - name: load
    load:
      duration: 1
      MODEL
      max_requests: 400
      mix:
        - weight: 3
          request: {{path: {JOBS}}}
        - weight: 1
          request:
            method: POST
            path: {JOBS}
            json: {{goalsOrganizationId: "${{org}}", explorerViewId: "${{org}}"}}
      thresholds: THRESHOLDS
"""


async def test_load_with_concurrency_counts_every_request_and_mixes_by_weight(emulator):
    text = LOAD.replace("MODEL", "concurrency: 8").replace("THRESHOLDS", "{error_rate: 0, p99_ms: 5000}")
    result = await run_scenario(scenario(text), target=emulator.url)
    assert result.ok, broken(result)
    stats = result.steps[0].stats
    assert stats.total == 400  # bounded by max_requests, well inside the 1 s
    assert stats.statuses[200] > stats.statuses[409] > 0  # weights 3:1
    assert stats.statuses[201] == 1  # the first create; every later one conflicts


async def test_load_at_a_rate_starts_about_rate_times_duration(emulator):
    text = LOAD.replace("MODEL", "rate: 100").replace("THRESHOLDS", "{error_rate: 0}")
    result = await run_scenario(scenario(text), target=emulator.url)
    assert 85 <= result.steps[0].stats.total <= 101


async def test_load_thresholds_break_with_figures(emulator):
    text = LOAD.replace("MODEL", "concurrency: 4").replace("THRESHOLDS", "{p50_ms: 0.0001, min_rps: 1000000}")
    result = await run_scenario(scenario(text), target=emulator.url)
    failed = {c.what: c for c in result.steps[0].checks if not c.ok}
    assert set(failed) == {"p50_ms", "min_rps"}
    assert failed["p50_ms"].expected == "<= 0.0001 ms" and failed["p50_ms"].actual.endswith(" ms")


async def test_unreachable_target_aborts_before_sending(unused_tcp_port):
    with pytest.raises(RunAborted) as info:
        await run_scenario(scenario(RACE.replace("RELEASE", "none")),
                           target=f"http://127.0.0.1:{unused_tcp_port}")
    assert info.value.exit_code == 3
    assert f"127.0.0.1:{unused_tcp_port}" in str(info.value)


async def test_token_from_the_environment_is_used(emulator, monkeypatch):
    from exportjobs.simulator.emulator.auth import READ, fake_token

    monkeypatch.setenv("GRAPH_TOKEN", fake_token(READ))
    text = f"""\
        name: env
        auth: {{token_env: GRAPH_TOKEN}}
        variables: {{org: {{generate: guid}}}}
        steps:
          - request:
              method: POST
              path: {JOBS}
              json: {{goalsOrganizationId: "${{org}}", explorerViewId: "${{org}}"}}
            expect: {{status: 403, json: {{error.code: Authorization_RequestDenied}}}}
        """
    result = await run_scenario(scenario(text), target=emulator.url)
    assert result.ok, broken(result)
    monkeypatch.delenv("GRAPH_TOKEN")
    with pytest.raises(RunAborted) as info:
        await run_scenario(scenario(text), target=emulator.url)
    assert info.value.exit_code == 2 and "GRAPH_TOKEN" in str(info.value)


async def test_the_embedded_emulator_is_used_without_a_target():
    result = await asyncio.wait_for(run_scenario(scenario(RACE.replace("RELEASE", "last-byte"))), 30)
    assert result.ok, broken(result)
    assert result.target.startswith("http://127.0.0.1:")
