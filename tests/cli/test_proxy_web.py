"""``exportjobs proxy --web``: mitmproxy's web UI with our addons, seen in headless Chromium.

The proxy runs as a user runs it (a subprocess, free ports), records from the embedded
emulator with a fault plan, is switched to replay from the UI's own options endpoint, and
the flows' marks and comments are read from the page's DOM through the Chrome DevTools
protocol (a few lines over aiohttp's websocket client). Set EXPORTJOBS_WEB_SCREENSHOT=PATH
to keep the screenshot (docs/web-ui.png is made that way).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from mitmproxy.tools.web import webaddons
from mitmproxy.utils.emoji import emoji

from exportjobs.addons import annotate
from exportjobs.graph import COLLECTION_PATH
from exportjobs.simulator.emulator.auth import fake_token

GRAPH = "http://graph.microsoft.com"
WAIT = 60.0  # seconds, for each wait below: the proxy, the browser, the page


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("chromium is not installed (Debian: apt-get install -y chromium; .ci/run installs it)")
    return found


class Page:
    """One page of a headless Chromium, driven over the DevTools protocol."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        number = next(self.ids)
        await self.ws.send_json({"id": number, "method": method, "params": params})
        while True:
            message = await asyncio.wait_for(self.ws.receive_json(), WAIT)
            if message.get("id") == number:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return message["result"]

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, awaitPromise=True,
                                 returnByValue=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")


