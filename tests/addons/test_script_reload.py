"""mitmproxy reloads a ``-s`` script when its file changes: the old addons must finish
(their cassette closed, nothing in flight lost) and the new ones take over, each flow
handled by exactly one set of them."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import aiohttp
import pytest

import exportjobs.addons.recordreplay as recordreplay
from exportjobs.addons.cassette import load_cassette
from exportjobs.simulator.emulator.app import EmulatorConfig, start_emulator
from tests.support.proxy import COLLECTION, LISTENING, MITMDUMP, auth_headers

ADDON = Path(recordreplay.__file__).with_name("mitmproxy_script.py")


async def _wait_for(log: Path, process: subprocess.Popen, what: str, count: int = 1,
                    timeout: float = 20) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        text = log.read_text(errors="replace")
        if text.count(what) >= count:
            return text
        if process.poll() is not None:
            raise AssertionError(f"mitmdump exited with {process.returncode}: {text}")
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {count}x {what!r} in mitmdump's log: {log.read_text(errors='replace')}")


async def _create(port: int) -> str:
    pair = {"goalsOrganizationId": str(uuid.uuid4()), "explorerViewId": str(uuid.uuid4())}
    async with aiohttp.ClientSession(headers=auth_headers()) as session:
        async with session.post(f"http://graph.microsoft.com{COLLECTION}", json=pair,
                                proxy=f"http://127.0.0.1:{port}") as response:
            await response.read()
            assert response.status == 201, response.status
            return response.headers["request-id"]


@pytest.mark.skipif(not MITMDUMP.exists(), reason="mitmdump is not installed beside this Python")
async def test_a_reloaded_script_hands_over_to_new_addons(tmp_path, mitm_confdir):
    script = tmp_path / "exportjobs_script.py"  # a copy: touching it must not touch the package
    shutil.copy(ADDON, script)
    emulator = await start_emulator(EmulatorConfig(start_after=60, run_for=60))
    cassette, log = tmp_path / "reload.yaml", tmp_path / "mitmdump.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(MITMDUMP), "-s", str(script), "--listen-host", "127.0.0.1", "-p", "0",
             "--set", "flow_detail=0", "--set", f"confdir={mitm_confdir}",
             "--set", "exportjobs_mode=record", "--set", f"exportjobs_cassette={cassette}",
             "--set", f"exportjobs_upstream={emulator.url}"],
            stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        text = await _wait_for(log, process, "listening at")
        found = LISTENING.search(text)
        assert found is not None, text
        port = int(found.group(1))
        await _create(port)
        later = time.time() + 5  # mitmproxy reloads a script whose mtime moved on
        os.utime(script, (later, later))
        await _wait_for(log, process, "Loading script", 2)
        await _wait_for(log, process, "recording to", 2)  # the new addons configured
        after = await _create(port)
    finally:
        process.terminate()
        process.wait(20)
        await emulator.close()
    text = log.read_text(errors="replace")
    assert process.returncode == 0, text
    assert "Traceback" not in text and "rror" not in text, text
    # the new addons recorded afresh (record mode replaces the cassette), the request once
    request_ids = [v for item in load_cassette(cassette).interactions
                   for k, v in item["response"]["headers"] if k.lower() == "request-id"]
    assert request_ids == [after], text
