"""The duplicate-create race: exactly one 201 under concurrency, and a check with teeth."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from exportjobs.simulator.emulator.app import EmulatorConfig, start_emulator
from exportjobs.simulator.emulator.auth import fake_token
from tests.support.emulator import COLLECTION, new_pair

BURST = 500


async def burst_of_creates(url: str, n: int) -> list[tuple[int, dict, str | None]]:
    """Open n connections, then release n identical creates together."""
    body = new_pair()
    headers = {"Authorization": f"Bearer {fake_token()}"}
    release = asyncio.Event()
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(url, headers=headers, connector=connector,
                                     timeout=timeout) as http:

        async def one() -> tuple[int, dict, str | None]:
            await release.wait()
            async with http.post(COLLECTION, json=body) as r:
                return r.status, await r.json(), r.headers.get("Location")

        tasks = [asyncio.create_task(one()) for _ in range(n)]
        await asyncio.sleep(0)
        release.set()
        return await asyncio.gather(*tasks)


def race_summary(results) -> tuple[list, list]:
    created = [r for r in results if r[0] == 201]
    conflicts = [r for r in results if r[0] == 409]
    return created, conflicts


async def test_500_concurrent_identical_creates_give_one_201_and_499_409s(emulator):
    results = await burst_of_creates(emulator.url, BURST)
    created, conflicts = race_summary(results)
    assert len(created) == 1
    assert len(conflicts) == BURST - 1
    winner_id, winner_location = created[0][1]["id"], created[0][2]
    assert all(body["error"]["target"] == winner_id for _, body, _ in conflicts)
    assert all(location == winner_location for _, _, location in conflicts)

    async with aiohttp.ClientSession() as s:
        async with s.get(f"{emulator.url}/_emulator/arrivals") as r:
            log = await r.json()
    assert len(log["arrivals"]) == BURST
    assert sorted(a["status"] for a in log["arrivals"]).count(201) == 1
    assert log["spreadUs"] > 0


@pytest.mark.parametrize("window_ms", [5.0])
async def test_the_race_check_catches_an_unsafe_server(window_ms):
    """The same check against a server with a gap between check and insert: it must fail."""
    broken = await start_emulator(EmulatorConfig(unsafe_race_window_ms=window_ms))
    try:
        results = await burst_of_creates(broken.url, BURST)
    finally:
        await broken.close()
    created, conflicts = race_summary(results)
    assert len(created) > 1, "the unsafe server should hand out more than one 201"
    assert len(created) + len(conflicts) == BURST
