"""The proxy fails closed: an exception in any hook of our addons, a hostile body, a hook that
undoes a replay answer or a cassette that cannot be indexed never lets an exportJobs request
reach its host. A Tripwire (a real listening socket on 127.0.0.1, put in scope) counts every
connection the proxy opens to it: zero.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

import exportjobs.addons.gate
import exportjobs.addons.recordreplay as recordreplay
from exportjobs.addons.cassette import load_cassette, new_header
from exportjobs.addons.guard import FailClosed
from exportjobs.addons.persister import CassetteWriter
from exportjobs.addons.proxy import ProxyError
from tests.support.proxy import COLLECTION, LISTENING, MITMDUMP, Tripwire, auth_headers

PAIR = {"goalsOrganizationId": "33333333-3333-4333-8333-333333333333",
        "explorerViewId": "44444444-4444-4444-8444-444444444444"}
DEEP = ("[" * 3000 + "]" * 3000).encode()


class Boom(Exception):
    pass


class Raises(FailClosed):
    """A test addon whose one named hook raises: the guard every addon here gets must catch it."""

    def __init__(self, hook: str, asynchronous: bool = False) -> None:
        self.hook, self.asynchronous = hook, asynchronous

    def _maybe(self, name: str):
        if name != self.hook:
            return None
        if self.asynchronous:
            async def later() -> None:
                await asyncio.sleep(0)
                raise Boom(f"{name} failed")
            return later()
        raise Boom(f"{name} failed")

    def requestheaders(self, flow):
        return self._maybe("requestheaders")

    def request(self, flow):
        return self._maybe("request")

    def responseheaders(self, flow):
        return self._maybe("responseheaders")

    def response(self, flow):
        return self._maybe("response")

    def error(self, flow):
        return self._maybe("error")


class Unanswers:
    """A hostile addon (not ours, no guard): it removes whatever answer a flow was given."""

    def request(self, flow):
        flow.response = None


async def _cassette(path: Path) -> Path:
    writer = CassetteWriter(path, new_header("2026-01-01T00:00:00Z", "test"))
    await writer.close()
    return path


async def _send(proxy_url: str, url: str, **kwargs) -> tuple[int, dict[str, str], object]:
    headers = {"client-request-id": "c-1", "Content-Type": "application/json"}
    async with aiohttp.ClientSession(headers=auth_headers()) as session:
        async with session.request(kwargs.pop("method", "POST"), url, proxy=proxy_url,
                                   headers=headers, **kwargs) as r:
            body = await r.read()
            try:
                data = json.loads(body)
            except ValueError:
                data = body
            return r.status, dict(r.headers), data


def _graph_error(status: int, headers: dict[str, str], body: object, want: int, code: str) -> None:
    assert status == want, (status, body)
    assert headers["Content-Type"].startswith("application/json")
    assert isinstance(body, dict) and body["error"]["code"] == code, body
    assert headers["request-id"] and headers["client-request-id"] == "c-1" and headers["Date"]


HOOKS = ["requestheaders", "request", "responseheaders", "response", "error"]


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("hook", HOOKS)
async def test_an_exception_in_any_hook_never_reaches_the_host_in_replay(
        proxies, tmp_path, hook, asynchronous):
    async with Tripwire() as wire:
        proxy = await proxies("replay", await _cassette(tmp_path / "c.yaml"),
                              hosts=[f"127.0.0.1:{wire.port}"],
                              extra_addons=[Raises(hook, asynchronous)])
        status, headers, body = await _send(proxy.url, wire.url + COLLECTION, json=PAIR)
        assert wire.accepts == 0
        if hook in ("error",):  # no error happens in replay: the miss is answered
            _graph_error(status, headers, body, 404, "notRecorded")
        else:
            _graph_error(status, headers, body, 502, "proxyFailed")


@pytest.mark.parametrize("hook", ["requestheaders", "request"])
async def test_an_exception_before_forwarding_never_reaches_the_host_in_record(
        proxies, tmp_path, hook):
    async with Tripwire() as wire:
        cassette = tmp_path / "rec.yaml"
        proxy = await proxies("record", cassette, hosts=[f"127.0.0.1:{wire.port}"],
                              extra_addons=[Raises(hook)])
        status, headers, body = await _send(proxy.url, wire.url + COLLECTION, json=PAIR)
        assert wire.accepts == 0
        _graph_error(status, headers, body, 502, "proxyFailed")
    await proxy.close()
    assert load_cassette(cassette).interactions == []


@pytest.mark.parametrize("target", ["request_doc", "response_doc", "exchange_line", "create_pair"])
async def test_an_exception_inside_our_own_addons_ends_the_flow(
        proxies, tmp_path, monkeypatch, emulator, target):
    """The real addons' helpers raise (ExportJobs.request, .response, .error; RaceGate.request):
    the client gets the proxy's Graph error, and nothing of it is recorded."""
    def broken(*args, **kwargs):
        raise Boom(f"{target} broke")

    module = exportjobs.addons.gate if target == "create_pair" else recordreplay
    monkeypatch.setattr(module, target, broken)
    cassette = tmp_path / "rec.yaml"
    proxy = await proxies("record", cassette, emulator.url, gate=2, gate_timeout=0.2)
    if target == "exchange_line":  # only the error hook uses it: make the upstream fail
        await emulator.close()
    status, headers, body = await _send(proxy.url, "http://graph.microsoft.com" + COLLECTION,
                                        json=PAIR)
    _graph_error(status, headers, body, 502, "proxyFailed")
    await proxy.close()
    assert load_cassette(cassette).interactions == []


