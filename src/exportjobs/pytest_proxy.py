"""The pytest plugin's proxy: ``addons.proxy.start_proxy`` on a thread of its own.

A test's own code blocks (``requests``) or runs its own event loop (pytest-asyncio); the
proxy must answer either way, so it serves from its own loop, as the embedded emulator does
(``ServerThread``).
``TestProxy`` is what a test gets: the proxy's URL, its CA, and the environment that points
common HTTP clients at it. Kept apart from the plugin's hooks so it does not need pytest.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any

from exportjobs.addons.proxy import ProxyError, RunningProxy, start_proxy
from exportjobs.simulator.emulator.embedded import ServerThread

START_TIMEOUT_S = 30.0
LOOPBACK = "localhost,127.0.0.1,::1"
BUNDLE_FILE = "exportjobs-ca-bundle.pem"


class PluginError(Exception):
    """A mistake in using the plugin; the fixture reports it as one line."""


class TestProxy:
    """A running proxy for one test.

    ``url`` is the proxy's address; ``ca_cert`` the CA it signs intercepted HTTPS with and
    ``ca_bundle`` that CA added to certifi's (so other HTTPS keeps working with it);
    ``env`` the variables that make requests, httpx, urllib, curl and Node use the proxy;
    ``apply_env()`` sets them until the test ends.
    """

    __test__ = False  # not a test class, whatever its name

    def __init__(self, running: RunningProxy, cassette: Path, record_mode: str,
                 upstream: str | None, emulator: Any, ca_bundle: Path) -> None:
        self.url = running.url
        self.ca_cert: Path = running.ca_cert
        self.ca_bundle = ca_bundle
        self.cassette = cassette
        self.record_mode = record_mode
        self.upstream = upstream  # None: recordings come from the real Graph (or none are made)
        self.emulator = emulator  # the exportjobs_emulator it records from, else None
        self._saved: dict[str, str | None] | None = None

    @property
    def env(self) -> dict[str, str]:
        """Proxy and CA variables, in both spellings clients read. ``NO_PROXY`` is replaced
        by loopback only: a user's ``NO_PROXY`` naming Graph must not bypass the cassette."""
        bundle = str(self.ca_bundle)
        variables = {}
        for name, value in (("HTTPS_PROXY", self.url), ("HTTP_PROXY", self.url), ("NO_PROXY", LOOPBACK)):
            variables[name] = variables[name.lower()] = value
        variables.update(REQUESTS_CA_BUNDLE=bundle, SSL_CERT_FILE=bundle, CURL_CA_BUNDLE=bundle,
                         NODE_EXTRA_CA_CERTS=str(self.ca_cert))
        return variables

    def apply_env(self) -> dict[str, str]:
        """Set ``env`` in ``os.environ`` until this test ends (then the previous values come
        back). Clients read it when they are made (httpx, the Graph SDK) or per request
        (requests), so make them after this call."""
        variables = self.env
        if self._saved is None:
            self._saved = {name: os.environ.get(name) for name in variables}
        os.environ.update(variables)
        return variables

    def restore_env(self) -> None:
        if self._saved is None:
            return
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved = None

    def ssl_context(self) -> ssl.SSLContext:
        """A client context trusting ``ca_bundle``: for aiohttp, whose default context is
        made when it is imported and so never sees ``SSL_CERT_FILE`` set later."""
        return ssl.create_default_context(cafile=str(self.ca_bundle))


class ProxyFixture:
    """Start and stop one proxy on its own thread and event loop."""

    def __init__(self, *, cassette: Path, record_mode: str, upstream: str | None, confdir: Path,
                 emulator: Any = None) -> None:
        self.cassette, self.record_mode, self.upstream = cassette, record_mode, upstream
        self.confdir, self.emulator = confdir, emulator
        self._server: ServerThread[RunningProxy] = ServerThread(
            lambda: start_proxy(self.settings()), "exportjobs-proxy")

    def settings(self) -> dict[str, Any]:
        settings: dict[str, Any] = {"exportjobs_record_mode": self.record_mode,
                                    "exportjobs_cassette": str(self.cassette),
                                    "confdir": str(self.confdir)}
        if self.upstream is not None:
            settings["exportjobs_upstream"] = self.upstream
        return settings

    def start(self) -> TestProxy:
        if self.record_mode != "none":
            try:
                self.cassette.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise PluginError(f"cannot make the cassette folder {self.cassette.parent} "
                                  f"({exc.strerror})") from None
        try:
            running = self._server.run(START_TIMEOUT_S)
        except ProxyError as exc:
            raise PluginError(str(exc)) from None
        if running is None:
            raise PluginError(f"the proxy did not start within {START_TIMEOUT_S:.0f} s")
        return TestProxy(running, self.cassette, self.record_mode, self.upstream, self.emulator,
                         ca_bundle(running.ca_cert))

    def stop(self) -> None:
        """Stop serving; every recording in flight reaches the cassette first."""
        self._server.stop(START_TIMEOUT_S)


def ca_bundle(ca_cert: Path) -> Path:
    """certifi's CAs plus the proxy's, written once beside the CA: what the CA variables name,
    so a client trusting it still reaches hosts the proxy does not intercept."""
    bundle = ca_cert.with_name(BUNDLE_FILE)
    if not bundle.is_file():
        import certifi  # mitmproxy's own dependency

        text = Path(certifi.where()).read_text() + "\n" + ca_cert.read_text()
        partial = bundle.with_suffix(".partial")
        partial.write_text(text)
        partial.replace(bundle)
    return bundle


__all__ = ["PluginError", "ProxyFixture", "TestProxy", "ca_bundle"]
