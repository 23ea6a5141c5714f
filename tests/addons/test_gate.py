"""The race gate on real sockets: the count and timeout paths, its report, and proof that
it is the gate that turns unsynchronised clients into a race (a broken gate is caught).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import aiohttp
import pytest

from exportjobs.addons.gate import RaceGate
from exportjobs.simulator.emulator.app import EmulatorConfig, start_emulator
from tests.support.proxy import COLLECTION, ProxiedClient, Result, auth_headers, race_problem


def new_pair() -> dict[str, str]:
    return {"goalsOrganizationId": str(uuid.uuid4()), "explorerViewId": str(uuid.uuid4())}


async def spaced_creates(proxy, pair: dict[str, str], n: int, spacing: float) -> list[Result]:
    """``n`` creates started ``spacing`` seconds apart, none waiting for another."""
    async with aiohttp.ClientSession() as session:
        c = ProxiedClient(session, proxy.url, "http://graph.microsoft.com")

        async def one(i: int) -> Result:
            await asyncio.sleep(i * spacing)
            return await c.call("POST", COLLECTION, json=pair, headers=auth_headers())

        return list(await asyncio.gather(*(one(i) for i in range(n))))


async def reports(gate: RaceGate, n: int = 1, within: float = 5.0) -> list:
    deadline = time.monotonic() + within
    while len(gate.reports) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    return gate.reports


async def test_the_count_path_releases_together_and_reports(emulator, proxies, caplog):
    caplog.set_level(logging.INFO, logger="exportjobs.proxy")
    proxy = await proxies("passthrough", None, emulator.url, gate=5, gate_timeout=20)
    pair = new_pair()
    started = time.monotonic()
    # Arrivals 0.2 s apart, so "released together" (a fifth of the arrival spread) leaves
    # room for a loaded machine.
    results = await spaced_creates(proxy, pair, 5, 0.2)
    assert time.monotonic() - started < 8, "the fifth arrival must release the gate, not the timeout"
    assert race_problem(results) is None
    (report,) = await reports(proxy.gate)
    assert (report.held, report.reason, report.statuses) == (5, "count", {"201": 1, "409": 4})
    assert report.organization == pair["goalsOrganizationId"]
    # Sent 800 ms apart; on a loaded machine the first may reach the proxy a little late,
    # so the bound is three intervals: the first was still held until the fifth arrived.
    assert report.held_ms >= 600 and report.arrival_spread_ms >= 600
    assert abs(report.held_ms - report.arrival_spread_ms) < 100
    assert report.release_spread_ms < report.arrival_spread_ms / 5
    assert report.upstream_arrival_spread_ms is not None
    assert report.upstream_arrival_spread_ms < report.arrival_spread_ms / 5
    gate_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("GATE ")]
    assert len(gate_lines) == 1 and "released 5 (count reached)" in gate_lines[0]
    assert gate_lines[0].endswith("outcome 201x1 409x4")


async def test_the_timeout_path_releases_what_it_holds(emulator, proxies):
    proxy = await proxies("passthrough", None, emulator.url, gate=5, gate_timeout=0.4)
    started = time.monotonic()
    results = await spaced_creates(proxy, new_pair(), 2, 0.05)
    took = time.monotonic() - started
    assert sorted(r.status for r in results) == [201, 409]
    assert 0.4 <= took < 5, took  # the upper bound only rules out waiting forever
    (report,) = await reports(proxy.gate)
    assert (report.held, report.reason) == (2, "timeout")
    assert 390 <= report.held_ms < 4000


async def test_different_pairs_and_other_requests_are_not_held_together(emulator, proxies):
    proxy = await proxies("passthrough", None, emulator.url, gate=2, gate_timeout=10)
    a, b = new_pair(), new_pair()
    async with aiohttp.ClientSession() as session:
        c = ProxiedClient(session, proxy.url, "http://graph.microsoft.com")
        listed = await c.call("GET", COLLECTION, headers=auth_headers())  # not a create: not held
        bad = await c.call("POST", COLLECTION, json={"x": 1}, headers=auth_headers())  # no pair
        assert (listed.status, bad.status) == (200, 400)
        got = await asyncio.gather(*(c.call("POST", COLLECTION, json=p, headers=auth_headers())
                                     for p in (a, b, a, b)))
    assert sorted(r.status for r in got) == [201, 201, 409, 409]
    held = await reports(proxy.gate, 2)
    assert sorted(r.held for r in held) == [2, 2] and {r.reason for r in held} == {"count"}


# --- the gate is what makes the race -------------------------------------------------------


async def created_count(upstream_window_ms: float, proxies, gate: int) -> int:
    """How many 201s ten creates 60 ms apart get from a service whose duplicate check and
    insert are ``upstream_window_ms`` apart, through a proxy gating ``gate`` of them."""
    emulator = await start_emulator(EmulatorConfig(unsafe_race_window_ms=upstream_window_ms))
    try:
        proxy = await proxies("passthrough", None, emulator.url, gate=gate, gate_timeout=10)
        results = await spaced_creates(proxy, new_pair(), 10, 0.06)
        await proxy.close()
    finally:
        await emulator.close()
    return sum(1 for r in results if r.status == 201)


async def test_the_gate_turns_unsynchronised_clients_into_a_race(proxies):
    # Without the gate the creates are too far apart to race even a broken service...
    assert await created_count(30, proxies, gate=0) == 1
    # ...with it they reach the service together, and its 30 ms window lets several through.
    assert await created_count(30, proxies, gate=10) > 1


async def test_a_gate_that_does_not_hold_is_caught(proxies, monkeypatch):
    async def passes_straight_through(self, flow) -> None:
        return None

    monkeypatch.setattr(RaceGate, "request", passes_straight_through)
    assert await created_count(30, proxies, gate=10) == 1  # the check above would fail


@pytest.mark.parametrize("argv, says", [
    (["--gate", "1"], "--gate: expected 2 or more"),
    (["--gate", "-3"], "--gate: expected 2 or more"),
    (["--gate", "3", "--gate-timeout", "0"], "--gate-timeout: must be more than 0"),
    (["--gate", "3", "--gate-timeout", "inf"], "--gate-timeout: must be more than 0"),
    (["--gate", "3", "--gate-timeout", "nan"], "--gate-timeout: must be more than 0"),
])
def test_bad_gate_flags_exit_2(argv, says, capsys):
    """The addon checks the value (the flag is derived from its declaration) and the error
    names the flag: one line, exit 2, nothing started."""
    from exportjobs.cli import main

    assert main(["proxy", "--mode", "passthrough", "--port", "0", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"exportjobs proxy: {says}") and err.count("\n") == 1, err
