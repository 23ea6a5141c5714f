"""``exportjobs run`` with hostile or careless input: never a traceback, never a hang.

Every value a scenario can hold either loads and can be sent, or is an error with file,
line and fix (exit 2, nothing sent); a value saved at run time that cannot go where a step
puts it fails that step, naming its line; reports are written whatever a step does; a
target that accepts connections and never answers stops the run with exit 3.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from exportjobs import cli
from tests.support.emulator import serve_process

EXPORTJOBS = [sys.executable, "-m", "exportjobs"]
JOBS = "/beta/employeeExperience/goals/exportJobs"


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*EXPORTJOBS, "run", "--no-progress", *args], capture_output=True,
                          text=True, timeout=timeout)


def write(tmp_path: Path, text: str | bytes, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def run_in_process(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(["run", "--no-progress", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


STEP = "name: x\nsteps:\n  - "
HOSTILE = [
    # (scenario text, the line and the words that must be printed)
    (STEP + "request: {method: POST, path: /x, json: {dueDate: 2026-01-01}}\n",
     ":3: steps[0].request.json.dueDate: a timestamp value ('2026-01-01') is not one JSON can carry; quote it"),
    (STEP + "request: {method: POST, path: /x, json: {b: !!binary aGVsbG8=}}\n",
     ":3: steps[0].request.json.b: a binary value ('aGVsbG8=') is not one JSON can carry"),
    (STEP + "request:\n      method: POST\n      path: /x\n      json: !!set {a, b}\n",
     ":6: steps[0].request.json: a set mapping is not one JSON can carry; write a list"),
    (STEP + "burst: {count: 10.0, request: {path: /x}}\n",
     ":3: steps[0].burst.count should be integer, not float 10.0"),
    ("name: x\nvariables: {n: 5}\nsteps:\n  - request: {path: '${n}'}\n",
     ":4: steps[0].request: path is a number (5); a path is text starting with /"),
    ("name: x\nvariables: {p: abc}\nsteps:\n  - request: {path: '${p}'}\n",
     ":4: steps[0].request: path 'abc' does not start with /; write /abc"),
    (STEP + "request: {path: /x, timeout: .inf}\n",
     ":3: steps[0].request.timeout is inf, which is not a number JSON can carry; write a finite number"),
    (STEP + 'request: {path: /x, headers: {X-A: "a\\nb"}}\n',
     ":3: steps[0].request: header X-A holds a line break"),
    (STEP + "burst: {count: 2, request: {path: /caf\u00e9}}\n",
     ":3: steps[0].burst.request: path '/caf\u00e9' holds the character '\u00e9' (U+00E9); percent-encode it (%C3%A9)"),
    (STEP + "burst: {count: 2, request: {path: /x, headers: {X-A: caf\u00e9}}}\n",
     ":3: steps[0].burst.request: header X-A holds the character '\u00e9'"),
    ("name: x\nvariables: {n: 5}\nsteps:\n  - request: {url: '${n}'}\n",
     ":4: steps[0].request: url is a number (5); it must be text"),
    # Scalars their tag cannot build: the line is what matters (the YAML reader may word it).
    ("name: !!float abc\nsteps:\n  - pause: 0\n", ":1: "),
    ("name: x\nsteps:\n  - pause: 0\n    name: !!timestamp '2000-01-01 0000:00'\n", ":4: "),
    (STEP + "pause: .inf\n", ":3: steps[0].pause is inf, which is not a number JSON can carry"),
    (STEP + "pause: 1.0e+9\n", ":3: steps[0].pause: 1000000000.0 is greater than the maximum of 86400"),
    (STEP + "load: {duration: 1, rate: .nan, mix: [{request: {path: /x}}]}\n",
     ":3: steps[0].load.rate is nan, which is not a number JSON can carry"),
    (STEP + "request: {method: POST, path: /x, json: {a: " + "9" * 5000 + "}}\n",
     ":3: "),
    (STEP + "request: {method: POST, path: /x, json: " + "[" * 300 + "]" * 300 + "}\n",
     ":3: the YAML is nested too deeply (more than 64 levels); write it flatter"),
    ("name: x\nsteps:\n  - pause: 0\n    name: a\x01b\n",
     ":4: column 12: character U+0001 is a control character YAML does not allow; delete it"),
    (b"name: x\nsteps:\n  - name: caf\xe9\n    pause: 0\n",
     ":3: column 14: byte 0xe9 is not UTF-8; save the file as UTF-8"),
    ("name: x\ntarget: 'http://[::1'\nsteps:\n  - pause: 0\n",
     ":2: target 'http://[::1' is not a valid URL (Invalid IPv6 URL); close the brackets"),
    ("a: &a [" + ", ".join(["0"] * 10) + "]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(8))
     + "name: x\nsteps:\n  - pause: 0\n",
     ":5: this value would hold more than 100,000 values once its YAML aliases are written "
     "out; write it out, or use fewer aliases"),
]


@pytest.mark.parametrize("text, says", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_values_are_exit_2_with_file_line_and_fix(tmp_path, capsys, text, says):
    path = write(tmp_path, text)
    code, out, err = run_in_process(capsys, str(path))  # no target: nothing may start either
    assert code == 2, (out, err)
    assert f"{path}{says}" in err, err
    assert "nothing was sent" in err and "Traceback" not in err + out


@pytest.mark.parametrize("target, says", [
    ("http://127.0.0.1:99999", "is not a valid URL (Port out of range 0-65535); use a port from 1 to 65535"),
    ("http://[::1", "is not a valid URL (Invalid IPv6 URL); close the brackets of an IPv6 address"),
])
def test_bad_target_urls_are_exit_2(tmp_path, capsys, target, says):
    path = write(tmp_path, STEP + "pause: 0\n")
    code, _, err = run_in_process(capsys, str(path), "--target", target)
    assert code == 2 and f"--target {target!r} {says}" in err, err


def test_a_fifo_is_refused_not_waited_on(tmp_path, capsys):
    fifo = tmp_path / "s.yaml"
    os.mkfifo(fifo)
    code, _, err = run_in_process(capsys, str(fifo))
    assert code == 2 and f"{fifo}: cannot read the scenario: not a regular file" in err


# --- run time: saved values, internal errors, reports ------------------------------------------


@pytest.fixture(scope="module")
def slow_jobs():
    """``exportjobs serve`` whose jobs run for 200 s: a short poll gives up on them."""
    with serve_process("--start-after", "0", "--run-for", "200") as url:
        yield url


GAVE_UP = f"""\
name: gave-up
variables:
  org: {{generate: guid}}