async def test_replay_never_connects_even_when_a_hook_removes_the_answer(proxies, tmp_path):
    """Per flow the replay answers; at the connection level server_connect refuses the host,
    so a hook (not ours) that undoes the answer still cannot send the request out."""
    async with Tripwire() as wire:
        proxy = await proxies("replay", await _cassette(tmp_path / "c.yaml"),
                              hosts=[f"127.0.0.1:{wire.port}"], extra_addons=[Unanswers()])
        status, headers, body = await _send(proxy.url, wire.url + COLLECTION, json=PAIR)
        # and a path outside exportJobs on an in-scope host: replay is offline for it too
        other = await _send(proxy.url, wire.url + "/v1.0/me", method="GET")
        assert wire.accepts == 0
        _graph_error(status, headers, body, 502, "badGateway")
        _graph_error(*other, 502, "badGateway")


async def test_a_body_nested_3000_deep_is_kept_as_text_and_never_escapes_replay(proxies, tmp_path):
    async with Tripwire() as wire:
        proxy = await proxies("replay", await _cassette(tmp_path / "c.yaml"),
                              hosts=[f"127.0.0.1:{wire.port}"])
        status, headers, body = await _send(proxy.url, wire.url + COLLECTION, data=DEEP)
        assert wire.accepts == 0
        _graph_error(status, headers, body, 404, "notRecorded")


async def test_a_body_nested_3000_deep_is_recorded_through_the_upstream(proxies, tmp_path, emulator):
    cassette = tmp_path / "deep.yaml"
    proxy = await proxies("record", cassette, emulator.url)
    status, headers, body = await _send(proxy.url, "http://graph.microsoft.com" + COLLECTION,
                                        data=DEEP)
    assert "x-exportjobs-proxy-error" not in headers, body  # the upstream (emulator) answered
    await proxy.close()
    [item] = load_cassette(cassette).interactions
    assert item["request"]["text"] == DEEP.decode()
    assert item["response"]["status"] == status
    # ... and replays from the cassette
    replay = await proxies("replay", cassette)
    again, headers, _ = await _send(replay.url, "http://graph.microsoft.com" + COLLECTION, data=DEEP)
    assert again == status and headers["x-exportjobs-replay"].startswith("hit")


# --- a cassette that cannot be indexed refuses to start -----------------------------------------

BAD_CASSETTE = ("---\nformat: exportjobs-cassette\nversion: 1\n...\n"
                "---\nrequest: {method: GET, url: 'http://[', headers: []}\n"
                "response: {status: 200}\n...\n")


async def test_any_failure_while_indexing_refuses_to_start(proxies, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("an index that cannot be built")

    monkeypatch.setattr(recordreplay, "load_index", broken)
    with pytest.raises(ProxyError) as caught:
        await proxies("replay", await _cassette(tmp_path / "c.yaml"))
    assert caught.value.exit_code == 2
    assert "c.yaml" in str(caught.value) and "an index that cannot be built" in str(caught.value)


def test_the_cli_exits_2_on_a_cassette_that_cannot_be_indexed(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_CASSETTE)
    done = subprocess.run([sys.executable, "-m", "exportjobs", "proxy", "--mode", "replay",
                           "--cassette", str(bad), "--port", "0", "--confdir", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done
    assert "bad.yaml" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.skipif(not MITMDUMP.exists(), reason="mitmdump is not installed beside this Python")
async def test_mitmdump_does_not_come_up_serving_a_cassette_that_cannot_be_indexed(
        tmp_path, mitm_confdir):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_CASSETTE)
    async with Tripwire() as wire:
        process = await asyncio.create_subprocess_exec(
            str(MITMDUMP), "-s", str(Path(recordreplay.__file__).with_name("mitmproxy_script.py")), "--listen-host",
            "127.0.0.1", "-p", "0", "--set", f"confdir={mitm_confdir}",
            "--set", "exportjobs_mode=replay", "--set", f"exportjobs_cassette={bad}",
            "--set", f"exportjobs_hosts=127.0.0.1:{wire.port}",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path)
        output = b""
        try:
            assert process.stdout is not None
            while True:  # whatever it prints before it stops: try to use it while it does
                line = await asyncio.wait_for(process.stdout.readline(), 30)
                if not line:
                    break
                output += line
                found = LISTENING.search(line.decode(errors="replace"))
                if found:
                    try:
                        await _send(f"http://127.0.0.1:{found.group(1)}", wire.url + COLLECTION,
                                    json=PAIR)
                    except (aiohttp.ClientError, OSError):
                        pass
            code = await asyncio.wait_for(process.wait(), 30)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        assert code != 0, output
        assert wire.accepts == 0
        assert b"bad.yaml" in output
