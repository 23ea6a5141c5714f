"""Record through the in-process proxy in front of the in-process emulator, then replay offline.

Real sockets on 127.0.0.1 throughout: plain HTTP through the proxy and HTTPS to
graph.microsoft.com (mitmproxy's CA in a temporary confdir, trusted by the client); the
addon's upstream option sends graph.microsoft.com exportJobs traffic to the emulator, so
nothing leaves the machine.
"""

from __future__ import annotations

import logging

import aiohttp
import pytest

from exportjobs.addons.cassette import load_cassette
from exportjobs.addons.matching import Outcome, ReplayIndex, Take, request_key
from exportjobs.simulator.emulator.app import EmulatorConfig, start_emulator
from exportjobs.simulator.emulator.jobs import encode_job_id
from tests.support.proxy import (
    COLLECTION,
    RACE_PAIR,
    ConnectSpy,
    ProxiedClient,
    Result,
    Tripwire,
    auth_headers,
    proxied_client,
    race,
    race_problem,
    record_race,
    without_volatile,
)

PAIR = {"goalsOrganizationId": "33333333-3333-4333-8333-333333333333",
        "explorerViewId": "44444444-4444-4444-8444-444444444444"}


async def lifecycle_and_errors(client: ProxiedClient, advance) -> list[Result]:
    """One job from create to content, plus the documented error cases, in a fixed order."""
    h = auth_headers()
    out = [await client.call("POST", COLLECTION, json=PAIR, headers=h)]
    location = out[0].headers["Location"]
    out.append(await client.call("POST", COLLECTION, json=PAIR, headers=h))  # 409
    out.append(await client.call("GET", location, headers=h))  # notStarted, Retry-After
    await advance(3)
    out.append(await client.call("GET", location, headers=h))  # running
    out.append(await client.call("GET", location + "/content", headers=h))  # not yet
    await advance(10)
    out.append(await client.call("GET", location, headers=h))  # succeeded
    out.append(await client.call("GET", location + "/content", headers=h))  # text/csv
    org = PAIR["goalsOrganizationId"]
    out.append(await client.call("GET", f"{COLLECTION}?$filter=goalsOrganizationId eq '{org}'", headers=h))
    out.append(await client.call("GET", f"{COLLECTION}?$filter=explorerViewId eq 'x'", headers=h))
    out.append(await client.call("GET", f"{COLLECTION}/{encode_job_id(987654)}", headers=h))
    out.append(await client.call("GET", f"{COLLECTION}/not-a-job-key", headers=h))
    out.append(await client.call("POST", COLLECTION, headers=h,
                                 json={"goalsOrganizationId": "nope", "explorerViewId": org}))
    out.append(await client.call("GET", COLLECTION))  # no token: 401
    out.append(await client.call("POST", COLLECTION, json=PAIR, headers=h))  # after completion: 201
    return out


EXPECTED_STATUSES = [201, 409, 200, 200, 400, 200, 200, 200, 400, 404, 400, 400, 401, 201]


