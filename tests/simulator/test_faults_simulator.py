"""The simulator's side: request retries and polls honour Retry-After, scenarios assert it,
and the shipped throttling, lost-response and gated-race scenarios pass through a proxy with faults or the gate
(and fail when the thing they check is broken)."""

from __future__ import annotations

import itertools
import textwrap
from pathlib import Path

import pytest

from exportjobs.simulator.emulator.app import EmulatorConfig, start_emulator
from exportjobs.simulator.expectations import check_retry_after
from exportjobs.simulator.runner import run_scenario
from exportjobs.simulator.scenario import ScenarioError, load_scenario, parse_scenario

SCENARIOS = Path(__file__).parent.parent.parent / "scenarios"
GRAPH = "http://graph.microsoft.com"


def broken(result) -> list[str]:
    return [f"{s.step.name}: {c.what}: {c.actual}" for s in result.steps for c in s.checks if not c.ok]


@pytest.fixture
async def quick_emulator():
    running = await start_emulator(EmulatorConfig(start_after=0.3, run_for=0.3))
    try:
        yield running
    finally:
        await running.close()


# --- the throttling scenario ---------------------------------------------------------------


async def test_the_throttling_scenario_waits_out_every_retry_after(quick_emulator, proxies):
    proxy = await proxies("passthrough", None, quick_emulator.url,
                          faults="create:429(1s)#1, get:503(1s)#1+2")
    result = await run_scenario(load_scenario(SCENARIOS / "throttling.yaml"), target=GRAPH,
                                proxy=proxy.url)
    assert result.ok, broken(result)
    create, poll = result.steps
    assert [s["status"] for s in create.details["sends"]] == [429, 201]
    assert [s["status"] for s in poll.details["sends"]][:3] == [503, 503, 200]
    held = [c for s in result.steps for c in s.checks if c.what == "honours Retry-After"]
    assert len(held) == 2 and all(c.ok and "waits held" in c.actual for c in held)
    assert proxy.faults.injected == 3  # the plan's three, and no enforcement 429s


IMPATIENT = """\
name: impatient
variables: {org: {generate: guid}}
steps:
  - name: create, retrying at once
    request:
      method: POST
      path: /beta/employeeExperience/goals/exportJobs
      json: {goalsOrganizationId: "${org}", explorerViewId: "${org}"}
    retry: {max_retries: 2, max_retry_after: 0}
    expect: {status: 201, honours_retry_after: true}
"""


async def test_a_client_that_does_not_wait_is_throttled_again_and_the_check_says_so(emulator, proxies):
    proxy = await proxies("passthrough", None, emulator.url, faults="create:429(2s)#1")
    result = await run_scenario(parse_scenario(IMPATIENT, "impatient.yaml"), target=GRAPH, proxy=proxy.url)
    assert not result.ok
    (step,) = result.steps
    assert [s["status"] for s in step.details["sends"]] == [429, 429, 429]
    problems = broken(result)
    assert any("status: 429" in p for p in problems), problems
    assert any("honours Retry-After: 2 of 2 sent early" in p for p in problems), problems


def test_the_retry_after_check_counts_from_the_answer():
    sends = [{"sent_s": 0.0, "answered_s": 0.01, "retry_after": 1.0},
             {"sent_s": 1.02, "answered_s": 1.03, "retry_after": None},
             {"sent_s": 1.5, "answered_s": 1.6, "retry_after": None}]
    assert check_retry_after(sends).ok
    sends[1]["sent_s"] = 0.9  # 110 ms inside the window
    check = check_retry_after(sends)
    assert not check.ok and "try 2: 110 ms before Retry-After 1 s ended" in check.actual
    assert check_retry_after(sends[1:]).actual == "no Retry-After was asked for"


