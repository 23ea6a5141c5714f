"""``exportjobs proxy``: one-line errors with exit 2 for bad input, and a real replay run."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from exportjobs.cli import main
from tests.support.proxy import ONE_LIST_CASSETTE as CASSETTE

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.mark.parametrize("args, names", [
    (["--mode", "replay", "--cassette", "{tmp}/missing.yaml"], ["{tmp}/missing.yaml", "--mode record"]),
    (["--mode", "replay", "--cassette", "{tmp}/corrupt.yaml"], ["{tmp}/corrupt.yaml", "not valid YAML"]),
    (["--mode", "replay", "--cassette", "{tmp}/other.yaml"], ["{tmp}/other.yaml", "not an exportjobs cassette"]),
    (["--mode", "record", "--cassette", "{tmp}/no/such/dir/c.yaml"], ["{tmp}/no/such/dir/c.yaml", "writable"]),
    (["--mode", "record", "--cassette", "{tmp}/c.yaml", "--upstream", "ftp://x"], ["--upstream", "ftp://x"]),
    (["--mode", "passthrough", "--upstream", "http://:80"], ["--upstream", "http://:80"]),
    (["--mode", "record"], ["--cassette"]),
    (["--cassette", "{tmp}/c.yaml"], ["--mode record|replay|passthrough", "--record-mode"]),
])
def test_bad_input_is_one_line_naming_what_to_fix(tmp_path, capsys, args, names):
    (tmp_path / "corrupt.yaml").write_text("--- {a: [\n...\n")
    (tmp_path / "other.yaml").write_text("--- {just: yaml}\n...\n")
    argv = ["proxy", "--port", "0"] + [a.format(tmp=tmp_path) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("exportjobs proxy: ")
    for name in names:
        assert name.format(tmp=tmp_path) in err


@pytest.mark.parametrize("behaviour", [["--mode", "replay"], ["--record-mode", "none"]],
                         ids=["mode", "record-mode alone"])
def test_proxy_command_replays_and_stops_cleanly(tmp_path, mitm_confdir, behaviour):
    cassette = tmp_path / "c.yaml"
    cassette.write_text(CASSETTE)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "exportjobs", "proxy", *behaviour, "--cassette", str(cassette),
         "--port", str(port), "--confdir", str(mitm_confdir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        banner = process.stdout.readline()
        assert f"http://127.0.0.1:{port}" in banner
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({"http": f"http://127.0.0.1:{port}"}))
        url = "http://graph.microsoft.com/beta/employeeexperience/goals/exportjobs"
        with opener.open(url, timeout=10) as response:
            assert response.status == 200 and response.read() == b'{"value":[]}'
        os.kill(process.pid, signal.SIGINT)
        assert process.wait(15) == 0
        err = process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "REPLAY GET /beta/employeeexperience/goals/exportjobs 200 jobs=0" in err
    assert "Traceback" not in err
