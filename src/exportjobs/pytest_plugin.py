"""exportjobs' pytest plugin: the emulator and the record/replay proxy as fixtures.

Loaded by pytest through the ``pytest11`` entry point, so installing the package is enough
(docs/pytest.md). ``exportjobs_emulator`` is a fresh emulator per test; ``exportjobs_proxy``
is a proxy per test that records a cassette or replays it, with VCR.py's record modes as
pytest-recording spells them (``--exportjobs-record-mode``, default ``none``: replay only,
so a suite never reaches the network unless asked to record).

Both run on threads of their own, each with its own event loop: a sync test blocking on
``requests`` does not stop them, and an async test's loop does not serve them either.
Mistakes in using the plugin end as one pytest error line naming what to change.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # imported by the fixtures that use them: pytest starts as fast without them
    from exportjobs.pytest_proxy import TestProxy
    from exportjobs.simulator.emulator.app import EmulatorConfig
    from exportjobs.simulator.emulator.client import EmulatorClient
    from exportjobs.simulator.emulator.embedded import EmbeddedEmulator

MARKER = "exportjobs_cassette"
RECORD_MODE_OPTION = "--exportjobs-record-mode"
UPSTREAM_OPTION = "--exportjobs-upstream"
DEFAULT_RECORD_MODE = "none"  # as pytest-recording: record only when asked
# The proxy's record modes (exportjobs.addons.recordreplay.RECORD_MODES, which a test holds
# this copy to): named here so that loading the plugin, in every pytest run, imports no mitmproxy.
RECORD_MODES = ("none", "once", "new_episodes", "all")
GRAPH = "graph"  # the upstream value that sends recordings to the real Graph
# Deprecations inside mitmproxy and the libraries it imports: not the user's to act on.
_LIBRARY_WARNINGS = ("ignore::DeprecationWarning:ldap3.*", "ignore::DeprecationWarning:passlib.*",
                     "ignore::DeprecationWarning:mitmproxy.*")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("exportjobs", "exportjobs record/replay (docs/pytest.md)")
    group.addoption(RECORD_MODE_OPTION, choices=RECORD_MODES, default=None,
                    help="Record mode of the exportjobs_proxy fixture's cassettes: none replays "
                         "only (the default, or the exportjobs_record_mode ini value); once records "
                         "missing cassettes; new_episodes appends what is not recorded; all "
                         "records afresh.")
    group.addoption(UPSTREAM_OPTION, default=None, metavar="URL",
                    help="Where exportjobs_proxy records from: a base URL such as "
                         "http://127.0.0.1:8000, or 'graph' for the real graph.microsoft.com. "
                         "Default: the exportjobs_upstream ini value, else an in-process emulator.")
    parser.addini("exportjobs_record_mode", "Default of --exportjobs-record-mode.",
                  default=DEFAULT_RECORD_MODE)
    parser.addini("exportjobs_upstream", "Default of --exportjobs-upstream.", default="")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(path=None, *, upstream=None): the cassette of the exportjobs_proxy fixture "
        "(relative to the test file; default cassettes/<module>/<test>.yaml) and where it "
        "records from (see --exportjobs-upstream).")
    for noise in _LIBRARY_WARNINGS:
        config.addinivalue_line("filterwarnings", noise)
    if config.option.help:
        return
    mode = record_mode(config)
    if mode not in RECORD_MODES:
        raise pytest.UsageError(f"ini option exportjobs_record_mode: {mode!r} is not a record mode; "
                                f"use one of {', '.join(RECORD_MODES)}")
    for where, value in ((UPSTREAM_OPTION, config.getoption(UPSTREAM_OPTION)),
                         ("ini option exportjobs_upstream", config.getini("exportjobs_upstream"))):
        try:
            check_upstream(value)
        except ValueError as exc:
            raise pytest.UsageError(f"{where}: {exc}") from None


def record_mode(config: pytest.Config) -> str:
    """The command line's record mode, else the ini file's."""
    return str(config.getoption(RECORD_MODE_OPTION) or config.getini("exportjobs_record_mode")
               or DEFAULT_RECORD_MODE)


def check_upstream(value: str | None) -> None:
    """ValueError unless ``value`` is empty, ``graph`` or a base URL."""
    if value and value != GRAPH:
        from exportjobs.addons.upstream import Upstream

        Upstream.parse(value)


# --- the emulator ------------------------------------------------------------------------------


class TestEmulator:
    """A running emulator: ``url`` (its base URL, plain HTTP on 127.0.0.1) and ``control``, the
    typed client of its control API (reset, advance_clock, fail_job, arrivals, ...)."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self, embedded: EmbeddedEmulator) -> None:
        self.embedded = embedded
        self.url: str = embedded.url
        from exportjobs.simulator.emulator.client import SyncEmulatorClient

        self.control = SyncEmulatorClient(self.url)

    def async_control(self) -> EmulatorClient:
        """The same control API over aiohttp, for async tests: ``async with
        emulator.async_control() as control: await control.advance_clock(60)``."""
        from exportjobs.simulator.emulator.client import EmulatorClient

        return EmulatorClient(self.url)


