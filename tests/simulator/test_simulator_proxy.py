"""Bursts and scenarios through a real mitmproxy (the project's proxy in passthrough mode)."""

from __future__ import annotations

import io
import json

import pytest

from exportjobs.addons.proxy import start_proxy
from tests.support.scenarios import RACE, broken, scenario


@pytest.mark.parametrize("release", ["none", "barrier", "last-byte"])
async def test_bursts_work_through_an_http_proxy_to_an_http_target(emulator, release, tmp_path):
    proxy = await start_proxy({"exportjobs_mode": "passthrough", "confdir": tmp_path})
    try:
        result = await run(RACE.replace("RELEASE", release), emulator.url, proxy.url)
    finally:
        await proxy.close()
    assert result.ok, broken(result)
    assert dict(result.steps[0].stats.statuses) == {201: 1, 409: 29}
    assert result.proxy == proxy.url


async def run(text, target, proxy):
    from exportjobs.simulator.runner import run_scenario

    return await run_scenario(scenario(text), target=target, proxy=proxy)


async def test_an_unreachable_proxy_aborts_with_exit_3(emulator, unused_tcp_port):
    from exportjobs.simulator.runner import RunAborted

    with pytest.raises(RunAborted) as info:
        await run(RACE.replace("RELEASE", "none"), emulator.url, f"http://127.0.0.1:{unused_tcp_port}")
    assert info.value.exit_code == 3 and "cannot reach the proxy" in str(info.value)


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_bursts_send_the_proxy_urls_credentials(emulator, proxies, mitm_ssl, scheme):
    """A proxy that asks for credentials gets them from the proxy URL: in the request line's
    headers over plain HTTP, on the CONNECT for HTTPS. Without them it answers 407."""
    from exportjobs.simulator.report import print_summary, run_data
    from exportjobs.simulator.runner import run_scenario

    proxy = await proxies("passthrough", None, emulator.url)
    proxy.master.options.update(proxyauth="alice:s3cret")
    target = f"{scheme}://graph.microsoft.com"  # the proxy sends it on to the emulator
    ssl_context = mitm_ssl() if scheme == "https" else None
    text = RACE.replace("RELEASE", "last-byte")
    authorised = proxy.url.replace("http://", "http://alice:s3cret@")
    result = await run_scenario(scenario(text), target=target, proxy=authorised,
                                ssl_context=ssl_context)
    assert result.ok, broken(result)
    assert dict(result.steps[0].stats.statuses) == {201: 1, 409: 29}
    shown = io.StringIO()
    print_summary(result, shown)
    assert "s3cret" not in shown.getvalue() + json.dumps(run_data(result))
    refused = await run_scenario(scenario(text), target=target, proxy=proxy.url,
                                 ssl_context=ssl_context)
    assert not refused.ok


async def test_proxy_credentials_http_cannot_carry_are_a_clear_error(emulator):
    from exportjobs.simulator.runner import RunAborted

    with pytest.raises(RunAborted) as info:
        await run(RACE.replace("RELEASE", "none"), emulator.url, "http://a%3Ab:pw@127.0.0.1:9")
    assert info.value.exit_code == 2 and "credentials cannot be sent" in str(info.value)
    assert "pw@" not in str(info.value)