steps:
  - name: create
    request:
      method: POST
      path: {JOBS}
      json: {{goalsOrganizationId: "${{org}}", explorerViewId: "${{org}}"}}
    save:
      job_url: {{header: Location}}
  - name: poll that gives up
    poll:
      request: {{url: "${{job_url}}"}}
      until: {{json: {{status: succeeded}}}}
      interval: 0.1
      max_retry_after: 0.1
      timeout: 0.5
    save:
      content_url: {{json: resourceLocation}}
  - name: download
    request: {{url: "${{content_url}}"}}
    expect: {{status: 200}}
"""


def test_a_null_saved_value_skips_the_step_that_needs_it_and_reports_are_written(slow_jobs, tmp_path):
    report, junit = tmp_path / "r.json", tmp_path / "r.xml"
    proc = run_cli(str(write(tmp_path, GAVE_UP)), "--target", slow_jobs,
                   "--report-json", str(report), "--junit", str(junit))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert "BROKEN save content_url: expected a value at resourceLocation, got null" in proc.stdout
    assert "skipped: needs ${content_url}, which an earlier step did not save" in proc.stdout
    assert "FAILED: 1 of 3 steps" in proc.stdout
    data = json.loads(report.read_text())
    assert [s["skipped"] is not None for s in data["steps"]] == [False, False, True]
    assert ET.parse(junit).getroot().get("skipped") == "1"


SAVED_NOT_A_URL = f"""\
name: saved-not-a-url
steps:
  - name: list
    request: {{path: {JOBS}}}
    save:
      code: {{status: true}}
      jobs: {{json: value}}
  - name: url from a number
    request: {{url: "${{code}}"}}
  - name: url from a list
    request: {{url: "${{jobs}}"}}
  - name: path from a number
    request: {{path: "${{code}}"}}
  - name: still runs
    request: {{path: {JOBS}}}
    expect: {{status: 200}}
