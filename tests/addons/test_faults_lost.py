"""The lost-response fault through the in-process proxy on real sockets: the request reaches
the service, the client gets a 504 (or a closed connection) instead of the answer, its retry
meets the 409 naming the job its first attempt created, the cassette keeps both answers, and
replay reproduces what the client saw."""

from __future__ import annotations

import aiohttp
import pytest

from exportjobs.addons.cassette import load_cassette
from exportjobs.addons.faultplan import FaultPlanError, parse_short
from exportjobs.addons.faults import FAULT_HEADER
from tests.support.proxy import COLLECTION, ConnectSpy, ProxiedClient, auth_headers

PAIR = {"goalsOrganizationId": "77777777-7777-4777-8777-777777777777",
        "explorerViewId": "88888888-8888-4888-8888-888888888888"}


def client(session: aiohttp.ClientSession, proxy) -> ProxiedClient:
    return ProxiedClient(session, proxy.url, "http://graph.microsoft.com", None)


async def jobs_of(emulator) -> list[dict]:
    async with aiohttp.ClientSession() as http, http.get(
            f"{emulator.url}{COLLECTION}", headers=auth_headers()) as r:
        return (await r.json())["value"]


async def create_twice(proxy) -> list:
    async with aiohttp.ClientSession() as session:
        c = client(session, proxy)
        headers = {**auth_headers(), "client-request-id": "lost-create-1"}
        first = await c.call("POST", COLLECTION, json=PAIR, headers=headers)
        retry = await c.call("POST", COLLECTION, json=PAIR, headers={**headers, "Retry-Attempt": "1"})
        return [first, retry]


def test_the_lost_rule_reads_in_both_syntaxes():
    (rule,) = parse_short("create:lost(504)#1").rules
    assert (rule.lost, rule.status, rule.retry_after, rule.nth) == ("504", 504, None, frozenset({1}))
    (rule,) = parse_short("POST create:lost(reset)@0.5").rules
    assert (rule.lost, rule.status, rule.rate) == ("reset", None, 0.5)
    for bad, says in [("create:lost(503)#1", "is not 504 or reset"), ("create:lost()#1", "is not 504 or reset")]:
        with pytest.raises(FaultPlanError, match=says):
            parse_short(bad)


async def test_a_lost_create_reaches_the_service_and_the_retry_gets_a_409_naming_it(
        emulator, proxies, tmp_path):
    cassette = tmp_path / "lost.yaml"
    proxy = await proxies("record", str(cassette), emulator.url, faults="create:lost(504)#1")
    first, retry = await create_twice(proxy)
    assert first.status == 504 and first.json["error"]["code"] == "GatewayTimeout"
    assert first.headers[FAULT_HEADER] == "504 lost rule 1"
    assert first.headers["client-request-id"] == "lost-create-1"
    (job,) = [j for j in await jobs_of(emulator) if j["goalsOrganizationId"] == PAIR["goalsOrganizationId"]]
    assert retry.status == 409, retry.json
    assert retry.json["error"]["target"] == job["id"]
    assert retry.headers["Location"].endswith(f"/exportJobs/{job['id']}")
    await proxy.close()

    interactions = load_cassette(str(cassette)).interactions
    lost, conflict = interactions
    assert lost["response"]["status"] == 201 and lost["response"]["json"]["id"] == job["id"]
    assert lost["lost"]["answer"] == "504" and lost["lost"]["text"] == "create:lost(504)#1"
    assert lost["lost"]["response"]["status"] == 504
    assert "injected" not in lost and conflict["response"]["status"] == 409

    # Replay, with no plan and no upstream, reproduces what the client saw.
    spy = ConnectSpy(block=True)
    replay = await proxies("replay", str(cassette), extra_addons=[spy])
    first2, retry2 = await create_twice(replay)
    assert (first2.status, first2.json["error"]["code"]) == (504, "GatewayTimeout")
    assert retry2.status == 409 and retry2.json["error"]["target"] == job["id"]
    assert spy.attempts == []


async def test_a_lost_reset_closes_the_client_connection_after_the_service_answered(
        emulator, proxies, tmp_path):
    cassette = tmp_path / "reset.yaml"
    proxy = await proxies("record", str(cassette), emulator.url, faults="create:lost(reset)#1")
    async with aiohttp.ClientSession() as session:
        c = client(session, proxy)
        with pytest.raises(aiohttp.ClientError):
            await c.call("POST", COLLECTION, json=PAIR, headers=auth_headers())
        again = await c.call("POST", COLLECTION, json=PAIR, headers=auth_headers())
    assert again.status == 409
    await proxy.close()
    lost = load_cassette(str(cassette)).interactions[0]
    assert lost["response"]["status"] == 201 and lost["lost"]["answer"] == "reset"
    assert "response" not in lost["lost"]

    replay = await proxies("replay", str(cassette))
    async with aiohttp.ClientSession() as session:
        c = client(session, replay)
        with pytest.raises(aiohttp.ClientError):
            await c.call("POST", COLLECTION, json=PAIR, headers=auth_headers())