async def _no_advance(seconds: float) -> None:
    return None


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_record_then_replay_offline_matches(scheme, proxies, mitm_ssl, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="exportjobs.proxy")
    emulator = await start_emulator(EmulatorConfig(start_after=2, run_for=5))
    cassette = tmp_path / "session.yaml"
    spy = ConnectSpy()
    recorder = await proxies("record", cassette, emulator.url, extra_addons=[spy])

    async def advance(seconds: float) -> None:
        emulator.clock.advance(seconds)

    async with aiohttp.ClientSession() as session:
        client = proxied_client(session, recorder, scheme, mitm_ssl)
        raced = await race(client, RACE_PAIR)
        recorded = await lifecycle_and_errors(client, advance)
    await recorder.close()
    await emulator.close()
    assert race_problem(raced) is None
    assert [r.status for r in recorded] == EXPECTED_STATUSES
    assert recorded[0].headers["Location"].startswith(f"{scheme}://graph.microsoft.com/beta/")
    assert [r.json["status"] for r in recorded[2:6:3]] == ["notStarted", "succeeded"]
    assert recorded[6].headers["Content-Type"].startswith("text/csv")
    assert spy.attempts, "the spy must see the upstream connections recording opens"

    loaded = load_cassette(cassette)
    assert loaded.torn is None and len(loaded.interactions) == 10 + len(EXPECTED_STATUSES)
    race_docs = loaded.interactions[:10]
    assert all(doc["concurrent"] for doc in race_docs), "a recorded race must be visible as a race"
    assert all(doc["duration"] >= 0 and doc["started"] >= 0 for doc in loaded.interactions)
    rec_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("REC ")]
    assert len(rec_lines) == len(loaded.interactions)
    assert any(" 201 job=" in line and "notStarted" in line for line in rec_lines)

    caplog.clear()
    async with Tripwire() as tripwire:  # replay's upstream: any connection would be counted
        replay_spy = ConnectSpy(block=True)
        player = await proxies("replay", cassette, tripwire.url, extra_addons=[replay_spy])
        async with aiohttp.ClientSession() as session:
            client = proxied_client(session, player, scheme, mitm_ssl)
            replayed_race = await race(client, RACE_PAIR)
            replayed = await lifecycle_and_errors(client, _no_advance)
        assert tripwire.accepts == 0 and replay_spy.attempts == []

    assert race_problem(replayed_race) is None
    winner = next(r for r in raced if r.status == 201)
    assert next(r for r in replayed_race if r.status == 201).json == winner.json
    assert [r.comparable() for r in replayed] == [r.comparable() for r in recorded]
    assert all(r.headers["request-id"] for r in replayed)
    replay_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("REPLAY ")]
    assert len(replay_lines) == 10 + len(EXPECTED_STATUSES)


async def test_replay_serves_sequences_in_recorded_order_then_repeats_last(tmp_path, proxies):
    cassette, _ = await record_race(tmp_path, proxies)
    recorded = sorted(load_cassette(cassette).interactions, key=lambda d: d["interaction"])
    player = await proxies("replay", cassette)
    async with aiohttp.ClientSession() as session:
        client = ProxiedClient(session, player.url, "http://graph.microsoft.com")
        got = [await client.call("POST", COLLECTION, json=RACE_PAIR, headers=auth_headers())
               for _ in range(11)]
    assert [r.status for r in got[:10]] == [d["response"]["status"] for d in recorded]
    assert [r.comparable()[2] for r in got[:10]] == [without_volatile(d["response"]["json"]) for d in recorded]
    assert got[10].comparable() == got[9].comparable()
    assert got[10].headers["x-exportjobs-replay"] == "repeat 11/10"


async def test_replay_exhaustion_error_policy(tmp_path, proxies, caplog):
    caplog.set_level(logging.INFO, logger="exportjobs.proxy")
    cassette, _ = await record_race(tmp_path, proxies)
    player = await proxies("replay", cassette, miss_policy="error")
    async with aiohttp.ClientSession() as session:
        client = ProxiedClient(session, player.url, "http://graph.microsoft.com")
        got = [await client.call("POST", COLLECTION, json=RACE_PAIR, headers=auth_headers())
               for _ in range(11)]
    assert sorted(r.status for r in got[:10]) == [201] + [409] * 9
    error = got[10].json["error"]
    assert got[10].status == 404 and error["code"] == "notRecorded"
    assert error["innerError"]["code"] == "exportJobsCassetteExhausted"
    assert str(cassette) in error["message"] and "10" in error["message"]
    assert any(r.getMessage().startswith("MISS ") and r.levelno == logging.WARNING
               for r in caplog.records)


