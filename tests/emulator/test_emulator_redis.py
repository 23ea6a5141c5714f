"""The Redis store against a real redis-server: one service across processes, and outages.

Two ``exportjobs serve --store redis://...`` processes share one database; creates
alternate between them. The atomic create must hand out exactly one 201 across both; the
same burst against a deliberately non-atomic store must see more than one (so the check
can fail). A Redis that stops, or stops answering, gives Graph 503s with a Retry-After,
within the store's bounded timeouts, and the emulator answers again once Redis is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from exportjobs.simulator.emulator.app import EmulatorConfig, start_emulator
from exportjobs.simulator.emulator.auth import fake_token
from tests.support.emulator import COLLECTION, new_pair
from tests.support.redis import RedisServer

BURST = 1000
TIMEOUT = aiohttp.ClientTimeout(total=60)
HEADERS = {"Authorization": f"Bearer {fake_token()}"}


@contextlib.contextmanager
def served(store_url: str, *extra: str) -> Iterator[str]:
    """One ``exportjobs serve`` process on a free port of 127.0.0.1; its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "exportjobs", "serve", "--port", "0", "--quiet",
         "--store", store_url, *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        match = re.search(r"(http://127\.0\.0\.1:\d+)", line)
        if match is None:
            pytest.fail(f"serve printed no URL: {line!r} {proc.stderr.read() if proc.stderr else ''}")
        yield match[1]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def burst_over(urls: list[str], n: int) -> list[tuple[int, dict, str | None]]:
    """n identical creates released together, alternating between the emulators in ``urls``."""
    body = new_pair()
    release = asyncio.Event()
    sessions = [aiohttp.ClientSession(url, headers=HEADERS, timeout=TIMEOUT,
                                      connector=aiohttp.TCPConnector(limit=0, force_close=True))
                for url in urls]
    try:
        async def one(http: aiohttp.ClientSession) -> tuple[int, dict, str | None]:
            await release.wait()
            async with http.post(COLLECTION, json=body) as r:
                return r.status, await r.json(), r.headers.get("Location")

        tasks = [asyncio.create_task(one(sessions[i % len(sessions)])) for i in range(n)]
        await asyncio.sleep(0)
        release.set()
        return await asyncio.gather(*tasks)
    finally:
        for session in sessions:
            await session.close()


async def test_1000_identical_creates_over_two_processes_give_one_201_and_999_409s(redis_url):
    with served(redis_url) as first, served(redis_url) as second:
        results = await burst_over([first, second], BURST)
        async with aiohttp.ClientSession() as s, s.get(f"{second}/_emulator/arrivals") as r:
            log = await r.json()
    created = [r for r in results if r[0] == 201]
    conflicts = [r for r in results if r[0] == 409]
    assert len(created) == 1, [r[0] for r in created]
    assert len(conflicts) == BURST - 1
    winner = created[0][1]["id"]
    assert all(body["error"]["target"] == winner for _, body, _ in conflicts)
    assert all(location and location.endswith(f"/exportJobs/{winner}") for _, _, location in conflicts)
    # Both processes logged into one arrival log.
    assert len(log["arrivals"]) == BURST
    assert [a["status"] for a in log["arrivals"]].count(201) == 1
    assert {a["jobId"] for a in log["arrivals"]} == {winner}


async def test_the_two_process_check_catches_a_non_atomic_store(redis_url):
    """The same burst where the store reads, sleeps, then writes: more than one 201."""
    with served(redis_url, "--unsafe-race-window-ms", "20") as first, \
            served(redis_url, "--unsafe-race-window-ms", "20") as second:
        results = await burst_over([first, second], BURST)
    created = [r for r in results if r[0] == 201]
    assert len(created) > 1, "a store that reads then writes should hand out more than one 201"
    assert len(created) + sum(1 for r in results if r[0] == 409) == BURST


@pytest.fixture
async def redis_emulator(redis_server: RedisServer, redis_url: str) -> AsyncIterator[str]:
    running = await start_emulator(EmulatorConfig(store_url=redis_url))
    try:
        yield running.url
    finally:
        await running.close()
        if redis_server.process is None:
            redis_server.start()


REQUESTS = (("POST", COLLECTION), ("GET", COLLECTION),
            ("GET", f"{COLLECTION}/eyJfdHlwZSI6IkV4cG9ydEpvYiIsImlkIjoiMSJ9"), ("GET", "/_emulator"))


async def _requests(url: str, requests=REQUESTS) -> list[tuple[int, dict, dict]]:
    """By default a create, a list, a get of an unknown job and the control API's info:
    the status, body and headers of each."""
    answers = []
    async with aiohttp.ClientSession(url, headers=HEADERS, timeout=TIMEOUT) as http:
        for method, path in requests:
            body = new_pair() if method == "POST" else None
            async with http.request(method, path, json=body) as r:
                answers.append((r.status, await r.json(), dict(r.headers)))
    return answers