@pytest.fixture
def exportjobs_emulator_config() -> EmulatorConfig:
    """How ``exportjobs_emulator`` behaves; override this fixture to change it."""
    from exportjobs.simulator.emulator.app import EmulatorConfig

    return EmulatorConfig()


@pytest.fixture
def exportjobs_emulator(exportjobs_emulator_config: EmulatorConfig) -> Iterator[TestEmulator]:
    """A fresh emulator for this test, on its own thread and event loop."""
    from exportjobs.simulator.emulator.embedded import EmbeddedEmulator

    embedded = EmbeddedEmulator(exportjobs_emulator_config)
    embedded.start()
    try:
        yield TestEmulator(embedded)
    finally:
        embedded.stop()


# --- the proxy ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _exportjobs_confdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One mitmproxy CA for the session (made by the first proxy, reused by the others)."""
    return tmp_path_factory.mktemp("exportjobs-ca")


_UNSAFE = re.compile(r"[^\w.\-\[\]=,+]")


def default_cassette(node: pytest.Item) -> Path:
    """``cassettes/<module>/<Class.>test[params].yaml`` beside the test file, as
    pytest-recording names them (characters unsafe in a file name replaced by ``_``)."""
    path = Path(str(node.path))
    cls = getattr(node, "cls", None)
    name = f"{cls.__name__}.{node.name}" if cls is not None else node.name
    return path.parent / "cassettes" / path.stem / (_UNSAFE.sub("_", name) + ".yaml")


def _marker(node: pytest.Item) -> tuple[Path, str | None]:
    """The cassette and upstream the test's marker names (defaults where it names none)."""
    from exportjobs.pytest_proxy import PluginError

    marker = node.get_closest_marker(MARKER)
    if marker is None:
        return default_cassette(node), None
    args, kwargs = list(marker.args), dict(marker.kwargs)
    path = kwargs.pop("path", None)
    if args and path is None:
        path = args.pop(0)
    upstream = kwargs.pop("upstream", None)
    if args or kwargs or not isinstance(path, str | os.PathLike | type(None)) \
            or not isinstance(upstream, str | type(None)):
        raise PluginError(f"@pytest.mark.{MARKER}: takes a cassette path and upstream=URL only, "
                          f"e.g. @pytest.mark.{MARKER}('cassettes/create.yaml', "
                          "upstream='http://127.0.0.1:8000')")
    try:
        check_upstream(upstream)
    except ValueError as exc:
        raise PluginError(f"@pytest.mark.{MARKER}(upstream=...): {exc}") from None
    if path is None:
        return default_cassette(node), upstream
    return Path(str(node.path)).parent / Path(path), upstream


def _upstream(request: pytest.FixtureRequest, marked: str | None, mode: str) -> tuple[str | None, Any]:
    """The upstream URL to record from (None: the real Graph) and the emulator started for it.

    Replay only (``none``) needs none: nothing is started and nothing can be reached."""
    config = request.config
    named = marked or config.getoption(UPSTREAM_OPTION) or config.getini("exportjobs_upstream") or None
    if named == GRAPH:
        return None, None
    if named or mode == "none":
        return named, None
    emulator: TestEmulator = request.getfixturevalue("exportjobs_emulator")
    return emulator.url, emulator


@pytest.fixture
def exportjobs_proxy(request: pytest.FixtureRequest, _exportjobs_confdir: Path) -> Iterator[TestProxy]:
    """A record/replay proxy for this test: ``url``, ``ca_cert``, ``env``, ``apply_env()``."""
    from exportjobs.pytest_proxy import PluginError, ProxyFixture

    mode = record_mode(request.config)
    try:
        cassette, marked = _marker(request.node)
        if mode == "none" and not cassette.is_file():
            raise PluginError(f"cassette {cassette} does not exist and record mode none replays only; "
                              f"record it with `pytest {RECORD_MODE_OPTION}=once`")
        upstream, emulator = _upstream(request, marked, mode)
        proxy = ProxyFixture(cassette=cassette, record_mode=mode, upstream=upstream,
                             confdir=_exportjobs_confdir, emulator=emulator)
        handle = proxy.start()
    except PluginError as exc:
        problem = str(exc)  # failed outside the handler: one line, no chained traceback
    else:
        problem = ""
    if problem:
        pytest.fail(f"exportjobs_proxy: {problem}", pytrace=False)
    try:
        yield handle
    finally:
        handle.restore_env()
        proxy.stop()


__all__ = ["TestEmulator", "TestProxy", "default_cassette"]