async def test_misses_get_a_graph_error_and_never_reach_the_network(tmp_path, proxies, mitm_ssl, caplog):
    caplog.set_level(logging.INFO, logger="exportjobs.proxy")
    cassette, _ = await record_race(tmp_path, proxies)
    async with Tripwire() as tripwire:
        spy = ConnectSpy(block=True)
        player = await proxies("replay", cassette, tripwire.url, extra_addons=[spy],
                               hosts=[f"127.0.0.1:{tripwire.port}"])
        async with aiohttp.ClientSession() as session:
            misses = []
            for scheme in ("http", "https"):
                client = proxied_client(session, player, scheme, mitm_ssl)
                misses.append(await client.call("POST", COLLECTION, headers=auth_headers(),
                                                 json={**RACE_PAIR, "explorerViewId": PAIR["explorerViewId"]}))
                misses.append(await client.call("GET", f"{COLLECTION}/{encode_job_id(5)}",
                                                 headers=auth_headers()))
            # an extra in-scope host that is itself the tripwire
            direct = ProxiedClient(session, player.url, tripwire.url)
            misses.append(await direct.call("GET", COLLECTION, headers=auth_headers()))
        assert tripwire.accepts == 0 and spy.attempts == []
    for miss in misses:
        error = miss.json["error"]
        assert miss.status == 404 and error["code"] == "notRecorded"
        assert "not recorded" in error["message"].lower() and str(cassette) in error["message"]
        assert error["innerError"]["code"] == "exportJobsCassetteMiss"
        assert miss.headers["request-id"] == error["innerError"]["request-id"]
    miss_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("MISS ")]
    assert len(miss_lines) == len(misses)


async def test_the_one_201_check_catches_a_matcher_that_ignores_order(tmp_path, proxies, monkeypatch):
    """A replay that does not hand out each recording once, in order, is caught."""
    cassette, _ = await record_race(tmp_path, proxies)

    def always_first(self, request):
        sequence = self._sequences[request_key(request)]
        return Take(Outcome.HIT, sequence.items[0], 1, len(sequence.items))

    monkeypatch.setattr(ReplayIndex, "take", always_first)
    player = await proxies("replay", cassette)
    async with aiohttp.ClientSession() as session:
        replayed = await race(ProxiedClient(session, player.url, "http://graph.microsoft.com"), RACE_PAIR)
    assert race_problem(replayed) is not None


async def test_the_no_connection_check_catches_an_eager_proxy(tmp_path, proxies, mitm_ssl):
    """Replay sets connection_strategy=lazy; forced back to eager, the spy sees (and blocks)
    the upstream connection mitmproxy opens on CONNECT."""
    cassette, _ = await record_race(tmp_path, proxies)
    spy = ConnectSpy(block=True)
    player = await proxies("replay", cassette, extra_addons=[spy])
    assert player.master.options.connection_strategy == "lazy"
    player.master.options.connection_strategy = "eager"
    async with aiohttp.ClientSession() as session:
        client = proxied_client(session, player, "https", mitm_ssl)
        try:
            await client.call("POST", COLLECTION, json=RACE_PAIR, headers=auth_headers())
        except aiohttp.ClientError:
            pass
    assert spy.attempts


async def test_changing_other_options_live_keeps_the_recording_and_the_replay_position(tmp_path, proxies):
    cassette, _ = await record_race(tmp_path, proxies)
    player = await proxies("replay", cassette)
    async with aiohttp.ClientSession() as session:
        client = ProxiedClient(session, player.url, "http://graph.microsoft.com")
        first = await client.call("POST", COLLECTION, json=RACE_PAIR, headers=auth_headers())
        player.master.options.update(exportjobs_hosts=["example.test"], exportjobs_miss_policy="error")
        second = await client.call("POST", COLLECTION, json=RACE_PAIR, headers=auth_headers())
    assert first.headers["x-exportjobs-replay"] == "hit 1/10"
    assert second.headers["x-exportjobs-replay"] == "hit 2/10"
    recording = tmp_path / "live.yaml"
    recorder = await proxies("record", recording)
    writer, before = recorder.addon.writer, recording.read_bytes()
    recorder.master.options.update(exportjobs_redact_json=["x"])
    assert recorder.addon.writer is writer and recording.read_bytes() == before


