"""Shared fixtures: a real emulator on 127.0.0.1 and an HTTP client for it."""

from __future__ import annotations

import dataclasses
import resource
from collections.abc import AsyncIterator

import aiohttp
import pytest

from exportjobs.simulator.emulator.app import EmulatorConfig, RunningEmulator, start_emulator
from exportjobs.simulator.emulator.auth import fake_token
from tests.support.emulator import COLLECTION, new_pair  # noqa: F401 - re-exported for fixtures
from tests.support.redis import redis_server, redis_url  # noqa: F401 - fixtures

# Race tests hold ~1,000 sockets in one process (both ends of 500 connections).
_soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if _soft != resource.RLIM_INFINITY and _soft < 8192:
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(8192, _hard), _hard))




@pytest.fixture
def emulator_config() -> EmulatorConfig:
    """Override in a test module to start the emulator differently."""
    return EmulatorConfig(start_after=2.0, run_for=5.0)


@pytest.fixture
def emulator_store() -> str:
    """Which store the emulator keeps its state in: "memory"; override (parametrize) in a
    test module with "redis" too to run its tests against the Redis store as well."""
    return "memory"


@pytest.fixture
async def emulator(emulator_config: EmulatorConfig, emulator_store: str,
                   request: pytest.FixtureRequest) -> AsyncIterator[RunningEmulator]:
    if emulator_store == "redis":
        emulator_config = dataclasses.replace(emulator_config,
                                              store_url=request.getfixturevalue("redis_url"))
    running = await start_emulator(emulator_config)
    try:
        yield running
    finally:
        await running.close()


@pytest.fixture
async def http(emulator: RunningEmulator) -> AsyncIterator[aiohttp.ClientSession]:
    """A client for the emulator, authorised with a token holding ReadWrite.All."""
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(
        emulator.url,
        headers={"Authorization": f"Bearer {fake_token()}"},
        connector=connector,
    ) as session:
        yield session


# --- proxy addon fixtures (tests/test_addon*.py, test_cassette*.py, test_proxy*.py) ----------


@pytest.fixture(scope="session")
def mitm_confdir(tmp_path_factory: pytest.TempPathFactory):
    """A mitmproxy confdir shared by the session, so the CA is generated once."""
    return tmp_path_factory.mktemp("mitmproxy-conf")


@pytest.fixture
async def proxies(mitm_confdir):
    """``await proxies(mode, cassette, upstream, **kw)`` starts an in-process proxy; all close after.

    ``kw`` names options without their ``exportjobs_`` prefix (``gate=2``, ``miss_policy=...``),
    or ``confdir``, ``port`` and ``extra_addons``."""
    from exportjobs.addons.proxy import start_proxy

    started = []

    async def start(mode, cassette, upstream=None, *, port=0, extra_addons=(), **kwargs):
        settings = {"confdir": kwargs.pop("confdir", mitm_confdir), "exportjobs_mode": mode,
                    "exportjobs_cassette": cassette, "exportjobs_upstream": upstream}
        settings.update({f"exportjobs_{name}": value for name, value in kwargs.items()})
        running = await start_proxy(settings, port=port, extra_addons=extra_addons)
        started.append(running)
        return running

    try:
        yield start
    finally:
        for running in reversed(started):
            await running.close()


@pytest.fixture
def mitm_ssl(mitm_confdir):
    """An SSL context trusting the mitmproxy CA of ``mitm_confdir`` (start a proxy first)."""
    import ssl

    def context():
        return ssl.create_default_context(cafile=str(mitm_confdir / "mitmproxy-ca-cert.pem"))

    return context
