"""HAR in and out (addons/har/), proved through the real replay proxy.

A cassette recorded through the proxy in front of the emulator is exported to HAR and
imported back; the imported cassette, replayed by the in-process proxy, answers the same
requests as the original does. HARs as Chrome DevTools and Microsoft's Dev Proxy save them
(fixtures/) are imported and replayed the same way: only their exportJobs entries are kept,
and none of their credentials reach the cassette.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from exportjobs.addons.cassette import load_cassette
from exportjobs.addons.har import (
    EXTENSION,
    cassette_to_har,
    har_chunks,
    har_interactions,
    import_header,
    import_redactor,
    read_har,
    write_cassette,
)
from exportjobs.addons.redaction import Redactor
from exportjobs.addons.scope import Scope
from exportjobs.simulator.emulator.app import EmulatorConfig, start_emulator
from tests.support.proxy import (
    COLLECTION,
    ConnectSpy,
    ProxiedClient,
    Result,
    auth_headers,
    leaked,
    race,
    race_problem,
    record_race,
    without_volatile,
)

FIXTURES = Path(__file__).parent / "fixtures"
CHROME = FIXTURES / "chrome-graph-explorer.har"
DEV_PROXY = FIXTURES / "devproxy-graph.har"
# Every credential the Chrome fixture carries: headers, cookies, a query token, and the
# tokens of a login request and response (not exportJobs traffic: never kept at all).
CANARIES = ["c2lnLUNBTkFSWS1BVVRI", "CANARY-COOKIE", "CANARY-SETCOOKIE",
            "CANARY-QUERY-TOKEN", "CANARY-LOGIN", "eyJ0eXAiOiJKV1Qi"]
PAIR = {"goalsOrganizationId": "55555555-5555-4555-8555-555555555555",
        "explorerViewId": "66666666-6666-4666-8666-666666666666"}


async def lifecycle(client: ProxiedClient, advance) -> list[Result]:
    """One job from create to content, a conflict and a filtered list, in a fixed order."""
    h = auth_headers()
    out = [await client.call("POST", COLLECTION, json=PAIR, headers=h)]
    location = out[0].headers["Location"]
    out.append(await client.call("POST", COLLECTION, json=PAIR, headers=h))  # 409
    out.append(await client.call("GET", location, headers=h))  # notStarted
    await advance(3)
    out.append(await client.call("GET", location, headers=h))  # running
    out.append(await client.call("GET", location + "/content", headers=h))  # not yet: 400
    await advance(10)
    out.append(await client.call("GET", location, headers=h))  # succeeded
    out.append(await client.call("GET", location + "/content", headers=h))  # text/csv
    org = PAIR["goalsOrganizationId"]
    out.append(await client.call("GET", f"{COLLECTION}?$filter=goalsOrganizationId eq '{org}'",
                                 headers=h))
    out.append(await client.call("GET", COLLECTION))  # no token: 401
    return out


async def _no_advance(seconds: float) -> None:
    return None


async def round_trip(cassette: Path, har_path: Path, out: Path, plain: bool = False) -> Path:
    """cassette -> HAR file -> cassette, through the same functions the command uses;
    ``plain``: without the ``_exportjobs`` fields, as mitmproxy's ``savehar`` writes it."""
    har = cassette_to_har(load_cassette(cassette), "exportjobs test")
    if plain:
        for entry in har["log"]["entries"]:
            del entry[EXTENSION]
    har_path.write_text(json.dumps(har), encoding="utf-8")
    imported = har_interactions(read_har(har_path), har_path, Scope(), import_redactor(),
                                Redactor())
    await write_cassette(out, import_header(imported, "exportjobs test", har_path.name),
                         imported.interactions, force=False)
    return out


async def replay(proxies, cassette: Path, mitm_ssl, drive, **options) -> list[Result]:
    """``drive(client)`` against a replay of ``cassette``, with no connection opened."""
    spy = ConnectSpy(block=True)
    proxy = await proxies("replay", cassette, extra_addons=[spy], **options)
    try:
        async with aiohttp.ClientSession() as session:
            client = ProxiedClient(session, proxy.url, "https://graph.microsoft.com", mitm_ssl())
            results = await drive(client)
    finally:
        await proxy.close()
    assert spy.attempts == []
    return results