"""


async def test_a_saved_value_that_cannot_be_sent_fails_its_step_naming_the_line(emulator, tmp_path):
    from exportjobs.simulator.runner import run_scenario
    from exportjobs.simulator.scenario import load_scenario

    path = write(tmp_path, SAVED_NOT_A_URL)
    result = await run_scenario(load_scenario(path), target=emulator.url)
    actual = [[c.actual for c in s.checks if not c.ok] for s in result.steps]
    assert actual[0] == []
    assert actual[1] == [f"url is a number (200); it must be text such as http://127.0.0.1:8000/path ({path}:8)"]
    assert actual[2] == [f"url is a list; it must be text such as http://127.0.0.1:8000/path ({path}:10)"]
    assert actual[3] == [f"path is a number (200); a path is text starting with / ({path}:12)"]
    assert result.steps[4].ok and result.stopped is None


def test_an_internal_error_in_a_step_fails_that_step_and_reports_are_still_written(
        tmp_path, capsys, monkeypatch):
    from exportjobs.simulator import runner

    def broken_check(*args, **kwargs):
        raise RuntimeError("deliberately broken for the test")

    monkeypatch.setattr(runner, "check_response", broken_check)
    report, junit = tmp_path / "r.json", tmp_path / "r.xml"
    path = write(tmp_path, f"name: x\nsteps:\n  - request: {{path: {JOBS}}}\n  - pause: 0\n")
    code, out, err = run_in_process(capsys, str(path), "--report-json", str(report), "--junit", str(junit))
    assert code == 1, out + err
    assert (f"BROKEN step: expected the step to run, got an internal error (RuntimeError: deliberately "
            f"broken for the test) at {path}:3; please report it") in out
    assert "FAILED: 1 of 2 steps" in out
    assert json.loads(report.read_text())["steps"][1]["ok"] is True
    assert ET.parse(junit).getroot().get("failures") == "1"


# --- a target that accepts and never answers -----------------------------------------------------


@pytest.fixture
def silent_target():
    """A real listening socket on 127.0.0.1 that never reads or answers: the kernel completes
    each TCP handshake from the backlog, nothing more."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1024)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize("first", [
    f"request: {{method: POST, path: {JOBS}, json: {{a: 1}}}}",
    f"burst: {{count: 3, request: {{method: POST, path: {JOBS}, json: {{a: 1}}}}}}",
    f"poll: {{request: {{path: {JOBS}}}, until: {{status: 200}}, timeout: 5}}",
])
def test_a_target_that_never_answers_stops_the_run_with_exit_3(silent_target, tmp_path, first):
    report = tmp_path / "r.json"
    text = f"name: x\nsteps:\n  - name: first\n    {first}\n  - pause: 100\n  - request: {{path: /x}}\n"
    proc = run_cli(str(write(tmp_path, text)), "--target", silent_target, "--timeout", "0.5",
                   "--connect-timeout", "0.5", "--report-json", str(report))
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert re.search(rf"the target {silent_target} did not answer step 1 \(first, \S+:3\): "
                     rf"(POST|GET) {JOBS}: timed out: no answer within [\d.]+ s", proc.stderr), proc.stderr
    assert "skipped: not run: the target stopped answering" in proc.stdout
    data = json.loads(report.read_text())
    assert data["ok"] is False and "did not answer step 1" in data["stopped"]
    assert "Traceback" not in proc.stderr


# --- patterns ------------------------------------------------------------------------------------


def test_a_catastrophic_pattern_gives_up_instead_of_hanging():
    """``(a+)+$`` against 40 a's and a '!' backtracks about 2**40 times in Python's re."""
    code = textwrap.dedent("""\
        from exportjobs.simulator.expectations import check_response
        from exportjobs.simulator.steps import ResponseExpectation, build
        from exportjobs.simulator.transport import Outcome
        body = b'{"v": "' + b"a" * 40 + b'!"}'
        checks = check_response(build(ResponseExpectation, {"json": {"v": {"pattern": "(a+)+$"}}}), Outcome(200, {}, body, 0.0), {})
        print(checks[0].ok, checks[0].expected)
        ok = check_response(build(ResponseExpectation, {"json": {"v": {"pattern": "a!$"}}}), Outcome(200, {}, body, 0.0), {})
        print(ok[0].ok)
        """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    first, second = proc.stdout.splitlines()
    assert first.startswith("False a match for /(a+)+$/ (the search gave up after 1 s on 41 characters")
    assert second == "True"
