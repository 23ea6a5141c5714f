"""Faults through the in-process proxy on real sockets: every kind, the seed, Retry-After
enforcement, every mode, and injected answers kept out of replay.

Each guarantee's test is shown to fail against a deliberately broken proxy too.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time

import aiohttp
import pytest

from exportjobs.addons.cassette import load_cassette
from exportjobs.addons.faults import FAULT_HEADER
from exportjobs.simulator.emulator.app import EmulatorConfig, start_emulator
from tests.support.proxy import COLLECTION, ConnectSpy, ProxiedClient, auth_headers

PAIR = {"goalsOrganizationId": "55555555-5555-4555-8555-555555555555",
        "explorerViewId": "66666666-6666-4666-8666-666666666666"}


def client(session: aiohttp.ClientSession, proxy, scheme: str = "http", ssl_context=None) -> ProxiedClient:
    return ProxiedClient(session, proxy.url, f"{scheme}://graph.microsoft.com", ssl_context)


async def arrivals(emulator) -> int:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{emulator.url}/_emulator/arrivals") as r:
            return len((await r.json())["arrivals"])


# --- each fault kind ---------------------------------------------------------------------


@pytest.mark.parametrize("rule, status, code, retry_after", [
    ("create:429#1", 429, "TooManyRequests", "1"),
    ("create:429(3s)#1", 429, "TooManyRequests", "3"),
    ("create:503(2s)#1", 503, "ServiceUnavailable", "2"),
    ("create:503#1", 503, "ServiceUnavailable", None),
    ("create:504#1", 504, "GatewayTimeout", None),
])
async def test_each_error_is_graph_shaped_and_never_reaches_the_service(
        emulator, proxies, rule, status, code, retry_after):
    proxy = await proxies("passthrough", None, emulator.url, faults=rule)
    async with aiohttp.ClientSession() as session:
        c = client(session, proxy)
        headers = {**auth_headers(), "client-request-id": "my-own-id-1"}
        got = await c.call("POST", COLLECTION, json=PAIR, headers=headers)
        assert got.status == status
        assert got.headers.get("Retry-After") == retry_after
        assert got.headers["client-request-id"] == "my-own-id-1"
        assert re.fullmatch(r"[0-9a-f-]{36}", got.headers["request-id"])
        assert got.headers["Date"].endswith(" GMT")
        assert got.headers["Content-Type"].startswith("application/json")
        error = got.json["error"]
        assert error["code"] == code and error["message"]
        assert error["innerError"]["request-id"] == got.headers["request-id"]
        assert error["innerError"]["client-request-id"] == "my-own-id-1"
        assert got.headers[FAULT_HEADER] == f"{status} rule 1"
        assert await arrivals(emulator) == 0, "an injected answer must not reach the service"
        if retry_after is None:  # nothing to wait for: the next create goes through
            assert (await c.call("POST", COLLECTION, json=PAIR, headers=auth_headers())).status == 201


async def test_latency_delays_matching_requests_only(emulator, proxies):
    proxy = await proxies("passthrough", None, emulator.url, faults="list:latency(1000ms)@1")
    async with aiohttp.ClientSession() as session:
        c = client(session, proxy)
        started = time.monotonic()
        listed = await c.call("GET", COLLECTION, headers=auth_headers())
        slow = time.monotonic() - started
        started = time.monotonic()
        created = await c.call("POST", COLLECTION, json=PAIR, headers=auth_headers())
        fast = time.monotonic() - started
    assert (listed.status, created.status) == (200, 201)
    assert slow >= 1.0 and fast < 0.5, (slow, fast)  # wide margin: CI machines are shared


# --- the seed ----------------------------------------------------------------------------


async def _statuses(emulator, proxies, seed: int) -> list[int]:
    proxy = await proxies("passthrough", None, emulator.url,
                          faults="list:503@0.5, list:latency(1ms)@0.5", fault_seed=seed)
    async with aiohttp.ClientSession() as session:
        c = client(session, proxy)
        out = [(await c.call("GET", COLLECTION, headers=auth_headers())).status for _ in range(24)]
    await proxy.close()
    return out


async def test_the_seed_makes_a_run_repeatable(emulator, proxies):
    first = await _statuses(emulator, proxies, 1234)
    again = await _statuses(emulator, proxies, 1234)
    other = await _statuses(emulator, proxies, 4321)
    assert first == again
    assert first != other
    assert 0 < first.count(503) < 24


async def test_the_seed_used_is_logged_so_a_run_can_be_repeated(emulator, proxies, caplog):
    caplog.set_level(logging.INFO, logger="exportjobs.proxy")
    proxy = await proxies("passthrough", None, emulator.url, faults="list:503@0.5")
    seed = proxy.faults.plan.seed
    assert any(f"(seed {seed})" in r.getMessage() for r in caplog.records)


# --- Retry-After enforcement -----------------------------------------------------------------


async def enforcement_problem(emulator, proxy) -> str | None:
    """None when a client coming back inside Retry-After is throttled again without the
    service seeing it, other kinds are not, and after the wait the request goes through."""
    async with aiohttp.ClientSession() as session:
        c = client(session, proxy)
        first = await c.call("POST", COLLECTION, json=PAIR, headers=auth_headers())
        if first.status != 429 or first.headers.get("Retry-After") != "1":
            return f"the plan's 429 did not come: {first.status}"
        early = await c.call("POST", COLLECTION, json=PAIR, headers=auth_headers())
        if early.status != 429 or early.headers.get(FAULT_HEADER) != "429 retry-after-window":
            return f"back inside Retry-After, got {early.status} instead of another 429"
        if early.headers.get("Retry-After") != "1":
            return f"the second 429 asked for {early.headers.get('Retry-After')} s, not the time left"
        if await arrivals(emulator):
            return "a request inside the window reached the service"
        other_kind = await c.call("GET", COLLECTION, headers=auth_headers())
        if other_kind.status != 200:
            return f"a list was throttled by a create's window: {other_kind.status}"
        await asyncio.sleep(1.05)
        late = await c.call("POST", COLLECTION, json=PAIR, headers=auth_headers())
        if late.status != 201:
            return f"after the wait the create got {late.status}"
    return None


async def test_retry_after_is_enforced(emulator, proxies):
    proxy = await proxies("passthrough", None, emulator.url, faults="create:429#1")
    assert await enforcement_problem(emulator, proxy) is None


async def test_the_enforcement_check_catches_a_proxy_that_forgets_the_window(emulator, proxies):
    class Forgetful(dict):
        def __setitem__(self, key, value) -> None:
            pass

    proxy = await proxies("passthrough", None, emulator.url, faults="create:429#1")
    proxy.faults.windows = Forgetful()
    problem = await enforcement_problem(emulator, proxy)
    assert problem is not None and "instead of another 429" in problem


async def test_windows_are_per_client_key(emulator, proxies):
    proxy = await proxies("passthrough", None, emulator.url, faults="create:429#1",
                          fault_client_header="x-client")
    async with aiohttp.ClientSession() as session:
        c = client(session, proxy)
        a = {**auth_headers(), "x-client": "a"}
        b = {**auth_headers(), "x-client": "b"}
        assert (await c.call("POST", COLLECTION, json=PAIR, headers=a)).status == 429
        assert (await c.call("POST", COLLECTION, json=PAIR, headers=a)).status == 429
        assert (await c.call("POST", COLLECTION, json=PAIR, headers=b)).status == 201


# --- every mode, the cassette and the console --------------------------------------------------


async def test_record_marks_injected_answers_and_replay_never_serves_them(proxies, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="exportjobs.proxy")
    emulator = await start_emulator(EmulatorConfig(start_after=60, run_for=60))
    cassette = tmp_path / "faults.yaml"
    recorder = await proxies("record", cassette, emulator.url,
                             faults="create:503(1s)#1, list:latency(20ms)#1")
    async with aiohttp.ClientSession() as session:
        c = client(session, recorder)
        assert (await c.call("POST", COLLECTION, json=PAIR, headers=auth_headers())).status == 503
        await asyncio.sleep(1.05)
        assert (await c.call("POST", COLLECTION, json=PAIR, headers=auth_headers())).status == 201
        assert (await c.call("GET", COLLECTION, headers=auth_headers())).status == 200
    await recorder.close()
    await emulator.close()
    docs = load_cassette(cassette).interactions
    assert [d["response"]["status"] for d in docs] == [503, 201, 200]
    assert docs[0]["injected"] == {"status": 503, "rule": 1, "text": "create:503(1s)#1",
                                   "kind": "create", "retry_after": 1}
    assert "injected" not in docs[1] and "injected" not in docs[2]
    assert docs[2]["injected_latency_ms"] == 20
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("FAULT  POST ") and " 503 ServiceUnavailable " in line
               and "injected 503 by rule 1" in line for line in lines), lines
    assert any(line.startswith("REC    GET ") and "+20ms latency injected" in line for line in lines)

    assert await replayed_first_create(proxies, cassette) == 201


async def replayed_first_create(proxies, cassette) -> int:
    """The status replay gives the first create: the service's 201, never the injected 503."""
    spy = ConnectSpy(block=True)
    player = await proxies("replay", cassette, extra_addons=[spy])
    async with aiohttp.ClientSession() as session:
        got = await client(session, player).call("POST", COLLECTION, json=PAIR, headers=auth_headers())
    await player.close()
    assert not spy.attempts
    return got.status