async def test_request_retry_without_retry_after_waits_the_interval_and_stops_at_max(emulator, proxies):
    text = IMPATIENT.replace("max_retries: 2, max_retry_after: 0", "max_retries: 2, interval: 0.2")
    proxy = await proxies("passthrough", None, emulator.url, faults="create:503@1")
    result = await run_scenario(parse_scenario(text, "t.yaml"), target=GRAPH, proxy=proxy.url)
    (step,) = result.steps
    sends = step.details["sends"]
    assert [s["status"] for s in sends] == [503, 503, 503]
    gaps = [b["sent_s"] - a["answered_s"] for a, b in itertools.pairwise(sends)]
    assert all(g >= 0.19 for g in gaps), gaps
    assert step.details["tries"] == 3 and step.details["waited_s"] == pytest.approx(0.4)


@pytest.mark.parametrize("fragment, says", [
    ("burst: {count: 2, request: {path: /x}}\n    retry: {}", "'retry' applies to request steps only"),
    ("poll: {request: {path: /x}, until: {status: 200}}\n    retry: {}", "a poll already waits Retry-After"),
    ("burst: {count: 2, request: {path: /x}}\n    expect: {honours_retry_after: true}",
     "'honours_retry_after' applies to request and poll steps"),
    ("burst: {count: 2, release: last-byte, spacing: 0.1, request: {path: /x}}",
     "'spacing' sends copies one after another"),
])
def test_misplaced_retry_keys_are_errors_with_a_line(fragment, says):
    text = f"name: t\nsteps:\n  - name: s\n    {fragment}\n"
    with pytest.raises(ScenarioError) as info:
        parse_scenario(textwrap.dedent(text), "t.yaml")
    assert any(says in p.message and p.line >= 3 for p in info.value.problems), info.value.problems


# --- the lost-response scenario --------------------------------------------------------------


async def test_the_lost_response_scenario_meets_its_own_job_through_a_proxy_that_loses_the_201(
        emulator, proxies):
    proxy = await proxies("passthrough", None, emulator.url, faults="create:lost(504)#1")
    result = await run_scenario(load_scenario(SCENARIOS / "lost-response.yaml"), target=GRAPH,
                                proxy=proxy.url)
    assert result.ok, broken(result)
    assert [s["status"] for s in result.steps[0].details["sends"]] == [504, 409]
    assert proxy.faults.injected == 1


async def test_the_lost_response_scenario_fails_when_the_lost_create_never_reached_the_service(
        emulator, proxies):
    """A plain 504 (the request never reaches the service) is not a lost response: the retry
    then creates the job, and the scenario says so."""
    proxy = await proxies("passthrough", None, emulator.url, faults="create:504#1")
    result = await run_scenario(load_scenario(SCENARIOS / "lost-response.yaml"), target=GRAPH,
                                proxy=proxy.url)
    assert not result.ok
    assert [s["status"] for s in result.steps[0].details["sends"]] == [504, 201]
    assert any("status" in p and "201" in p for p in broken(result)), broken(result)


# --- the gated-race scenario -----------------------------------------------------------------


async def run_gated_race(proxies, unsafe_ms: float, gate: int):
    emulator = await start_emulator(EmulatorConfig(unsafe_race_window_ms=unsafe_ms))
    try:
        proxy = await proxies("passthrough", None, emulator.url, gate=gate, gate_timeout=10)
        result = await run_scenario(load_scenario(SCENARIOS / "gated-race.yaml"), target=GRAPH,
                                    proxy=proxy.url)
        await proxy.close()
    finally:
        await emulator.close()
    return result, proxy


async def test_the_gated_race_scenario_passes_through_the_gate(proxies):
    result, proxy = await run_gated_race(proxies, 0, gate=10)
    assert result.ok, broken(result)
    (report,) = proxy.gate.reports
    assert (report.held, report.reason, report.statuses) == (10, "count", {"201": 1, "409": 9})
    assert result.steps[0].details["release"] == "none, 50 ms apart"


async def test_the_gated_race_scenario_catches_a_racy_service_only_through_the_gate(proxies):
    alone, _ = await run_gated_race(proxies, 30, gate=0)
    assert alone.ok, "50 ms apart, the creates never race: the scenario needs the gate"
    gated, _ = await run_gated_race(proxies, 30, gate=10)
    assert not gated.ok
    assert any("exactly-one-201" in p for p in broken(gated)), broken(gated)