async def test_a_torn_cassette_replays_what_is_complete_and_says_so(tmp_path, proxies, caplog):
    caplog.set_level(logging.INFO, logger="exportjobs.proxy")
    cassette, _ = await record_race(tmp_path, proxies)
    cassette.write_bytes(cassette.read_bytes()[:-20])  # cut into the last document
    player = await proxies("replay", cassette)
    async with aiohttp.ClientSession() as session:
        client = ProxiedClient(session, player.url, "http://graph.microsoft.com")
        got = await client.call("POST", COLLECTION, json=RACE_PAIR, headers=auth_headers())
    assert got.headers["x-exportjobs-replay"] == "hit 1/9"
    assert any("incomplete" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


async def test_a_response_that_cannot_be_recorded_is_not_passed_on_as_a_success(tmp_path, proxies, emulator,
                                                                                 monkeypatch, caplog):
    import errno

    from exportjobs.addons.persister import CassetteWriter

    def disk_full(self, blob):
        raise OSError(errno.ENOSPC, "No space left on device")

    proxy = await proxies("record", tmp_path / "full.yaml", emulator.url)
    monkeypatch.setattr(CassetteWriter, "_write", disk_full)
    async with aiohttp.ClientSession() as session:
        client = ProxiedClient(session, proxy.url, "http://graph.microsoft.com")
        got = await client.call("GET", COLLECTION, headers=auth_headers())
    assert got.status == 502 and got.json["error"]["code"] == "cassetteWriteFailed"
    assert "No space left" in got.json["error"]["message"]


async def test_a_recording_that_cannot_be_sent_fails_closed(tmp_path, proxies, monkeypatch):
    """Whatever goes wrong building a replayed response, the flow is answered, never forwarded."""
    import exportjobs.addons.recordreplay as recordreplay

    cassette, _ = await record_race(tmp_path, proxies)

    def broken(*args, **kwargs):
        raise ValueError("simulated unusable recording")

    monkeypatch.setattr(recordreplay, "recorded_response", broken)
    async with Tripwire() as tripwire:
        spy = ConnectSpy(block=True)
        player = await proxies("replay", cassette, tripwire.url, extra_addons=[spy])
        async with aiohttp.ClientSession() as session:
            got = await ProxiedClient(session, player.url, "http://graph.microsoft.com").call(
                "POST", COLLECTION, headers=auth_headers(), json=RACE_PAIR)
        assert tripwire.accepts == 0 and spy.attempts == []
    assert got.status == 502
    assert got.json["error"]["innerError"]["code"] == "exportJobsCassetteUnusable"
    assert "simulated unusable recording" in got.json["error"]["message"]


async def test_a_miss_names_the_nearest_recording_and_what_differs(tmp_path, proxies, caplog):
    """The 404 body and the MISS line name the differing query parameter and body field."""
    emulator = await start_emulator(EmulatorConfig())
    cassette = tmp_path / "near.yaml"
    org = PAIR["goalsOrganizationId"]
    recorder = await proxies("record", cassette, emulator.url)
    async with aiohttp.ClientSession() as session:
        client = ProxiedClient(session, recorder.url, "http://graph.microsoft.com")
        assert (await client.call("POST", COLLECTION, json=PAIR, headers=auth_headers())).status == 201
        assert (await client.call("GET", f"{COLLECTION}?$filter=goalsOrganizationId eq '{org}'",
                                  headers=auth_headers())).status == 200
    await recorder.close()
    await emulator.close()
    caplog.set_level(logging.INFO, logger="exportjobs.proxy")
    replay = await proxies("replay", cassette)
    async with aiohttp.ClientSession() as session:
        client = ProxiedClient(session, replay.url, "http://graph.microsoft.com")
        query = await client.call("GET", f"{COLLECTION}?$filter=goalsOrganizationId eq 'other'",
                                  headers=auth_headers())
        body = await client.call("POST", COLLECTION, headers=auth_headers(),
                                 json={**PAIR, "explorerViewId": "another-view"})
    assert query.status == body.status == 404
    filter_differs = (f"query parameter $filter differs: recorded \"goalsOrganizationId eq "
                      f"'{org}'\", got \"goalsOrganizationId eq 'other'\"")
    view_differs = (f"body field explorerViewId differs: recorded '{PAIR['explorerViewId']}', "
                    "got 'another-view'")
    assert filter_differs in query.json["error"]["message"]
    assert view_differs in body.json["error"]["message"]
    misses = [r.getMessage() for r in caplog.records if r.getMessage().startswith("MISS ")]
    assert len(misses) == 2
    assert filter_differs in misses[0] and view_differs in misses[1]
    assert "goalsOrganizationId differs" not in misses[1]
