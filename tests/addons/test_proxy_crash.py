"""SIGKILL a recording ``mitmdump -s addons/exportjobs.py`` mid-traffic.

Every response a client received must be in the cassette afterwards, and the cassette must
load (a torn last document is dropped and reported). The same check run against a
deliberately broken addon, which writes after the response has gone on, must fail.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import textwrap
import uuid
from pathlib import Path

import aiohttp
import pytest

import exportjobs.addons.recordreplay as recordreplay
from exportjobs.addons.cassette import load_cassette
from exportjobs.simulator.emulator.app import EmulatorConfig, start_emulator
from tests.support.proxy import COLLECTION, LISTENING, MITMDUMP, auth_headers

ADDON = Path(recordreplay.__file__).with_name("mitmproxy_script.py")

BROKEN_ADDON = textwrap.dedent("""
    # Deliberately broken: the cassette write happens after the response went to the client.
    import asyncio
    from exportjobs.addons.recordreplay import ExportJobs

    class WritesLate(ExportJobs):
        async def _record(self, flow, exchange):
            async def later():
                await asyncio.sleep(0.5)
                await ExportJobs._record(self, flow, exchange)
            asyncio.get_running_loop().create_task(later())

    addons = [WritesLate()]
""")




async def _listening_port(log: Path, process: subprocess.Popen, timeout: float = 20) -> int:
    """The port mitmdump bound (it was started on port 0), from its own startup line."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        found = LISTENING.search(log.read_text(errors="replace"))
        if found:
            return int(found.group(1))
        if process.poll() is not None:
            raise AssertionError(f"mitmdump exited with {process.returncode}: "
                                 f"{log.read_text(errors='replace')}")
        await asyncio.sleep(0.05)
    raise AssertionError("mitmdump did not start listening")


async def _kill_mid_traffic(script: Path, tmp_path: Path, confdir: Path) -> tuple[set[str], Path]:
    """Run traffic through a recording mitmdump, SIGKILL it; returns received request-ids."""
    emulator = await start_emulator(EmulatorConfig(start_after=60, run_for=60))
    cassette, log = tmp_path / "crash.yaml", tmp_path / "mitmdump.log"
    with open(log, "wb") as out:  # port 0: mitmdump binds a free port and says which
        process = subprocess.Popen(
            [str(MITMDUMP), "-s", str(script), "--listen-host", "127.0.0.1", "-p", "0",
             "--set", "flow_detail=0", "--set", f"confdir={confdir}",
             "--set", "exportjobs_mode=record", "--set", f"exportjobs_cassette={cassette}",
             "--set", f"exportjobs_upstream={emulator.url}"],
            stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
    port = 0
    received: set[str] = set()
    enough = asyncio.Event()
    stop = False

    async def client() -> None:
        async with aiohttp.ClientSession(headers=auth_headers()) as session:
            while not stop:
                pair = {"goalsOrganizationId": str(uuid.uuid4()), "explorerViewId": str(uuid.uuid4())}
                try:
                    async with session.post(f"http://graph.microsoft.com{COLLECTION}", json=pair,
                                            proxy=f"http://127.0.0.1:{port}") as r:
                        await r.read()
                        received.add(r.headers["request-id"])
                except (TimeoutError, aiohttp.ClientError, OSError):
                    return
                if len(received) >= 60:
                    enough.set()

    try:
        port = await _listening_port(log, process)
        workers = [asyncio.create_task(client()) for _ in range(8)]
        await asyncio.wait_for(enough.wait(), 30)
        os.kill(process.pid, signal.SIGKILL)  # mid-traffic: the workers are still sending
        process.wait(10)
        stop = True
        await asyncio.gather(*workers)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        await emulator.close()
    assert process.returncode == -signal.SIGKILL
    return received, cassette


def _missing(received: set[str], cassette: Path) -> set[str]:
    loaded = load_cassette(cassette)  # must load, torn tail or not
    recorded = set()
    for item in loaded.interactions:
        recorded.update(v for k, v in item["response"]["headers"] if k.lower() == "request-id")
    return received - recorded


@pytest.mark.skipif(not MITMDUMP.exists(), reason="mitmdump is not installed beside this Python")
async def test_every_response_the_client_got_survives_sigkill(tmp_path, mitm_confdir):
    received, cassette = await _kill_mid_traffic(ADDON, tmp_path, mitm_confdir)
    assert len(received) >= 60
    assert _missing(received, cassette) == set()


@pytest.mark.skipif(not MITMDUMP.exists(), reason="mitmdump is not installed beside this Python")
async def test_the_crash_check_catches_an_addon_that_writes_after_responding(tmp_path, mitm_confdir):
    script = tmp_path / "writes_late.py"
    script.write_text(BROKEN_ADDON)
    received, cassette = await _kill_mid_traffic(script, tmp_path, mitm_confdir)
    assert _missing(received, cassette), "the check must notice responses missing from the file"
