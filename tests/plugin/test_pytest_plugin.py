"""The pytest plugin as users get it: pytest run in a separate process (pytester) on the
shipped example file and on a file of other clients, recording from the in-process emulator
and then replaying with the upstream pointed at a socket that counts every connection."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from exportjobs import pytest_plugin
from exportjobs.addons.cassette import load_cassette
from exportjobs.addons.recordreplay import RECORD_MODES

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "test_exportjobs_example.py"
CLIENTS = Path(__file__).with_name("clients_example.py")
# Here, not in tests/plugin/conftest.py: pytest refuses pytest_plugins in a conftest below the
# top one, and this module is the only user.
pytest_plugins = ["pytester"]

QUIET = ("-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning", "--strict-markers")


class Tripwire:
    """A listening socket on 127.0.0.1 that counts the connections made to it."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.accepts = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _accept(self) -> None:
        while not self._done.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.accepts += 1
            conn.close()

    def __enter__(self) -> Tripwire:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(5)
        self.sock.close()


def _cassettes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.yaml"))}


def _record_then_replay(pytester: pytest.Pytester, source: Path, name: str, passed: int) -> dict[str, bytes]:
    """Record ``source`` (once, from the emulator), then replay it with the upstream a tripwire:
    both runs pass, the replay opens no connection and leaves the cassettes as they were."""
    pytester.makepyfile(**{name: source.read_text()})
    recorded = pytester.runpytest_subprocess(*QUIET, "--exportjobs-record-mode=once")
    recorded.assert_outcomes(passed=passed)
    cassettes = _cassettes(pytester.path / "cassettes")
    assert cassettes and all(load_cassette(pytester.path / "cassettes" / c).interactions for c in cassettes)
    with Tripwire() as tripwire:
        replayed = pytester.runpytest_subprocess(*QUIET, f"--exportjobs-upstream={tripwire.url}")
    replayed.assert_outcomes(passed=passed)
    assert tripwire.accepts == 0
    assert _cassettes(pytester.path / "cassettes") == cassettes
    return cassettes


def test_the_example_records_from_the_emulator_then_replays_with_no_upstream(pytester):
    cassettes = _record_then_replay(pytester, EXAMPLE, "test_exportjobs_example", passed=4)
    # the default name (pytest-recording's) and the marker's, relative to the test file
    assert set(cassettes) == {"test_exportjobs_example/test_requests_through_the_proxy.yaml",
                              "duplicate-create.yaml"}


def test_urllib_aiohttp_and_the_graph_sdk_use_the_proxy_from_sync_and_async_tests(pytester):
    cassettes = _record_then_replay(pytester, CLIENTS, "test_clients", passed=5)
    assert "test_clients/TestClients.test_urllib[a_b].yaml" in cassettes


def test_the_tripwire_counts_a_recording(pytester):
    """The replay check can fail: recording with the tripwire as upstream reaches it."""
    pytester.makepyfile(test_one=EXAMPLE.read_text())
    with Tripwire() as tripwire:
        run = pytester.runpytest_subprocess(*QUIET, "--exportjobs-record-mode=all",
                                            f"--exportjobs-upstream={tripwire.url}",
                                            "-k", "requests_through")
    run.assert_outcomes(failed=1)
    assert tripwire.accepts >= 1


def test_replaying_a_missing_cassette_says_how_to_record_it(pytester):
    pytester.makepyfile(test_one=EXAMPLE.read_text())
    run = pytester.runpytest_subprocess(*QUIET)
    run.assert_outcomes(passed=2, errors=2)
    out = run.stdout.str()
    assert "exportjobs_proxy: cassette " in out and "does not exist" in out
    assert "record it with `pytest --exportjobs-record-mode=once`" in out
    assert "Traceback" not in out and "pytest_proxy.py" not in out
    assert not (pytester.path / "cassettes").exists()


@pytest.mark.parametrize(("args", "ini", "expected"), [
    (["--exportjobs-record-mode=sometimes"], "", "invalid choice: 'sometimes'"),
    ([], "exportjobs_record_mode = sometimes", "exportjobs_record_mode: 'sometimes' is not a record mode"),
    (["--exportjobs-upstream=ftp://x"], "", "--exportjobs-upstream: 'ftp://x' is not a base URL"),
])
def test_bad_settings_are_usage_errors(pytester, args, ini, expected):
    if ini:
        pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makepyfile(test_one="def test_nothing():\n    pass\n")
    run = pytester.runpytest_subprocess(*QUIET, *args)
    assert run.ret == pytest.ExitCode.USAGE_ERROR
    assert expected in run.stderr.str()
    assert "Traceback" not in run.stderr.str()


def test_a_bad_marker_is_one_line_naming_the_marker(pytester):
    pytester.makepyfile(test_one="""
        import pytest

        @pytest.mark.exportjobs_cassette("a.yaml", "b.yaml")
        def test_two_paths(exportjobs_proxy):
            pass

        @pytest.mark.exportjobs_cassette(upstream="nowhere")
        def test_bad_upstream(exportjobs_proxy):
            pass
    """)
    run = pytester.runpytest_subprocess(*QUIET, "--exportjobs-record-mode=once")
    run.assert_outcomes(errors=2)
    out = run.stdout.str()
    assert "exportjobs_proxy: @pytest.mark.exportjobs_cassette: takes a cassette path" in out
    assert "exportjobs_proxy: @pytest.mark.exportjobs_cassette(upstream=...): 'nowhere'" in out
    assert "Traceback" not in out


def test_the_plugins_record_modes_are_the_proxys():
    assert pytest_plugin.RECORD_MODES == RECORD_MODES
