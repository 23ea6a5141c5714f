"""Record modes (VCR.py's none, once, new_episodes, all) against an existing and a missing
cassette: the cassette's bytes before and after, what the clients get, and, for
new_episodes, that only a miss opens a connection and only the miss is appended.

Real sockets on 127.0.0.1: clients through the in-process proxy, the proxy in front of the
in-process emulator (the upstream option), a ConnectSpy counting the proxy's connections.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import pytest

from exportjobs.addons.cassette import load_cassette
from exportjobs.addons.proxy import ProxyError
from exportjobs.simulator.emulator.app import EmulatorConfig, start_emulator
from tests.support.proxy import COLLECTION, ConnectSpy, ProxiedClient, auth_headers

ORG = "55555555-5555-4555-8555-555555555555"
RECORDED = f"{COLLECTION}?$filter=goalsOrganizationId eq '{ORG}'"
NEW = f"{COLLECTION}?$filter=goalsOrganizationId eq '66666666-6666-4666-8666-666666666666'"


@pytest.fixture
async def emulator():
    running = await start_emulator(EmulatorConfig())
    yield running
    await running.close()


async def _get(proxy, path: str) -> int:
    async with aiohttp.ClientSession() as session:
        client = ProxiedClient(session, proxy.url, "http://graph.microsoft.com")
        return (await client.call("GET", path, headers=auth_headers())).status


async def _existing(tmp_path: Path, proxies, emulator) -> Path:
    """A cassette holding one recorded GET (RECORDED)."""
    cassette = tmp_path / "existing.yaml"
    recorder = await proxies("record", cassette, emulator.url)
    assert await _get(recorder, RECORDED) == 200
    await recorder.close()
    assert len(load_cassette(cassette).interactions) == 1
    return cassette


def _urls(cassette: Path) -> list[str]:
    """The path and query of each recorded request, as the client wrote them."""
    out = []
    for item in load_cassette(cassette).interactions:
        url = urlsplit(item["request"]["url"])
        query = "&".join(f"{k}={v}" for k, v in parse_qsl(url.query, keep_blank_values=True))
        out.append(f"{url.path}?{query}" if query else url.path)
    return out


def _leftovers(cassette: Path) -> list[str]:
    return sorted(p.name for p in cassette.parent.iterdir() if p.name != cassette.name)


async def test_none_replays_an_existing_cassette_and_never_writes(tmp_path, proxies, emulator):
    cassette = await _existing(tmp_path, proxies, emulator)
    before = cassette.read_bytes()
    spy = ConnectSpy()
    proxy = await proxies("passthrough", cassette, emulator.url, record_mode="none",
                          extra_addons=[spy])
    assert await _get(proxy, RECORDED) == 200
    assert await _get(proxy, NEW) == 404
    await proxy.close()
    assert cassette.read_bytes() == before
    assert spy.attempts == []


async def test_none_refuses_a_missing_cassette(tmp_path, proxies, emulator):
    cassette = tmp_path / "missing.yaml"
    with pytest.raises(ProxyError, match="no such file"):
        await proxies("passthrough", cassette, emulator.url, record_mode="none")
    assert not cassette.exists()


async def test_once_replays_an_existing_cassette_without_overwriting(tmp_path, proxies, emulator):
    cassette = await _existing(tmp_path, proxies, emulator)
    before = cassette.read_bytes()
    proxy = await proxies("record", cassette, emulator.url, record_mode="once")
    assert await _get(proxy, RECORDED) == 200
    assert await _get(proxy, NEW) == 404  # not recorded, and not recorded now either
    await proxy.close()
    assert cassette.read_bytes() == before


async def test_once_records_a_missing_cassette(tmp_path, proxies, emulator):
    cassette = tmp_path / "missing.yaml"
    proxy = await proxies("replay", cassette, emulator.url, record_mode="once")
    assert await _get(proxy, NEW) == 200
    await proxy.close()
    assert _urls(cassette) == [NEW]


async def test_once_records_over_a_cassette_with_no_interactions(tmp_path, proxies, emulator):
    cassette = tmp_path / "header-only.yaml"
    await (await proxies("record", cassette, emulator.url)).close()
    assert load_cassette(cassette).interactions == []
    proxy = await proxies("replay", cassette, emulator.url, record_mode="once")
    assert await _get(proxy, NEW) == 200
    await proxy.close()
    assert _urls(cassette) == [NEW]


async def test_new_episodes_appends_only_the_miss_and_connects_only_for_it(tmp_path, proxies,
                                                                           emulator):
    cassette = await _existing(tmp_path, proxies, emulator)
    before = cassette.read_bytes()
    spy = ConnectSpy()
    proxy = await proxies("replay", cassette, emulator.url, record_mode="new_episodes",
                          extra_addons=[spy])
    assert await _get(proxy, RECORDED) == 200  # a hit: from the cassette
    assert spy.attempts == []
    assert await _get(proxy, NEW) == 200  # a miss: goes upstream and is appended
    assert len(spy.attempts) == 1
    await proxy.close()
    after = cassette.read_bytes()
    assert after.startswith(before) and len(after) > len(before)
    assert _urls(cassette) == [RECORDED, NEW]
    assert [i["interaction"] for i in load_cassette(cassette).interactions] == [1, 2]
    # the appended cassette replays both, offline
    spy = ConnectSpy()
    replay = await proxies("replay", cassette, extra_addons=[spy])
    assert await _get(replay, RECORDED) == 200
    assert await _get(replay, NEW) == 200
    assert spy.attempts == []


async def test_new_episodes_appends_an_injected_fault_as_record_does(tmp_path, proxies, emulator):
    """A fault the proxy injects is part of the session in new_episodes as in record: it is
    appended, marked injected, so the cassette shows what the client went through (and
    replay, as for record, skips it: docs/faults.md)."""
    cassette = await _existing(tmp_path, proxies, emulator)
    proxy = await proxies("replay", cassette, emulator.url, record_mode="new_episodes",
                          faults="list:503#1")
    assert await _get(proxy, NEW) == 503  # injected, never sent upstream
    assert await _get(proxy, NEW) == 200  # the miss, recorded from the emulator
    await proxy.close()
    loaded = load_cassette(cassette)
    assert _urls(cassette) == [RECORDED, NEW, NEW]
    assert [i["response"]["status"] for i in loaded.interactions] == [200, 503, 200]
    assert "injected" in loaded.interactions[1]
    replay = await proxies("replay", cassette)
    assert await _get(replay, NEW) == 200


async def test_new_episodes_cuts_a_torn_tail_before_appending(tmp_path, proxies, emulator):
    cassette = await _existing(tmp_path, proxies, emulator)
    before = cassette.read_bytes()
    # a crash's tail, longer than what is appended after it
    cassette.write_bytes(before + b"---\ninteraction: 2\nrequest: {method: GE" + b"T" * 20_000)
    proxy = await proxies("replay", cassette, emulator.url, record_mode="new_episodes")
    assert await _get(proxy, NEW) == 200
    await proxy.close()
    assert cassette.read_bytes().startswith(before)
    loaded = load_cassette(cassette)
    assert loaded.torn is None
    assert _urls(cassette) == [RECORDED, NEW]


async def test_new_episodes_records_a_missing_cassette(tmp_path, proxies, emulator):
    cassette = tmp_path / "missing.yaml"
    proxy = await proxies("replay", cassette, emulator.url, record_mode="new_episodes")
    assert await _get(proxy, NEW) == 200
    assert await _get(proxy, NEW) == 200  # a repeat within the run is recorded too, in order
    await proxy.close()
    assert _urls(cassette) == [NEW, NEW]


@pytest.mark.parametrize("how", [{"record_mode": "all"}, {}], ids=["record-mode-all", "mode-record"])
async def test_all_keeps_the_old_cassette_until_the_first_interaction(tmp_path, proxies, emulator,
                                                                      how):
    cassette = await _existing(tmp_path, proxies, emulator)
    before = cassette.read_bytes()
    proxy = await proxies("record", cassette, emulator.url, **how)
    assert cassette.read_bytes() == before  # started: nothing recorded yet, old file intact
    assert await _get(proxy, NEW) == 200
    assert _urls(cassette) == [NEW]  # replaced on the first interaction
    await proxy.close()
    assert _urls(cassette) == [NEW]
    assert _leftovers(cassette) == []


async def test_all_that_records_nothing_leaves_the_old_cassette(tmp_path, proxies, emulator):
    cassette = await _existing(tmp_path, proxies, emulator)
    before = cassette.read_bytes()
    await (await proxies("passthrough", cassette, emulator.url, record_mode="all")).close()
    assert cassette.read_bytes() == before
    assert _leftovers(cassette) == []


async def test_all_records_a_missing_cassette(tmp_path, proxies, emulator):
    cassette = tmp_path / "missing.yaml"
    proxy = await proxies("passthrough", cassette, emulator.url, record_mode="all")
    assert await _get(proxy, NEW) == 200
    await proxy.close()
    assert _urls(cassette) == [NEW]


async def test_an_unknown_record_mode_is_refused_by_name(tmp_path, proxies):
    with pytest.raises(ProxyError) as caught:
        await proxies("replay", tmp_path / "x.yaml", record_mode="sometimes")
    assert caught.value.option == "exportjobs_record_mode"
    assert "new_episodes" in caught.value.problem


class UndoesReplay:
    """A hook (not ours) that removes the answer replay gave, so the flow would go out."""

    def request(self, flow) -> None:
        if flow.response is not None and "x-exportjobs-replay" in flow.response.headers:
            flow.response = None


async def test_new_episodes_opens_a_connection_for_a_miss_never_for_a_hit(tmp_path, proxies,
                                                                          emulator):
    """The connection-level lock: with the service's host in scope, a hit whose answer a
    hook removed is still never sent (502), while a miss goes out and is recorded."""
    host = f"127.0.0.1:{emulator.port}"
    cassette = tmp_path / "direct.yaml"
    recorder = await proxies("record", cassette, hosts=[host])
    async with aiohttp.ClientSession() as session:
        client = ProxiedClient(session, recorder.url, emulator.url)
        assert (await client.call("GET", RECORDED, headers=auth_headers())).status == 200
    await recorder.close()
    before = cassette.read_bytes()
    proxy = await proxies("replay", cassette, hosts=[host], record_mode="new_episodes",
                          extra_addons=[UndoesReplay()])
    async with aiohttp.ClientSession() as session:
        client = ProxiedClient(session, proxy.url, emulator.url)
        hit = await client.call("GET", RECORDED, headers=auth_headers())
        miss = await client.call("GET", NEW, headers=auth_headers())
    assert hit.status == 502 and hit.json["error"]["code"] == "badGateway"
    assert miss.status == 200
    await proxy.close()
    assert cassette.read_bytes().startswith(before)
    assert _urls(cassette) == [RECORDED, NEW]
