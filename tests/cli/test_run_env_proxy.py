"""``exportjobs run`` honours HTTPS_PROXY, HTTP_PROXY and NO_PROXY as curl and requests do:
checked through a real proxy on 127.0.0.1 (the project's own, passing traffic through) that
notes every request it carries."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

from exportjobs.simulator.transport import RequestError, environment_proxy, no_proxy_entry

EXPORTJOBS = [sys.executable, "-m", "exportjobs"]
CLEAN = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}


class Carried:
    """A mitmproxy addon noting the host:port of every request the proxy carries."""

    def __init__(self) -> None:
        self.hosts: list[str] = []

    def request(self, flow) -> None:
        self.hosts.append(f"{flow.request.host}:{flow.request.port}")


@pytest.fixture
async def forward_proxy(mitm_confdir):
    from exportjobs.addons.proxy import start_proxy

    carried = Carried()
    proxy = await start_proxy({"exportjobs_mode": "passthrough", "confdir": mitm_confdir},
                              extra_addons=[carried])
    try:
        yield proxy.url, carried
    finally:
        await proxy.close()


async def run(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *EXPORTJOBS, "run", "--no-progress", "validation-errors", *args, env={**CLEAN, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_http_proxy_carries_the_run_and_says_so(emulator, forward_proxy):
    url, carried = forward_proxy
    code, out, err = await run("--target", emulator.url, env={"HTTP_PROXY": url})
    assert code == 0, out + err
    assert f"using the proxy {url} from HTTP_PROXY for {emulator.url}" in err
    target = emulator.url.removeprefix("http://")
    assert carried.hosts.count(target) == 7  # every request of the scenario went through it


async def test_lower_case_wins_and_no_proxy_exempts_the_target(emulator, forward_proxy):
    url, carried = forward_proxy
    port = emulator.url.rsplit(":", 1)[1]
    for no_proxy in (f"127.0.0.1:{port}", "example.com, 127.0.0.0/8"):  # more: test_no_proxy_entries
        code, out, err = await run("--target", emulator.url,
                                   env={"http_proxy": url, "HTTP_PROXY": "http://127.0.0.1:9",
                                        "NO_PROXY": no_proxy})
        assert code == 0, out + err
        assert "NO_PROXY" in err and "connecting directly" in err
    assert carried.hosts == []


async def test_a_no_proxy_entry_for_another_port_does_not_exempt(emulator, forward_proxy):
    url, carried = forward_proxy
    code, out, err = await run("--target", emulator.url,
                               env={"http_proxy": url, "no_proxy": "127.0.0.1:1,localhost"})
    assert code == 0, out + err
    assert len(carried.hosts) == 7  # localhost is not 127.0.0.1 to curl or requests either


async def test_the_proxy_flag_wins_over_the_environment(emulator, forward_proxy):
    url, carried = forward_proxy
    code, out, err = await run("--target", emulator.url, "--proxy", url,
                               env={"HTTP_PROXY": "http://127.0.0.1:9"})
    assert code == 0, out + err
    assert "from HTTP_PROXY" not in err and len(carried.hosts) == 7


async def test_the_embedded_emulator_is_not_sent_to_a_stray_proxy(forward_proxy):
    url, carried = forward_proxy
    code, out, err = await run(env={"HTTP_PROXY": url, "HTTPS_PROXY": url})
    assert code == 0, out + err
    assert "HTTP_PROXY is not used for the embedded emulator" in err
    assert carried.hosts == []


async def test_a_proxy_it_cannot_use_is_refused_naming_the_variable(emulator):
    code, _, err = await run("--target", emulator.url, env={"HTTP_PROXY": "socks5://127.0.0.1:1080"})
    assert code == 2
    assert "HTTP_PROXY 'socks5://127.0.0.1:1080': only http:// proxies are supported" in err


@pytest.mark.parametrize("host, port, no_proxy, entry", [
    ("graph.microsoft.com", 443, "microsoft.com", "microsoft.com"),
    ("graph.microsoft.com", 443, ".microsoft.com", ".microsoft.com"),
    ("graph.microsoft.com", 443, "*.microsoft.com", "*.microsoft.com"),
    ("graph.microsoft.com", 443, "GRAPH.Microsoft.com.", "GRAPH.Microsoft.com."),
    ("notmicrosoft.com", 443, "microsoft.com", None),
    ("graph.microsoft.com", 443, "graph.microsoft.com:443", "graph.microsoft.com:443"),
    ("graph.microsoft.com", 443, "graph.microsoft.com:8443", None),
    ("127.0.0.1", 8000, "localhost", None),
    ("127.0.0.1", 8000, "127.0.0.1", "127.0.0.1"),
    ("::1", 8000, "::1", "::1"),
    ("::1", 8000, "[::1]:8000", "[::1]:8000"),
    ("10.1.2.3", 80, "10.0.0.0/8", "10.0.0.0/8"),
    ("example.com", 80, "10.0.0.0/8", None),
    ("anything", 80, " * ", "*"),
    ("a.example", 80, "", None),
])
def test_no_proxy_entries(host, port, no_proxy, entry):
    assert no_proxy_entry(host, port, no_proxy) == entry


def test_which_variable_applies():
    env = {"HTTPS_PROXY": "proxy:3128", "http_proxy": "http://other:1"}
    found = environment_proxy("https://graph.microsoft.com", env)
    assert (found.variable, found.proxy) == ("HTTPS_PROXY", "http://proxy:3128")  # no scheme: http
    assert environment_proxy("http://127.0.0.1:8000", env).proxy == "http://other:1"
    assert environment_proxy("https://x", {"http_proxy": "http://p:1"}) is None
    # a CGI request's "Proxy:" header lands in HTTP_PROXY (httpoxy): ignored, as requests does
    assert environment_proxy("http://x", {"HTTP_PROXY": "http://p:1", "REQUEST_METHOD": "GET"}) is None
    with pytest.raises(RequestError, match="https_proxy 'https://p:1': only http:// proxies"):
        environment_proxy("https://x", {"https_proxy": "https://p:1"})