async def test_the_replay_check_catches_a_matcher_that_serves_injected_answers(
        proxies, tmp_path, monkeypatch):
    emulator = await start_emulator(EmulatorConfig(start_after=60, run_for=60))
    cassette = tmp_path / "faults.yaml"
    recorder = await proxies("record", cassette, emulator.url, faults="create:503#1")
    async with aiohttp.ClientSession() as session:
        c = client(session, recorder)
        assert (await c.call("POST", COLLECTION, json=PAIR, headers=auth_headers())).status == 503
        assert (await c.call("POST", COLLECTION, json=PAIR, headers=auth_headers())).status == 201
    await recorder.close()
    await emulator.close()
    import exportjobs.addons.matching

    monkeypatch.setattr(exportjobs.addons.matching, "INJECTED", "a key no interaction has")  # broken matcher
    assert await replayed_first_create(proxies, cassette) == 503


async def test_faults_over_a_replay_answer_first_and_leave_the_recording_alone(proxies, tmp_path):
    emulator = await start_emulator(EmulatorConfig(start_after=60, run_for=60))
    cassette = tmp_path / "plain.yaml"
    recorder = await proxies("record", cassette, emulator.url)
    async with aiohttp.ClientSession() as session:
        assert (await client(session, recorder).call("POST", COLLECTION, json=PAIR,
                                                     headers=auth_headers())).status == 201
    await recorder.close()
    await emulator.close()
    spy = ConnectSpy(block=True)
    player = await proxies("replay", cassette, faults="create:504#1", miss_policy="error",
                           extra_addons=[spy])
    async with aiohttp.ClientSession() as session:
        c = client(session, player)
        assert (await c.call("POST", COLLECTION, json=PAIR, headers=auth_headers())).status == 504
        # The injected 504 did not use up the one recorded 201 (miss policy error would say so).
        assert (await c.call("POST", COLLECTION, json=PAIR, headers=auth_headers())).status == 201
    assert not spy.attempts