@contextlib.asynccontextmanager
async def browser(tmp: Path) -> AsyncIterator[Page]:
    profile = tmp / "profile"
    process = await asyncio.create_subprocess_exec(
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
        "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
        f"--user-data-dir={profile}", "--window-size=1400,440", "about:blank",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = asyncio.get_running_loop().time() + WAIT
        while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
            assert asyncio.get_running_loop().time() < deadline, "chromium did not start"
            await asyncio.sleep(0.1)
        port = port_file.read_text().split()[0]
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as listing:
                targets = await listing.json()
            page = next(t for t in targets if t["type"] == "page")
            async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                yield Page(ws)
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def line_of(stream: asyncio.StreamReader) -> str:
    return (await asyncio.wait_for(stream.readline(), WAIT)).decode()


ROWS = """JSON.stringify([...document.querySelectorAll('tr')]
  .filter(r => r.querySelector('td.col-comment'))
  .map(r => [r.querySelector('.marker')?.textContent ?? '',
             r.querySelector('td.col-comment').textContent]))"""

OPEN_LAST_COMMENT = """(async () => {
  const rows = [...document.querySelectorAll('tr')].filter(r => r.querySelector('td.col-comment'));
  const last = rows[rows.length - 1];
  for (const type of ['mousedown', 'mouseup', 'click'])
    last.dispatchEvent(new MouseEvent(type, {bubbles: true}));
  for (let i = 0; i < 50; i++) {
    const tab = [...document.querySelectorAll('nav a, .nav-tabs a')]
      .find(a => a.textContent.trim() === 'Comment');
    if (tab) { tab.dispatchEvent(new MouseEvent('click', {bubbles: true})); return true; }
    await new Promise(r => setTimeout(r, 100));
  }
  return false;
})()"""

CONNECTED = "!!document.querySelector('.connection-indicator.established')"

SET_MODE = """fetch('/options', {method: 'PUT', headers: {'Content-Type': 'application/json',
  'X-XSRFToken': (document.cookie.match(/_xsrf=([^;]+)/) || [])[1] || ''},
  body: JSON.stringify({exportjobs_mode: 'replay'})}).then(r => r.status)"""


async def test_the_web_ui_shows_what_happened_to_each_flow(emulator, tmp_path, mitm_confdir):
    cassette = tmp_path / "web.yaml"
    token = fake_token()
    proxy = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "exportjobs", "proxy", "--mode", "record", "--cassette", str(cassette),
        "--upstream", emulator.url, "--faults", "create:429(1s)#1", "--port", "0", "--web",
        "--web-port", "0", "--confdir", str(mitm_confdir),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proxy.stdout is not None and proxy.stderr is not None
    try:
        banner = await line_of(proxy.stdout)
        proxy_url = banner.split(" on ", 1)[1].split(";", 1)[0]
        web = await line_of(proxy.stdout)
        assert web.startswith("web UI: http://127.0.0.1:"), banner + web
        web_url = web.removeprefix("web UI: ").strip()
        # mitmproxy 11.1.2 on (WebAuth) asks for a login: the printed address carries the
        # token; 11.0 has none and the plain address is printed.
        login = hasattr(webaddons, "WebAuth")
        assert ("?token=" in web_url) == login, web_url
        if login:
            async with aiohttp.ClientSession() as anonymous:  # no cookie yet
                async with anonymous.get(web_url.partition("?")[0] + "flows") as refused:
                    assert refused.status == 403
                async with anonymous.get(web_url.replace("?token=", "flows?token=x")) as wrong:
                    assert wrong.status == 403

        async with browser(tmp_path) as page, aiohttp.ClientSession(
                headers={"Authorization": f"Bearer {token}"}) as client:
            async def call(method: str, path: str, body: object = None) -> int:
                async with client.request(method, GRAPH + path, json=body, proxy=proxy_url) as r:
                    await r.read()
                    return r.status

            await page.call("Page.navigate", url=web_url)
            # Connected before any traffic: every annotation must then reach the page as a
            # live update of its flow, not in a first fetch of the finished flows.
            deadline = asyncio.get_running_loop().time() + WAIT
            while not await page.evaluate(CONNECTED):
                assert asyncio.get_running_loop().time() < deadline, "the UI did not connect"
                await asyncio.sleep(0.1)
            create = {"goalsOrganizationId": "9ab0fcab-c1d4-4b26-963b-a3c33155f853",
                      "explorerViewId": "1b2c3d4e-c1d4-4b26-963b-a3c33155f853"}
            assert await call("POST", COLLECTION_PATH, create) == 429  # the fault
            await asyncio.sleep(1.1)  # its Retry-After
            assert await call("POST", COLLECTION_PATH, create) == 201  # recorded
            assert await call("GET", COLLECTION_PATH) == 200  # recorded
            assert await call("GET", "/v1.0/me") == 502  # refused: Graph goes to the emulator only

            # The UI's own options endpoint (as its Options menu does): replay what was recorded.
            assert await page.evaluate(SET_MODE) == 200
            assert await call("GET", COLLECTION_PATH) == 200  # replayed
            assert await call("GET", COLLECTION_PATH + "?$top=1") == 404  # a miss

            expected = [
                (annotate.FAULT, "FAULT injected: 429 rule 1; recorded #1"),
                (annotate.RECORDED, "recorded #2"),
                (annotate.RECORDED, "recorded #3"),
                (annotate.REFUSED, "refused: Graph's traffic goes to "),
                (annotate.REPLAYED, "replayed #3"),
                (annotate.MISSED, "MISS: not recorded; nearest recording #3 GET "),
            ]
            rows: list[list[str]] = []
            deadline = asyncio.get_running_loop().time() + WAIT
            while asyncio.get_running_loop().time() < deadline:
                rows = json.loads(await page.evaluate(ROWS) or "[]")
                if len(rows) >= len(expected) and all(comment for _, comment in rows):
                    break
                await asyncio.sleep(0.2)
            assert len(rows) == len(expected), rows
            for (mark, comment), (want_mark, want_comment) in zip(rows, expected, strict=True):
                assert mark == emoji[want_mark], (mark, comment)
                assert comment.startswith(want_comment), (comment, want_comment)
            assert "$top" in rows[-1][1]

            # The miss opened on its Comment tab, where the whole comment shows.
            assert await page.evaluate(OPEN_LAST_COMMENT) is True
            await asyncio.sleep(0.5)
            shot = await page.call("Page.captureScreenshot", format="png")
            png = base64.b64decode(shot["data"])
            assert png.startswith(b"\x89PNG")
            (tmp_path / "web-ui.png").write_bytes(png)
            if os.environ.get("EXPORTJOBS_WEB_SCREENSHOT"):
                Path(os.environ["EXPORTJOBS_WEB_SCREENSHOT"]).write_bytes(png)
            dom = await page.evaluate("document.documentElement.outerHTML")
            assert token not in dom
    finally:
        if proxy.returncode is None:
            proxy.send_signal(2)  # SIGINT: the proxy closes the cassette and exits 0
            try:
                await asyncio.wait_for(proxy.wait(), WAIT)
            except TimeoutError:
                proxy.kill()
                await proxy.wait()
    out = (await proxy.stdout.read()).decode() + (await proxy.stderr.read()).decode()
    assert proxy.returncode == 0, out
    assert token not in banner + web + out  # the Graph token never printed
    assert "Traceback" not in out
    assert "web_password" not in out  # no warning about a plaintext password nobody chose