async def test_round_trip_replays_every_interaction_the_same(proxies, mitm_ssl, tmp_path):
    emulator = await start_emulator(EmulatorConfig(start_after=2, run_for=5))
    cassette = tmp_path / "recorded.yaml"
    recorder = await proxies("record", cassette, emulator.url)

    async def advance(seconds: float) -> None:
        emulator.clock.advance(seconds)

    try:
        async with aiohttp.ClientSession() as session:
            client = ProxiedClient(session, recorder.url, "https://graph.microsoft.com", mitm_ssl())
            recorded = await lifecycle(client, advance)
    finally:
        await recorder.close()
        await emulator.close()
    assert [r.status for r in recorded] == [201, 409, 200, 200, 400, 200, 200, 200, 401]

    imported = await round_trip(cassette, tmp_path / "recorded.har", tmp_path / "imported.yaml")

    async def drive(client: ProxiedClient) -> list[Result]:
        return await lifecycle(client, _no_advance)

    original = await replay(proxies, cassette, mitm_ssl, drive)
    again = await replay(proxies, imported, mitm_ssl, drive)
    assert [r.comparable() for r in again] == [r.comparable() for r in original]
    assert [r.comparable() for r in again] == [r.comparable() for r in recorded]
    assert all(r.headers.get("x-exportjobs-replay", "").startswith("hit") for r in again)
    # and the cassette itself came back: every request, response and number
    before, after = load_cassette(cassette).interactions, load_cassette(imported).interactions
    keys = ("interaction", "concurrent", "request", "response")
    assert [{k: i[k] for k in keys} for i in after] == [{k: i[k] for k in keys} for i in before]
    # a HAR as mitmproxy's savehar writes it (no _exportjobs): numbered by time, same replay
    plain = await round_trip(cassette, tmp_path / "plain.har", tmp_path / "plain.yaml", plain=True)
    again = await replay(proxies, plain, mitm_ssl, drive)
    assert [r.comparable() for r in again] == [r.comparable() for r in original]


async def test_round_trip_keeps_a_recorded_race(proxies, mitm_ssl, tmp_path):
    """Concurrency and the order of a race's answers survive HAR (in ``_exportjobs``)."""
    cassette, raced = await record_race(tmp_path, proxies)
    har = cassette_to_har(load_cassette(cassette), "exportjobs test")
    assert all(EXTENSION in entry for entry in har["log"]["entries"])
    imported = await round_trip(cassette, tmp_path / "race.har", tmp_path / "race-imported.yaml")
    before, after = load_cassette(cassette).interactions, load_cassette(imported).interactions
    assert sorted(i["interaction"] for i in after) == sorted(i["interaction"] for i in before)
    assert {i["interaction"]: i["concurrent"] for i in after} == \
        {i["interaction"]: i["concurrent"] for i in before}

    async def drive(client: ProxiedClient) -> list[Result]:
        return await race(client, {"goalsOrganizationId": "11111111-1111-4111-8111-111111111111",
                                   "explorerViewId": "22222222-2222-4222-8222-222222222222"})

    replayed = await replay(proxies, imported, mitm_ssl, drive)
    assert race_problem(replayed) is None
    assert sorted(r.status for r in replayed) == sorted(r.status for r in raced)


# --- HARs from elsewhere ------------------------------------------------------------------------


def exportjobs_entries(har_path: Path) -> list[dict[str, Any]]:
    """The fixture's exportJobs entries, picked by the test itself (not by the import)."""
    entries = json.loads(har_path.read_text(encoding="utf-8"))["log"]["entries"]
    return [e for e in entries if "/goals/exportJobs" in urlsplit(e["request"]["url"]).path]


def har_body(entry: dict[str, Any]) -> bytes:
    content = entry["response"]["content"]
    text = content.get("text", "")
    return base64.b64decode(text) if content.get("encoding") == "base64" else text.encode()


async def import_fixture(har_path: Path, out: Path) -> Any:
    imported = har_interactions(read_har(har_path), har_path, Scope(), import_redactor(),
                                Redactor())
    await write_cassette(out, import_header(imported, "exportjobs test", har_path.name),
                         imported.interactions, force=False)
    return imported