async def test_in_front_of_graph_over_https_an_injected_answer_opens_no_connection(
        proxies, mitm_ssl, caplog):
    """Passthrough to the real graph.microsoft.com: the fault answers, nothing leaves."""
    caplog.set_level(logging.INFO, logger="exportjobs.proxy")
    spy = ConnectSpy(block=True)
    proxy = await proxies("passthrough", None, faults="*:429(5s)@1", extra_addons=[spy])
    async with aiohttp.ClientSession() as session:
        c = client(session, proxy, "https", mitm_ssl())
        got = await c.call("GET", COLLECTION, headers=auth_headers())
    assert got.status == 429 and got.json["error"]["code"] == "TooManyRequests"
    assert got.headers["Retry-After"] == "5"
    assert not spy.attempts, "an injected answer must not touch the network"
    assert any(r.getMessage().startswith("FAULT  GET ") for r in caplog.records)


async def test_traffic_outside_exportjobs_is_never_faulted(emulator, proxies):
    proxy = await proxies("passthrough", None, emulator.url, faults="*:503@1")
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{emulator.url}/_emulator", proxy=proxy.url) as r:
            assert r.status == 200


# --- the command line --------------------------------------------------------------------------


def test_a_bad_plan_is_one_line_naming_file_line_and_field(tmp_path, capsys):
    from exportjobs.cli import main

    plan = tmp_path / "plan.yaml"
    plan.write_text("faults:\n  - match: create\n    status: 500\n    rate: 1\n")
    assert main(["proxy", "--mode", "passthrough", "--port", "0", "--faults", str(plan)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"exportjobs proxy: --faults: {plan}:3: faults[1].status: "
                   "500 is not one of 429, 503, 504"), err
    assert main(["proxy", "--mode", "passthrough", "--port", "0", "--faults", "create:429@2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("exportjobs proxy: --faults: rule 1 'create:429@2', rate:") and "\n" not in err
