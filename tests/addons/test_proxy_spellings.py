"""No spelling of a request takes it out of the proxy's hands.

A client can tunnel to an address and name the host inside (CONNECT to an IP, Host: the
name), send an absolute URL whose authority differs from its Host header, stream a large
body (refused: mitmproxy would stream it upstream before any hook), or reach a non-exportJobs path on an in-scope host while a new episode is being
recorded. In replay none of it may reach the network; while recording, an addon failure
must still be answered, never forwarded. A real upstream on 127.0.0.1 counts what reaches it.
"""

from __future__ import annotations

import asyncio
import uuid

import aiohttp
import pytest
from aiohttp import web

from exportjobs.addons.proxy import RunningProxy, start_proxy
from exportjobs.addons.scope import Scope
from tests.support.emulator import COLLECTION


class Upstream:
    """An HTTP server on 127.0.0.1 that notes every request it gets (and can be slow)."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.seen: list[tuple[str, str]] = []
        self.delay_s = delay_s
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append((request.method, request.path))
        await request.read()
        if request.method == "POST" and self.delay_s:
            await asyncio.sleep(self.delay_s)
        return web.json_response({"id": "job-1"}, status=201 if request.method == "POST" else 200)

    async def __aenter__(self) -> Upstream:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


@pytest.fixture
async def started(mitm_confdir):
    """``await started(settings)``: a proxy with exactly these mitmproxy options; closed after."""
    running: list[RunningProxy] = []

    async def start(settings: dict) -> RunningProxy:
        proxy = await start_proxy({"confdir": mitm_confdir, **settings})
        running.append(proxy)
        return proxy

    yield start
    for proxy in running:
        await proxy.close()


async def _raw(proxy_port: int, first: bytes, then: bytes | None = None) -> bytes:
    """Send ``first`` to the proxy (and ``then`` after its answer, for a tunnel); the reply."""
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy_port)
    try:
        writer.write(first)
        await writer.drain()
        if then is not None:
            await reader.readuntil(b"\r\n\r\n")  # the tunnel's 200
            writer.write(then)
            await writer.drain()
        return await asyncio.wait_for(reader.read(2000), 10)
    finally:
        writer.close()


def _get(path: str, host: str, target: str | None = None) -> bytes:
    return (f"GET {target or path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer SECRET\r\n"
            "Connection: close\r\n\r\n").encode()


async def _replaying_localhost(tmp_path, proxies, upstream: Upstream):
    """A cassette recorded for ``localhost:PORT``, and a proxy replaying it."""
    cassette = tmp_path / "c.yaml"
    hosts = [f"localhost:{upstream.port}"]
    recorder = await proxies("record", cassette, hosts=hosts)
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://localhost:{upstream.port}{COLLECTION}", proxy=recorder.url) as r:
            assert r.status == 200
    await recorder.close()
    upstream.seen.clear()
    return await proxies("replay", cassette, hosts=hosts)


async def test_a_tunnel_to_the_address_with_the_name_inside_is_replayed_not_forwarded(tmp_path, proxies):
    async with Upstream() as upstream:
        player = await _replaying_localhost(tmp_path, proxies, upstream)
        named = f"localhost:{upstream.port}"
        tunnel = f"CONNECT 127.0.0.1:{upstream.port} HTTP/1.1\r\nHost: 127.0.0.1:{upstream.port}\r\n\r\n"
        reply = await _raw(player.port, tunnel.encode(), _get(COLLECTION, named))
        assert reply.startswith(b"HTTP/1.1 200") and b"x-exportjobs-replay" in reply
        absolute = _get(COLLECTION, named, f"http://127.0.0.1:{upstream.port}{COLLECTION}")
        reply = await _raw(player.port, absolute)
        assert reply.startswith(b"HTTP/1.1 200") and b"x-exportjobs-replay" in reply
        other = _get("/v1.0/me", named, f"http://127.0.0.1:{upstream.port}/v1.0/me")
        reply = await _raw(player.port, other)
        assert reply.startswith(b"HTTP/1.1 502") and b"badGateway" in reply
        assert upstream.seen == []  # nothing reached the network, and no token with it


async def test_new_episodes_forwards_only_the_miss(tmp_path, started):
    """While a missed create is on its way upstream, another client's request for another
    path on the same host is answered by the proxy, not let through behind the miss."""
    async with Upstream(delay_s=1.5) as upstream:
        host = f"127.0.0.1:{upstream.port}"
        cassette = tmp_path / "e.yaml"
        proxy = await started({"exportjobs_record_mode": "new_episodes",
                               "exportjobs_cassette": cassette, "exportjobs_hosts": [host]})
        base = f"http://{host}"
        pair = {"goalsOrganizationId": str(uuid.uuid4()), "explorerViewId": str(uuid.uuid4())}
        async with aiohttp.ClientSession() as session:
            async def miss() -> int:
                async with session.post(base + COLLECTION, json=pair, proxy=proxy.url) as r:
                    return r.status

            missed = asyncio.create_task(miss())
            await asyncio.sleep(0.5)  # the miss is upstream now
            async with aiohttp.ClientSession() as other:
                async with other.get(base + "/v1.0/me", proxy=proxy.url) as r:
                    during = r.status
            assert await missed == 201
        assert during == 502
        assert upstream.seen == [("POST", COLLECTION)]


async def test_streaming_bodies_is_refused_at_start(tmp_path, started):
    """mitmproxy streams a large body upstream before any request hook runs, so the proxy
    will not start with stream_large_bodies set: the guard could not answer such a flow."""
    from exportjobs.addons.proxy import ProxyError

    with pytest.raises(ProxyError) as refused:
        await started({"exportjobs_mode": "record", "exportjobs_cassette": tmp_path / "s.yaml",
                       "stream_large_bodies": "1"})
    assert "stream_large_bodies" in str(refused.value)


@pytest.mark.parametrize("entry, host, port", [
    ("2001:db8:0:0:0:0:0:1", "2001:db8::1", 443),
    ("[2001:db8::1]:8443", "2001:db8:0:0:0:0:0:1", 8443),
    ("emu.local.", "EMU.local", 80),
    ("0:0:0:0:0:0:0:1", "::1", 8000),
])
def test_host_entries_mean_what_they_say(entry, host, port):
    assert Scope([entry]).covers(host, port)
