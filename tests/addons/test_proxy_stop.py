"""SIGTERM a recording ``exportjobs proxy`` under load: a graceful stop loses nothing.

Every response a client received from the upstream (2xx or 4xx) must be in the cassette,
and the stop prints no traceback. (SIGKILL is tests/test_proxy_crash.py.)
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import uuid

import aiohttp

from exportjobs.addons.cassette import load_cassette
from exportjobs.simulator.emulator.app import EmulatorConfig, start_emulator
from tests.support.proxy import COLLECTION, auth_headers

_ON = re.compile(rb"on http://127\.0\.0\.1:(\d+);")


async def test_sigterm_under_load_loses_no_recorded_response(tmp_path, mitm_confdir):
    emulator = await start_emulator(EmulatorConfig(start_after=60, run_for=60))
    cassette = tmp_path / "stop.yaml"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "exportjobs", "proxy", "--mode", "record", "--cassette",
        str(cassette), "--port", "0", "--upstream", emulator.url, "--confdir", str(mitm_confdir),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    received: set[str] = set()
    enough = asyncio.Event()
    stop = False

    async def client(port: int) -> None:
        async with aiohttp.ClientSession(headers=auth_headers()) as session:
            while not stop:
                pair = {"goalsOrganizationId": str(uuid.uuid4()),
                        "explorerViewId": str(uuid.uuid4())}
                try:
                    async with session.post(f"http://graph.microsoft.com{COLLECTION}", json=pair,
                                            proxy=f"http://127.0.0.1:{port}") as r:
                        await r.read()
                        if r.status < 500 and "x-exportjobs-proxy-error" not in r.headers:
                            received.add(r.headers["request-id"])
                except (TimeoutError, aiohttp.ClientError, OSError):
                    return
                if len(received) >= 60:
                    enough.set()

    try:
        assert process.stdout is not None and process.stderr is not None
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        found = _ON.search(line)
        assert found, line
        workers = [asyncio.create_task(client(int(found.group(1)))) for _ in range(8)]
        await asyncio.wait_for(enough.wait(), 30)
        os.kill(process.pid, signal.SIGTERM)  # mid-traffic: the workers are still sending
        _, errors = await asyncio.wait_for(process.communicate(), 60)
        stop = True
        await asyncio.gather(*workers)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await emulator.close()
    assert process.returncode == 0, errors
    assert b"Traceback" not in errors and b"CancelledError" not in errors, errors.decode()
    loaded = load_cassette(cassette)
    assert loaded.torn is None
    recorded = {v for item in loaded.interactions
                for k, v in item["response"]["headers"] if k.lower() == "request-id"}
    assert len(received) >= 60
    assert received - recorded == set()
