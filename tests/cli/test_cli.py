"""The ``exportjobs`` command: serve, demo, and clear errors for bad input."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import urllib.request

import pytest

from tests.support.emulator import COLLECTION, new_pair

EXPORTJOBS = [sys.executable, "-m", "exportjobs"]


def start_serve(*args: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [*EXPORTJOBS, "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    match = re.search(r"(http://127\.0\.0\.1:\d+)", line)
    if match is None:
        proc.kill()
        pytest.fail(f"serve printed no URL: {line!r} {proc.stderr.read()}")
    return proc, match[1]


def post_create(url: str, token: str = "opaque-secret-token") -> tuple[int, dict]:
    req = urllib.request.Request(
        f"{url}{COLLECTION}",
        data=json.dumps(new_pair()).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, json.loads(r.read())


def test_serve_listens_on_loopback_answers_and_stops_cleanly():
    proc, url = start_serve()
    try:
        status, job = post_create(url)
        assert status == 201 and job["status"] == "notStarted"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "opaque-secret-token" not in err  # the access log never shows a token
    assert "POST /beta/employeeExperience/goals/exportJobs" in err


def test_unsafe_mode_says_so_loudly():
    proc, _ = start_serve("--unsafe-race-window-ms", "3", "--quiet")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert "UNSAFE" in err and "DELIBERATELY BROKEN" in err


@pytest.mark.parametrize(
    "args, says",
    [
        (["serve", "--port", "http"], "--port: expected a port"),
        (["serve", "--run-for", "-3"], "--run-for: must be from 0 to 86400"),
        (["serve", "--start-after", "inf"], "--start-after: must be from 0 to 86400"),
        (["serve", "--unsafe-race-window-ms", "nan"], "--unsafe-race-window-ms: must be from 0"),
        (["serve", "--known-org", "acme"], "--known-org: expected a GUID"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(args, says):
    proc = subprocess.run([*EXPORTJOBS, *args], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert says in proc.stderr
    assert "Traceback" not in proc.stderr


def test_port_in_use_is_a_clear_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run([*EXPORTJOBS, "serve", "--port", str(port)],
                              capture_output=True, text=True, timeout=30)
    assert proc.returncode == 3
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr
    assert "--port" in proc.stderr and "Traceback" not in proc.stderr


def test_demo_records_then_replays_the_race_offline(tmp_path):
    proc = subprocess.run([*EXPORTJOBS, "demo"], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    race = next(line for line in proc.stdout.splitlines() if "50 identical creates" in line)
    assert race.count("201 x1, 409 x49") == 2  # recorded and replayed alike
    assert "recorded: PASSED" in proc.stdout and "replayed: PASSED" in proc.stdout
    cassette = tmp_path / "cassettes" / "demo.yaml"
    assert f"Cassette: {cassette}" in proc.stdout
    text = cassette.read_text()
    assert "REDACTED" in text and "Bearer" not in text
    assert "Traceback" not in proc.stderr


def test_demo_with_an_unwritable_cassette_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    proc = subprocess.run([*EXPORTJOBS, "demo", "--cassette", str(blocker / "demo.yaml")],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 2
    assert "exportjobs demo: cannot use" in proc.stderr and "--cassette" in proc.stderr
    assert "Traceback" not in proc.stderr
