"""Traffic outside exportJobs passes through untouched and is never written down."""

from __future__ import annotations

import logging

import aiohttp
from aiohttp import web

from exportjobs.addons.cassette import load_cassette
from tests.support.proxy import COLLECTION, ProxiedClient, auth_headers

REQUEST_BODY = bytes(range(256)) * 4  # not UTF-8, not JSON
RESPONSE_BODY = b"\x00\xffbinary response\r\n" * 50


async def _start_echo():
    """A server that reports exactly what it received and answers fixed bytes."""
    seen: list[dict] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append({"method": request.method, "path_qs": request.raw_path,
                     "headers": list(request.raw_headers), "body": await request.read()})
        return web.Response(body=RESPONSE_BODY, headers={"Content-Type": "application/x-odd",
                                                         "X-Echo": "Kept As Is"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, runner.addresses[0][1], seen


async def test_other_traffic_is_untouched_and_not_recorded(tmp_path, proxies, caplog):
    caplog.set_level(logging.INFO, logger="exportjobs.proxy")
    runner, port, seen = await _start_echo()
    cassette = tmp_path / "c.yaml"
    # the echo host is in scope (so its exportJobs paths would be recorded); localhost is not
    proxy = await proxies("record", cassette, hosts=[f"127.0.0.1:{port}"])
    headers = {**auth_headers(), "Cookie": "a=b", "X-Custom": "Mixed-Case  two  spaces",
               "Content-Type": "application/octet-stream"}
    cases = [
        ("POST", f"http://127.0.0.1:{port}/_emulator/other?b=2&a=1"),  # in-scope host, other path
        ("PUT", f"http://127.0.0.1:{port}/beta/employeeExperience/goals/exportJobsX"),
        ("POST", f"http://localhost:{port}{COLLECTION}?x=1"),  # exportJobs path, host not in scope
    ]
    try:
        async with aiohttp.ClientSession(skip_auto_headers=["User-Agent"]) as session:
            client = ProxiedClient(session, proxy.url, "")
            results = [await client.call(m, url, data=REQUEST_BODY, headers=headers)
                       for m, url in cases]
    finally:
        await proxy.close()
        await runner.cleanup()
    assert len(seen) == len(cases)
    for (method, url), got, result in zip(cases, seen, results):
        assert got["method"] == method
        assert got["path_qs"] == url.split(str(port), 1)[1]
        assert got["body"] == REQUEST_BODY
        sent = {(k.decode(), v.decode()) for k, v in got["headers"]}
        for name, value in headers.items():
            assert (name, value) in sent
        assert result.status == 200 and result.body == RESPONSE_BODY
        assert result.headers["X-Echo"] == "Kept As Is"
    loaded = load_cassette(cassette)
    assert loaded.interactions == []
    assert "_emulator" not in cassette.read_text() and "localhost" not in cassette.read_text()
    assert not [r for r in caplog.records if r.getMessage().split(" ")[0] in ("REC", "PASS")]


async def test_passthrough_mode_forwards_and_logs_but_writes_nothing(tmp_path, proxies, emulator, caplog):
    caplog.set_level(logging.INFO, logger="exportjobs.proxy")
    proxy = await proxies("passthrough", None, emulator.url)
    async with aiohttp.ClientSession() as session:
        client = ProxiedClient(session, proxy.url, "http://graph.microsoft.com")
        got = await client.call("GET", COLLECTION, headers=auth_headers())
    assert got.status == 200 and got.json["value"] == []
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("PASS ")]
    assert len(lines) == 1 and lines[0].startswith(f"PASS   GET {COLLECTION} 200 jobs=0 ")
    assert list(tmp_path.iterdir()) == []