async def replay_entries(proxies, cassette: Path, mitm_ssl, entries, **options) -> None:
    """Send each entry's request (with a different token) to a replay of ``cassette`` and
    check the answer is the entry's recorded status and body."""

    async def drive(client: ProxiedClient) -> list[Result]:
        results = []
        for entry in entries:
            request = entry["request"]
            post = request.get("postData")
            headers = {"Authorization": "Bearer another-token"}
            if post:
                headers["Content-Type"] = "application/json"
            results.append(await client.call(request["method"], request["url"], headers=headers,
                                             data=post["text"].encode() if post else None))
        return results

    results = await replay(proxies, cassette, mitm_ssl, drive, **options)
    for entry, result in zip(entries, results, strict=True):
        assert result.status == entry["response"]["status"], entry["request"]["url"]
        expected = har_body(entry)
        if "json" in entry["response"]["content"]["mimeType"]:
            # a replayed error's innerError ids and date are fresh, as Graph's are per answer
            assert without_volatile(json.loads(result.body)) == without_volatile(json.loads(expected))
        else:
            assert result.body == expected


async def test_chrome_har_keeps_only_exportjobs_entries_and_replays(proxies, mitm_ssl, tmp_path):
    cassette = tmp_path / "chrome.yaml"
    imported = await import_fixture(CHROME, cassette)
    entries = exportjobs_entries(CHROME)
    kept = load_cassette(cassette).interactions
    assert [i["request"]["url"].partition("?")[0] for i in kept] == \
        [e["request"]["url"].partition("?")[0] for e in entries]
    assert imported.skipped == 2  # /v1.0/me and the login request
    # the list request's token was redacted, so replay must redact that parameter too
    assert imported.replay_query == {"access_token"}
    await replay_entries(proxies, cassette, mitm_ssl, entries, redact_query=["access_token"])


async def test_chrome_har_leaves_no_credential_in_the_cassette(tmp_path):
    text = CHROME.read_text(encoding="utf-8")
    assert set(leaked(text, CANARIES)) == set(CANARIES)  # the fixture does carry them all
    cassette = tmp_path / "chrome.yaml"
    await import_fixture(CHROME, cassette)
    assert leaked(cassette, CANARIES) == []
    kept = load_cassette(cassette).interactions
    # pseudo-headers are not headers on the wire; the cookie jar arrays are never read
    assert not any(name.startswith(":") for i in kept for name, _ in i["request"]["headers"])


async def test_dev_proxy_har_imported_and_replayed(proxies, mitm_ssl, tmp_path):
    """Dev Proxy's HarGeneratorPlugin: zone-less startedDateTime, time 0, no timings,
    Authorization already REDACTED, statusText set, Transfer-Encoding kept in headers."""
    cassette = tmp_path / "devproxy.yaml"
    imported = await import_fixture(DEV_PROXY, cassette)
    assert imported.skipped == 1
    entries = exportjobs_entries(DEV_PROXY)
    assert len(load_cassette(cassette).interactions) == len(entries) == 4
    await replay_entries(proxies, cassette, mitm_ssl, entries)


async def test_export_is_har_that_mitmproxy_reads_back(tmp_path):
    """The export is HAR as mitmproxy's own reader takes it, with nothing secret added."""
    from mitmproxy.io.har import request_to_flow

    cassette = tmp_path / "chrome.yaml"
    await import_fixture(CHROME, cassette)
    har = cassette_to_har(load_cassette(cassette), "exportjobs test")
    assert har["log"]["version"] == "1.2"
    assert json.loads(b"".join(har_chunks(load_cassette(cassette), "exportjobs test"))) == har
    for entry in har["log"]["entries"]:
        for key in ("startedDateTime", "time", "request", "response", "cache", "timings"):
            assert key in entry
        flow = request_to_flow(entry)
        assert flow.response is not None and flow.response.status_code == entry["response"]["status"]
        assert "serverIPAddress" not in entry
        assert entry["request"]["cookies"] == [] and entry["response"]["cookies"] == []
    assert leaked(json.dumps(har), CANARIES) == []
