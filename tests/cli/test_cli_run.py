"""``exportjobs run``: exit codes, reports, and errors a tester can act on."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from exportjobs.simulator.emulator.auth import fake_token
from tests.support.emulator import serve_process

EXPORTJOBS = [sys.executable, "-m", "exportjobs"]
SCENARIOS = Path(__file__).parent.parent.parent / "scenarios"


def run(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*EXPORTJOBS, "run", "--no-progress", *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def served():
    """``exportjobs serve`` in its own process, with a short lifecycle."""
    with serve_process("--start-after", "0.2", "--run-for", "0.3") as url:
        yield url


def test_passing_scenario_exits_0_and_writes_both_reports(served, tmp_path):
    report, junit = tmp_path / "r.json", tmp_path / "r.xml"
    proc = run(str(SCENARIOS / "duplicate-create-race.yaml"), "--target", served,
               "--report-json", str(report), "--junit", str(junit))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASSED: 4 of 4 steps" in proc.stdout
    assert "201 x1, 409 x49" in proc.stdout and "arrival spread" in proc.stdout

    data = json.loads(report.read_text())
    assert data["ok"] is True and data["target"] == served
    burst = data["steps"][0]
    assert burst["statuses"] == {"201": 1, "409": 49}
    assert burst["details"]["release"] == "last-byte"
    assert {"p50_ms", "p95_ms", "p99_ms", "max_ms"} <= burst["latency_ms"].keys()
    assert all(c["ok"] for step in data["steps"] for c in step["checks"])

    suite = ET.parse(junit).getroot()
    assert suite.tag == "testsuite" and suite.get("tests") == "4" and suite.get("failures") == "0"
    assert next(c.get("name") for c in suite.iter("testcase")) == "01 50 identical creates at once"


def test_failing_expectation_exits_1_and_says_what_broke(served, tmp_path):
    scenario = tmp_path / "wrong.yaml"
    scenario.write_text("name: wrong\nsteps:\n  - name: list\n    request: "
                        "{path: /beta/employeeExperience/goals/exportJobs}\n    expect: {status: 418}\n")
    junit = tmp_path / "r.xml"
    proc = run(str(scenario), "--target", served, "--junit", str(junit))
    assert proc.returncode == 1
    assert "BROKEN status: expected 418, got 200" in proc.stdout
    assert "FAILED: 0 of 1 steps" in proc.stdout
    failure = ET.parse(junit).getroot().find("testcase/failure")
    assert failure is not None and "expected 418, got 200" in failure.get("message")


def test_race_scenario_against_an_unsafe_server_exits_1_naming_the_invariant():
    proc = subprocess.Popen([*EXPORTJOBS, "serve", "--port", "0", "--quiet",
                             "--unsafe-race-window-ms", "200"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = re.search(r"http://127\.0\.0\.1:\d+", proc.stdout.readline())[0]
        result = run(str(SCENARIOS / "duplicate-create-race.yaml"), "--target", url)
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    assert result.returncode == 1, result.stdout + result.stderr
    assert re.search(r"BROKEN exactly-one-201: expected one 201, got (\d+) 201s", result.stdout)
    assert "skipped: needs ${job_id} and ${job_url}" in result.stdout


def test_invalid_scenario_exits_2_with_file_and_line_and_sends_nothing(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nsteps:\n  - burst: {count: 5, relase: none, request: {path: /}}\n")
    proc = run(str(bad), "--target", "http://127.0.0.1:9")
    assert proc.returncode == 2
    assert f"{bad}:3: unknown key 'relase' in steps[0].burst; allowed here: count, release, request" in proc.stderr
    assert "nothing was sent" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "args, says",
    [
        (["--var", "novalue"], "--var 'novalue': write it as NAME=VALUE"),
        (["--target", "127.0.0.1:8000"], "--target '127.0.0.1:8000': give a base URL"),
        (["--cacert", "/nonexistent.pem"], "--cacert /nonexistent.pem: cannot load it"),
    ],
)
def test_bad_command_lines_exit_2(args, says):
    proc = run(str(SCENARIOS / "lifecycle.yaml"), *args)
    assert proc.returncode == 2 and says in proc.stderr and "Traceback" not in proc.stderr


def test_missing_scenario_file_exits_2():
    proc = run("no-such-file.yaml")
    assert proc.returncode == 2 and "no-such-file.yaml: cannot read the scenario" in proc.stderr


def test_unreachable_target_exits_3(unused_tcp_port):
    proc = run(str(SCENARIOS / "lifecycle.yaml"), "--target", f"http://127.0.0.1:{unused_tcp_port}")
    assert proc.returncode == 3
    assert f"cannot reach the target http://127.0.0.1:{unused_tcp_port}" in proc.stderr


def test_the_token_never_reaches_output_or_reports(served, tmp_path):
    import os

    canary = fake_token(canary="CANARY-5ecret-token")
    scenario = tmp_path / "env.yaml"
    scenario.write_text("name: env\nauth: {token_env: GRAPH_TOKEN}\nsteps:\n  - request: "
                        "{path: /beta/employeeExperience/goals/exportJobs}\n    expect: {status: 200}\n")
    report, junit = tmp_path / "r.json", tmp_path / "r.xml"
    proc = run(str(scenario), "--target", served, "--report-json", str(report), "--junit", str(junit),
               env={**os.environ, "GRAPH_TOKEN": canary})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for text in (proc.stdout, proc.stderr, report.read_text(), junit.read_text()):
        assert canary not in text and "CANARY" not in text


def test_embedded_emulator_and_var_override(tmp_path):
    report = tmp_path / "r.json"
    org = "9ab0fcab-c1d4-4b26-963b-a3c33155f853"
    proc = run(str(SCENARIOS / "validation-errors.yaml"), "--var", f"org={org}",
               "--report-json", str(report))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(report.read_text())["variables"]["org"] == org
