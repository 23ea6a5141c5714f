"""The control API's one client, both transports, against a real emulator on 127.0.0.1,
and against servers that are not the emulator."""

from __future__ import annotations

import asyncio
import functools
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from exportjobs.graph import COLLECTION_PATH
from exportjobs.simulator.emulator.client import (
    EmulatorClient,
    EmulatorError,
    NotAnEmulator,
    SyncEmulatorClient,
    find_emulator,
)
from tests.support.emulator import new_pair

Call = Callable[..., Awaitable[Any]]


class Both:
    """One client's calls, awaitable whichever transport is under test (the blocking one
    runs in a thread, so the emulator on this loop keeps serving)."""

    def __init__(self, kind: str, url: str) -> None:
        self.kind = kind
        self.async_client = EmulatorClient(url)
        self.sync_client = SyncEmulatorClient(url)

    def __getattr__(self, name: str) -> Call:
        if self.kind == "async":
            return getattr(self.async_client, name)
        blocking = getattr(self.sync_client, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await asyncio.to_thread(functools.partial(blocking, *args, **kwargs))
        return call


@pytest.fixture(params=["async", "sync"])
async def control(request, emulator) -> AsyncIterator[Both]:
    both = Both(request.param, emulator.url)
    yield both
    await both.async_client.close()


async def test_every_call_reads_and_changes_the_emulator(control, emulator, http):
    info = await control.info()
    assert (info.start_after_s, info.run_for_s, info.unsafe_race_window_ms) == (2.0, 5.0, 0.0)
    assert info.jobs == 0 and info.known_organizations is None and info.clock_offset_s == 0

    pair = new_pair()
    async with http.post(COLLECTION_PATH, json=pair) as r:
        job_id = (await r.json())["id"]
    async with http.post(COLLECTION_PATH, json=pair) as r:
        assert r.status == 409
    log = await control.arrivals()
    assert [(a.status, a.job_id) for a in log.arrivals] == [(201, job_id), (409, job_id)]
    assert log.spread_us == log.arrivals[1].monotonic_us - log.arrivals[0].monotonic_us
    await control.clear_arrivals()
    assert (await control.arrivals()).arrivals == () and len(emulator.store.job_store.jobs) == 1

    moved = await control.advance_clock(1.5)
    assert moved.clock_offset_s == emulator.clock.offset == 1.5
    assert (await control.info()).clock_offset_s == 1.5

    failed = await control.fail_job(job_id)
    assert (failed.id, failed.status) == (job_id, "failed")
    later = await control.fail_job(job_id, immediately=False)
    assert later.ends_at >= failed.ends_at

    org = pair["goalsOrganizationId"]
    assert await control.set_organizations([org]) == (org,)
    assert (await control.info()).known_organizations == (org.lower(),)
    assert await control.set_organizations(None) is None

    await control.reset()
    after = await control.info()
    assert after.jobs == 0 and not emulator.store.job_store.jobs


async def test_an_emulator_refusal_is_an_error_with_its_message(control):
    with pytest.raises(EmulatorError, match="404 No such job in the emulator") as caught:
        await control.fail_job("no-such-job")
    assert not isinstance(caught.value, NotAnEmulator)
    with pytest.raises(EmulatorError, match=r"400 Give \{\"seconds\": N\}"):
        await control.advance_clock(-1)


Answer = Callable[[], web.Response]


def _other_service(answer: Answer | None) -> web.Application:
    """A real HTTP server that is not the emulator; ``/_emulator`` gives ``answer()``."""
    app = web.Application()
    if answer is not None:
        async def handler(request: web.Request) -> web.StreamResponse:
            return answer()
        app.router.add_route("*", "/_emulator{rest:.*}", handler)
    return app


@pytest.fixture
async def other_server() -> AsyncIterator[Callable[[Answer | None], Awaitable[str]]]:
    runners: list[web.AppRunner] = []

    async def start(answer: Answer | None) -> str:
        runner = web.AppRunner(_other_service(answer))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        host, port = runner.addresses[0][:2]
        return f"http://{host}:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.mark.parametrize("answer", [
    None,  # aiohttp's own 404 page
    lambda: web.Response(text="<html>hello</html>", content_type="text/html"),
    lambda: web.json_response({"unsafeRaceWindowMs": 0}),  # one field right is not enough
    lambda: web.json_response({"now": 1, "clockOffsetSeconds": 0, "startAfterSeconds": 2,
                       "runForSeconds": 5, "unsafeRaceWindowMs": 0,
                       "knownOrganizations": None, "jobs": 0}),  # a field of the wrong type
    lambda: web.json_response({"error": "nope"}, status=500),
], ids=["404-page", "html", "one-field", "wrong-type", "other-error"])
@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_something_else_is_not_an_emulator(other_server, answer, kind):
    url = await other_server(answer)
    control = Both(kind, url)
    try:
        with pytest.raises(NotAnEmulator, match="is this the exportjobs emulator"):
            await control.info()
        with pytest.raises(NotAnEmulator):
            await control.reset()
    finally:
        await control.async_client.close()
    assert await find_emulator(url) is None


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_nothing_listening_is_an_error_naming_the_url(kind):
    url = f"http://127.0.0.1:{_closed_port()}"
    control = Both(kind, url)
    try:
        with pytest.raises(EmulatorError, match=f"GET {url}/_emulator: no answer"):
            await control.info()
    finally:
        await control.async_client.close()
    assert await find_emulator(url) is None


async def test_find_emulator_finds_the_emulator(emulator):
    found = await find_emulator(emulator.url)
    assert found is not None
    try:
        assert (await found.info()).jobs == 0
    finally:
        await found.close()
