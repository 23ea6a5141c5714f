"""Canary secrets go through every path a secret can take; none may reach the cassette or the log.

Request headers (Authorization, Cookie, Proxy-Authorization, a configured header), a
configured query parameter, a configured JSON field in a request body, a form body, and a
response's Set-Cookie and JSON field (from a small leaky upstream on an extra in-scope host).
A second run with the redactor disabled proves the scan finds what it looks for.
"""

from __future__ import annotations

import base64
import logging

import aiohttp
import pytest
from aiohttp import web

from exportjobs.addons.redaction import PLACEHOLDER, Redactor
from exportjobs.simulator.emulator.app import EmulatorConfig, start_emulator
from exportjobs.simulator.emulator.auth import fake_token
from tests.support.proxy import COLLECTION, ProxiedClient, leaked

TOKEN = fake_token(canary="CANARY-IN-JWT")
PROXY_PASSWORD = "CANARY-PROXY-PASSWORD"
PROXY_AUTH_VALUE = base64.b64encode(f"user:{PROXY_PASSWORD}".encode()).decode()
CANARIES = [
    TOKEN,
    "CANARY-COOKIE",
    PROXY_AUTH_VALUE,
    "CANARY-API-KEY",
    "CANARY-QUERY",
    "CANARY-JSON-REQUEST",
    "CANARY-FORM",
    "CANARY-SET-COOKIE",
    "CANARY-JSON-RESPONSE",
]
REDACTIONS = {"redact_headers": ["X-Api-Key"], "redact_query": ["sig"],
              "redact_json": ["clientSecret"]}
PAIR = {"goalsOrganizationId": "55555555-5555-4555-8555-555555555555",
        "explorerViewId": "66666666-6666-4666-8666-666666666666"}


async def _leaky(request: web.Request) -> web.Response:
    """An exportJobs-shaped upstream that leaks secrets in its response."""
    await request.read()
    response = web.json_response({"value": [], "clientSecret": "CANARY-JSON-RESPONSE",
                                  "nested": [{"CLIENTSECRET": "CANARY-JSON-RESPONSE"}]})
    response.headers["Set-Cookie"] = "sid=CANARY-SET-COOKIE; HttpOnly"
    return response


async def _secret_session(tmp_path, proxies, mitm_ssl) -> tuple[list, str]:
    """Record traffic carrying every canary; returns the files written and the log text."""
    emulator = await start_emulator(EmulatorConfig())
    app = web.Application()
    app.router.add_route("*", COLLECTION, _leaky)
    runner = web.AppRunner(app, access_log=None)  # its own log would print the query
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    leaky_port = runner.addresses[0][1]
    cassette = tmp_path / "secrets.yaml"
    proxy = await proxies("record", cassette, emulator.url, hosts=[f"127.0.0.1:{leaky_port}"],
                          **REDACTIONS)
    headers = {"Authorization": f"Bearer {TOKEN}", "Cookie": "session=CANARY-COOKIE",
               "X-Api-Key": "CANARY-API-KEY"}
    auth = aiohttp.BasicAuth("user", PROXY_PASSWORD)
    try:
        async with aiohttp.ClientSession(headers=headers) as session:
            graph = ProxiedClient(session, proxy.url, "https://graph.microsoft.com", mitm_ssl())
            created = await graph.call("POST", COLLECTION, json=PAIR)
            assert created.status == 201
            rejected = await graph.call("POST", COLLECTION,
                                        json={**PAIR, "clientSecret": "CANARY-JSON-REQUEST"})
            assert rejected.status == 400
            listed = await graph.call("GET", f"{COLLECTION}?sig=CANARY-QUERY&$count=true")
            assert listed.status == 200
            leaky = ProxiedClient(session, proxy.url, f"http://127.0.0.1:{leaky_port}")
            for method, kwargs in [("GET", {}), ("POST", {"data": {"sig": "CANARY-FORM", "a": "1"}})]:
                got = await session.request(method, leaky.base + COLLECTION + "?sig=CANARY-QUERY",
                                            proxy=proxy.url, proxy_auth=auth, **kwargs)
                assert got.status == 200
                assert "CANARY-SET-COOKIE" in got.headers["Set-Cookie"]  # the client still gets it
                got.release()
    finally:
        await proxy.close()
        await runner.cleanup()
        await emulator.close()
    return [cassette], cassette.read_text()


async def test_no_secret_reaches_the_cassette_or_the_console(tmp_path, proxies, mitm_ssl, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    files, text = await _secret_session(tmp_path, proxies, mitm_ssl)
    out = capsys.readouterr()
    assert leaked([*files, caplog.text, out.out, out.err], CANARIES) == []
    assert text.count(PLACEHOLDER) >= len(CANARIES)
    assert "REC " in caplog.text


async def test_the_scan_finds_secrets_when_redaction_is_disabled(tmp_path, proxies, mitm_ssl, monkeypatch):
    monkeypatch.setattr(Redactor, "header_pairs", lambda self, pairs: [list(p) for p in pairs])
    monkeypatch.setattr(Redactor, "query_string", lambda self, query: query)
    monkeypatch.setattr(Redactor, "json", lambda self, data: data)
    files, _ = await _secret_session(tmp_path, proxies, mitm_ssl)
    assert sorted(leaked(files, CANARIES)) == sorted(CANARIES)


async def test_replay_matches_a_request_whose_redacted_query_differs(tmp_path, proxies, mitm_ssl):
    files, _ = await _secret_session(tmp_path, proxies, mitm_ssl)
    player = await proxies("replay", files[0], **REDACTIONS)
    async with aiohttp.ClientSession() as session:
        graph = ProxiedClient(session, player.url, "https://graph.microsoft.com", mitm_ssl())
        got = await graph.call("GET", f"{COLLECTION}?$count=true&sig=ANOTHER-SECRET")
    assert got.status == 200 and got.headers["x-exportjobs-replay"] == "hit 1/1"


@pytest.mark.parametrize("field", ["clientSecret", "CLIENTSECRET"])
def test_redactor_units(field):
    redactor = Redactor.configured(["x-api-key"], ["SIG"], ["clientsecret"])
    assert redactor.header_pairs([("Set-Cookie", "a"), ("X-API-KEY", "b"), ("Accept", "c")]) == [
        ["Set-Cookie", PLACEHOLDER], ["X-API-KEY", PLACEHOLDER], ["Accept", "c"]]
    assert redactor.query_string("a=1&sig=s%20x&b=2") == f"a=1&sig={PLACEHOLDER}&b=2"
    assert redactor.query_string("a=1") == "a=1"
    assert redactor.json({"x": [{field: "s"}], field: {"deep": 1}}) == {
        "x": [{field: PLACEHOLDER}], field: PLACEHOLDER}