def _assert_503s(answers: list[tuple[int, dict, dict]]) -> None:
    for status, body, headers in answers:
        assert status == 503, (status, body)
        assert body["error"]["code"] == "serviceNotAvailable"
        assert headers["Retry-After"] == "1"


async def test_a_stopped_redis_gives_503s_and_the_emulator_answers_once_it_is_back(
        redis_server: RedisServer, redis_emulator: str):
    async with aiohttp.ClientSession(redis_emulator, headers=HEADERS, timeout=TIMEOUT) as http:
        async with http.post(COLLECTION, json=new_pair()) as r:
            assert r.status == 201
    redis_server.stop()
    _assert_503s(await _requests(redis_emulator))
    redis_server.start()
    answers = await _requests(redis_emulator)
    assert [a[0] for a in answers] == [201, 200, 404, 200]


async def test_a_redis_that_stops_answering_gives_503s_within_the_timeouts(
        redis_server: RedisServer, redis_emulator: str):
    process = redis_server.process
    assert process is not None
    os.kill(process.pid, signal.SIGSTOP)  # listening, but never replying: a hung Redis
    try:
        started = time.monotonic()
        _assert_503s(await _requests(redis_emulator, REQUESTS[:2]))
        assert time.monotonic() - started < 50, "each request ends within the socket timeouts"
    finally:
        os.kill(process.pid, signal.SIGCONT)
    answers = await _requests(redis_emulator)
    assert [a[0] for a in answers] == [201, 200, 404, 200]


def _workers_of(pid: int) -> list[int]:
    """The emulator workers among a process's children (not multiprocessing's helpers)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    workers = []
    for child in children:
        with contextlib.suppress(FileNotFoundError):
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                workers.append(int(child))
    return workers


def test_more_than_one_worker_with_the_memory_store_is_refused_saying_why():
    proc = subprocess.run([sys.executable, "-m", "exportjobs", "serve", "--port", "0", "--workers", "2"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "--workers N > 1 needs a shared store (--store redis://" in proc.stderr
    assert "Traceback" not in proc.stderr


async def test_two_workers_on_one_port_act_as_one_service(redis_url):
    proc = subprocess.Popen(
        [sys.executable, "-m", "exportjobs", "serve", "--port", "0", "--quiet", "--workers", "2",
         "--store", redis_url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        match = re.search(r"(http://127\.0\.0\.1:\d+)", line)
        assert match is not None, (line, proc.stderr.read() if proc.stderr else "")
        assert "2 workers" in line
        assert len(_workers_of(proc.pid)) == 2
        results = await burst_over([match[1]], BURST)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert sorted(r[0] for r in results) == [201] + [409] * (BURST - 1)



async def _commands_sent_by_clients(redis_url: str, during) -> list[str]:
    """The commands clients (not scripts) sent Redis while ``during()`` ran, from MONITOR."""
    host, port = redis_url.removeprefix("redis://").split("/")[0].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(b"MONITOR\r\n")
        assert await asyncio.wait_for(reader.readline(), 10) == b"+OK\r\n"
        await during()
        marker = f"end-{os.getpid()}-{time.monotonic_ns()}"
        _, echo_writer = await asyncio.open_connection(host, int(port))
        echo_writer.write(f"ECHO {marker}\r\n".encode())
        await echo_writer.drain()
        lines = []
        while marker not in (line := (await asyncio.wait_for(reader.readline(), 10)).decode()):
            lines.append(line)
        echo_writer.close()
        # "+<time> [<db> <client>] "<command>" ...": a script's own calls name the client "lua".
        return [line.split('"')[1].lower() for line in lines if "lua]" not in line]
    finally:
        writer.close()


async def test_a_create_is_one_redis_command_known_organization_check_included(redis_url):
    """The known-organization check runs inside the create script: a 201, a 409 and an
    unknown organization's 404 each send Redis one EVALSHA and nothing else."""
    known = new_pair()
    running = await start_emulator(EmulatorConfig(store_url=redis_url,
                                                  known_organizations=[known["goalsOrganizationId"]]))
    statuses = []
    try:
        async with aiohttp.ClientSession(running.url, headers=HEADERS, timeout=TIMEOUT) as http:
            warm = {**known, "explorerViewId": new_pair()["explorerViewId"]}
            async with http.post(COLLECTION, json=warm) as r:  # loads the script, opens the pool
                assert r.status == 201

            async def creates() -> None:
                for body in (known, known, new_pair()):
                    async with http.post(COLLECTION, json=body) as r:
                        statuses.append(r.status)

            commands = await _commands_sent_by_clients(redis_url, creates)
    finally:
        await running.close()
    assert statuses == [201, 409, 404]
    assert commands == ["evalsha"] * 3
