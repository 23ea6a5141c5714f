"""Helpers shared by the proxy tests: clients through the proxy, races, secret scans,
upstream tripwires, and how to start mitmdump."""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from exportjobs.simulator.emulator.app import EmulatorConfig, start_emulator
from exportjobs.simulator.emulator.auth import fake_token

COLLECTION = "/beta/employeeExperience/goals/exportJobs"
KEY_HEADERS = ("Location", "Content-Type", "Retry-After")


@dataclass
class Result:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def comparable(self) -> tuple[int, dict[str, str | None], Any]:
        """Status, the headers that matter, and the body as data (bytes when not JSON); an
        error's ``innerError`` ids and date are per answer, like the headers they repeat, so
        they are left out."""
        try:
            body: Any = self.json
        except ValueError:
            body = self.body
        return self.status, {h: self.headers.get(h) for h in KEY_HEADERS}, without_volatile(body)


def without_volatile(body: Any) -> Any:
    """``body`` without an error's per-answer ``innerError`` ids and date (a copy)."""
    inner = body.get("error", {}).get("innerError") if isinstance(body, dict) else None
    if not isinstance(inner, dict):
        return body
    kept = {k: v for k, v in inner.items() if k not in ("request-id", "client-request-id", "date")}
    return {**body, "error": {**body["error"], "innerError": kept}}


class ProxiedClient:
    """aiohttp through the proxy, to ``base`` (http:// or https://graph.microsoft.com)."""

    def __init__(self, session: aiohttp.ClientSession, proxy_url: str, base: str,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.session = session
        self.proxy_url = proxy_url
        self.base = base
        self.ssl = ssl_context if ssl_context is not None else True

    async def call(self, method: str, path_or_url: str, **kwargs: Any) -> Result:
        url = path_or_url if "://" in path_or_url else self.base + path_or_url
        async with self.session.request(method, url, proxy=self.proxy_url, ssl=self.ssl,
                                        **kwargs) as response:
            body = await response.read()
            return Result(response.status, dict(response.headers), body)


def auth_headers(**claims: object) -> dict[str, str]:
    return {"Authorization": f"Bearer {fake_token(**claims)}"}


async def race(client: ProxiedClient, pair: dict[str, str], n: int = 10,
               headers: dict[str, str] | None = None) -> list[Result]:
    """``n`` identical creates at once."""
    return list(await asyncio.gather(*(
        client.call("POST", COLLECTION, json=pair, headers=headers or auth_headers())
        for _ in range(n))))


def race_problem(results: list[Result]) -> str | None:
    """None when a race came out as Graph promises: one 201, the rest 409 naming the winner."""
    statuses = sorted(r.status for r in results)
    if statuses.count(201) != 1 or statuses.count(409) != len(results) - 1:
        return f"expected one 201 and {len(results) - 1} 409s, got {statuses}"
    winner = next(r for r in results if r.status == 201).json["id"]
    targets = {r.json["error"]["target"] for r in results if r.status == 409}
    if targets != {winner}:
        return f"409s name {targets}, the 201 created {winner}"
    return None


def leaked(paths: list[Path] | Path, canaries: list[str]) -> list[str]:
    """Every canary found in any of ``paths`` (or in a string given instead of a path)."""
    found = []
    items = paths if isinstance(paths, list) else [paths]
    texts = [p.read_text(errors="replace") if isinstance(p, Path) else str(p) for p in items]
    for canary in canaries:
        if any(canary in text for text in texts):
            found.append(canary)
    return found


class Tripwire:
    """A listening socket that counts every connection made to it."""

    def __init__(self) -> None:
        self.accepts = 0
        self.server: asyncio.base_events.Server | None = None

    async def __aenter__(self) -> Tripwire:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.accepts += 1
            writer.close()

        self.server = await asyncio.start_server(handle, "127.0.0.1", 0)
        return self

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


class ConnectSpy:
    """A mitmproxy addon noting every upstream connection the proxy tries to open.

    With ``block`` it also stops them, so that nothing (not even a DNS lookup) leaves the
    machine when a test proves the spy works against a misconfigured proxy.
    """

    def __init__(self, block: bool = False) -> None:
        self.attempts: list[object] = []
        self.block = block

    def server_connect(self, data: Any) -> None:
        self.attempts.append(data.server.address)
        if self.block:
            data.server.error = "blocked by the test's ConnectSpy"


Scenario = Callable[[ProxiedClient, Callable[[float], Awaitable[None]]], Awaitable[list[Result]]]


MITMDUMP = Path(sys.executable).with_name("mitmdump")
# mitmdump's start-up line, which names the port it bound (it is started on port 0).
LISTENING = re.compile(r"proxy listening at .*:(\d+)\.")

RACE_PAIR = {"goalsOrganizationId": "11111111-1111-4111-8111-111111111111",
             "explorerViewId": "22222222-2222-4222-8222-222222222222"}

def proxied_client(session, proxy, scheme, mitm_ssl) -> ProxiedClient:
    ssl_context = mitm_ssl() if scheme == "https" else None
    return ProxiedClient(session, proxy.url, f"{scheme}://graph.microsoft.com", ssl_context)


async def record_race(tmp_path, proxies, scheme="http", mitm_ssl=None):
    """Record a 10-way create race; returns the cassette path and what the clients got."""
    emulator = await start_emulator(EmulatorConfig(start_after=60, run_for=60))
    cassette = tmp_path / "race.yaml"
    proxy = await proxies("record", cassette, emulator.url)
    try:
        async with aiohttp.ClientSession() as session:
            raced = await race(proxied_client(session, proxy, scheme, mitm_ssl), RACE_PAIR)
    finally:
        await proxy.close()
        await emulator.close()
    assert race_problem(raced) is None
    return cassette, raced


# A cassette holding one recorded list GET (an empty list), for proxies started by the tests.
ONE_LIST_CASSETTE = """\
--- {format: exportjobs-cassette, version: 1, created: '2026-01-01T00:00:00Z', tool: test}
...
---
interaction: 1
request: {method: GET, url: 'http://graph.microsoft.com/beta/employeeExperience/goals/exportJobs',
  headers: []}
response:
  status: 200
  headers: [[Content-Type, application/json]]
  json: {value: []}
...
"""
