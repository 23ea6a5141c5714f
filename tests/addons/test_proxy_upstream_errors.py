"""Upstream down or dying mid-response: an in-scope client gets a Graph JSON error (not
mitmproxy's HTML page), the proxy keeps serving, and nothing half-done is recorded."""

from __future__ import annotations

import asyncio
import json
import socket

import aiohttp

from exportjobs.addons.cassette import load_cassette
from tests.support.proxy import COLLECTION, auth_headers

PAIR = {"goalsOrganizationId": "33333333-3333-4333-8333-333333333333",
        "explorerViewId": "44444444-4444-4444-8444-444444444444"}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _dies_mid_response() -> asyncio.base_events.Server:
    """An upstream that reads a request, promises 1,000 bytes, sends 10 and hangs up."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n{\"id\": \"ab")
        await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def _create(proxy_url: str) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession(headers=auth_headers()) as session:
        async with session.post(f"http://graph.microsoft.com{COLLECTION}", json=PAIR,
                                proxy=proxy_url, headers={"client-request-id": "c-9"}) as r:
            return r.status, dict(r.headers), await r.read()


def _bad_gateway(status: int, headers: dict[str, str], body: bytes) -> dict:
    assert status == 502, body
    assert headers["Content-Type"].startswith("application/json"), body
    error = json.loads(body)["error"]
    assert error["code"] == "badGateway"
    assert headers["request-id"] and headers["client-request-id"] == "c-9" and headers["Date"]
    return error


async def test_an_upstream_that_refuses_gets_a_graph_error_and_the_proxy_keeps_serving(
        proxies, tmp_path, caplog):
    cassette = tmp_path / "down.yaml"
    proxy = await proxies("record", cassette, f"http://127.0.0.1:{_closed_port()}")
    with caplog.at_level("WARNING", logger="exportjobs.proxy"):
        for _ in range(2):  # the second proves it still serves after the first failed
            error = _bad_gateway(*await _create(proxy.url))
    assert "refused" in error["message"].lower() or "connect" in error["message"].lower()
    assert any("badGateway" in r.getMessage() for r in caplog.records)
    await proxy.close()
    assert load_cassette(cassette).interactions == []


async def test_an_upstream_that_dies_mid_response_gets_a_graph_error(proxies, tmp_path):
    server = await _dies_mid_response()
    port = server.sockets[0].getsockname()[1]
    cassette = tmp_path / "torn.yaml"
    try:
        proxy = await proxies("record", cassette, f"http://127.0.0.1:{port}")
        for _ in range(2):
            _bad_gateway(*await _create(proxy.url))
        await proxy.close()
    finally:
        server.close()
        await server.wait_closed()
    assert load_cassette(cassette).interactions == []
