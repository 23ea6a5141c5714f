"""``exportjobs run --record`` / ``--replay``: every shipped scenario records itself and
replays offline with the variables its cassette's header stores; the refusals; the demo's
printed replay command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from exportjobs import scenarios as shipped
from exportjobs.addons.cassette import load_cassette
from exportjobs.addons.persister import read_header_document, replace_header
from exportjobs.addons.serializer import load_own_format
from exportjobs.simulator.emulator.auth import fake_token
from tests.support.emulator import serve_process

EXPORTJOBS = [sys.executable, "-m", "exportjobs"]


def run(*args: str, cwd: Path | None = None, env: dict | None = None,
        timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([*EXPORTJOBS, "run", "--no-progress", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd, env=env)


@pytest.fixture(scope="module")
def served():
    """``exportjobs serve`` in its own process, with a short job lifecycle (polls end soon)."""
    with serve_process("--start-after", "0.2", "--run-for", "0.3") as url:
        yield url


def statuses(report: Path) -> list[dict[str, int]]:
    return [step["statuses"] for step in json.loads(report.read_text())["steps"]]


def recorded_bodies(cassette: Path) -> list[dict]:
    return [i["request"]["json"] for i in load_cassette(cassette).interactions if "json" in i["request"]]


# Recorded without the proxy fault plan it is written for, lost-response fails at its first
# step (it checks the lost answer); its replay must fail the same way, no more, no less.
EXPECTED_RECORD_EXIT = {"lost-response": 1}


@pytest.mark.parametrize("name", shipped.names())
def test_every_shipped_scenario_records_then_replays_offline(name, served, tmp_path):
    cassette = tmp_path / "cassettes" / f"{name}.yaml"
    rec_report, rep_report = tmp_path / "rec.json", tmp_path / "rep.json"
    recorded = run(name, "--record", str(cassette), "--target", served, "--report-json", str(rec_report))
    if name != "load":  # load's thresholds (rps, p99) depend on how busy this machine is
        assert recorded.returncode == EXPECTED_RECORD_EXIT.get(name, 0), recorded.stdout + recorded.stderr
    assert f"Replay it with: exportjobs run {name} --replay {cassette}" in recorded.stdout

    header = load_cassette(cassette).header
    assert header["scenario"] == name
    assert set(header["variables"]) == {"org", "view"}  # what every shipped scenario draws

    replayed = run(name, "--replay", str(cassette), "--report-json", str(rep_report))
    output = replayed.stdout + replayed.stderr
    assert "Replayed from" in replayed.stdout and "0 upstream connection(s)" in replayed.stdout, output
    assert "MISS" not in replayed.stderr, output
    if name == "load":  # as many requests as the machine managed: the same kinds of answers
        assert replayed.returncode in (0, 1), output
        assert all(set(rep) <= set(rec) for rep, rec in zip(statuses(rep_report), statuses(rec_report)))
        assert not any("404" in step for step in statuses(rep_report))
    else:
        assert replayed.returncode == recorded.returncode, output
        assert statuses(rep_report) == statuses(rec_report)


def test_the_variables_round_trip_typed_and_an_explicit_var_wins(served, tmp_path):
    scenario = tmp_path / "typed.yaml"
    scenario.write_text("""\
name: typed
variables:
  org: {generate: GUID}
  view: {generate: guid}
  top: {generate: choice, from: [1, 2, 3, 4, 5, 6, 7, 8, 9]}
  jobs: /beta/employeeExperience/goals/exportJobs
steps:
  - name: create
    request:
      method: POST
      path: ${jobs}
      json: {goalsOrganizationId: "${org}", explorerViewId: "${view}", top: "${top}"}
    expect: {status: 400}  # no such property: the answer is the same each run
  - name: list
    request: {path: "${jobs}", query: {$filter: "goalsOrganizationId eq '${org}'"}}
    expect: {status: 200}
""")
    cassette = tmp_path / "typed-cassette.yaml"
    recorded = run(str(scenario), "--record", str(cassette), "--target", served)
    assert recorded.returncode == 0, recorded.stdout + recorded.stderr

    stored = load_cassette(cassette).header["variables"]
    assert set(stored) == {"org", "view", "top"} and type(stored["top"]) is int  # a number stays one
    body = recorded_bodies(cassette)[0]
    assert body == {"goalsOrganizationId": stored["org"], "explorerViewId": stored["view"],
                    "top": stored["top"]}
    assert load_own_format(cassette.read_bytes()) is not None  # still the writer's own (fast) form

    replayed = run(str(scenario), "--replay", str(cassette))
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "variables from its header: org, view, top" in replayed.stdout

    other = "11111111-1111-4111-8111-111111111111"
    overridden = run(str(scenario), "--replay", str(cassette), "--var", f"org={other}")
    assert overridden.returncode == 1  # the --var was sent, and nothing recorded matches it
    assert "MISS" in overridden.stderr and "body field goalsOrganizationId differs" in overridden.stderr
    assert "variables from its header: view, top" in overridden.stdout


def test_secrets_stay_out_of_the_header_and_the_replay_asks_for_them(served, tmp_path):
    scenario = tmp_path / "secret.yaml"
    scenario.write_text("""\
name: secret
auth: {token_env: MY_GRAPH_TOKEN}
variables:
  org: {generate: guid}
  api_key: unset
  trace: unset
steps:
  - name: list
    request:
      path: /beta/employeeExperience/goals/exportJobs
      query: {$filter: "goalsOrganizationId eq '${org}'"}
      headers: {X-Api-Key: "${api_key}", X-Trace: "${trace}"}
    expect: {status: 200}
""")
    token = fake_token()  # a JWT the emulator accepts, from the environment as a real one would be
    cassette = tmp_path / "secret-cassette.yaml"
    env = {**os.environ, "MY_GRAPH_TOKEN": token}
    recorded = run(str(scenario), "--record", str(cassette), "--target", served,
                   "--var", "api_key=k-123", "--var", f"trace=Bearer {token}", env=env)
    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    header_text = json.dumps(read_header_document(cassette))
    assert token not in header_text and "k-123" not in header_text
    # (the values still went out in the request headers the scenario put them in, which the
    # cassette records unless told otherwise with --redact-header; the token only as REDACTED)
    assert token not in "".join(v for i in load_cassette(cassette).interactions
                                for k, v in i["request"]["headers"] if k == "Authorization")
    header = load_cassette(cassette).header
    assert set(header["variables"]) == {"org"}
    assert header["variables_withheld"] == ["api_key", "trace"]
    assert "not stored (looks like a secret): api_key" in recorded.stdout

    refused = run(str(scenario), "--replay", str(cassette), env=env)
    assert refused.returncode == 2
    assert "its header lacks api_key and trace" in refused.stderr
    assert "--var api_key=... --var trace=..." in refused.stderr
    given = run(str(scenario), "--replay", str(cassette), "--var", "api_key=x", "--var", "trace=y", env=env)
    assert given.returncode == 0, given.stdout + given.stderr  # headers are not matched


@pytest.mark.parametrize("flags, named", [
    (["--record", "c.yaml", "--replay", "c.yaml"], "--record and --replay go one at a time"),
    (["--replay", "c.yaml", "--target", "http://127.0.0.1:9"], "drop --target"),
    (["--replay", "c.yaml", "--proxy", "http://127.0.0.1:9"], "drop --proxy"),
    (["--record", "c.yaml", "--proxy", "http://127.0.0.1:9"], "--record runs through its own"),
    (["--replay", "c.yaml", "--quirks", "documented"], "--quirks shapes the embedded emulator"),
])
def test_flags_that_cannot_go_together_are_refused_naming_them(flags, named, tmp_path):
    proc = run("validation-errors", *flags, cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert named in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "c.yaml").exists()


@pytest.fixture(scope="module")
def race_cassette(served, tmp_path_factory):
    cassette = tmp_path_factory.mktemp("race") / "race.yaml"
    proc = run("duplicate-create-race", "--record", str(cassette), "--target", served)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return cassette


def test_a_cassette_without_variables_is_refused_saying_which_and_how(race_cassette, tmp_path):
    bare = tmp_path / "bare.yaml"
    bare.write_bytes(race_cassette.read_bytes())
    header = read_header_document(bare)
    replace_header(bare, {k: v for k, v in header.items() if k not in ("variables", "scenario")})
    assert load_cassette(bare).interactions == load_cassette(race_cassette).interactions

    proc = run("duplicate-create-race", "--replay", str(bare))
    assert proc.returncode == 2
    assert (f"--replay {bare}: the cassette stores no variables, and duplicate-create-race draws "
            "org and view afresh each run") in proc.stderr
    assert "--var org=... --var view=..." in proc.stderr
    assert f"exportjobs run duplicate-create-race --record {bare}" in proc.stderr

    org, view = (recorded_bodies(bare)[0][k] for k in ("goalsOrganizationId", "explorerViewId"))
    given = run("duplicate-create-race", "--replay", str(bare), "--var", f"org={org}", "--var", f"view={view}")
    assert given.returncode == 0, given.stdout + given.stderr


def test_a_cassette_of_another_scenario_is_refused(race_cassette):
    proc = run("lifecycle", "--replay", str(race_cassette))
    assert proc.returncode == 2
    assert "recorded from the scenario 'duplicate-create-race', not 'lifecycle'" in proc.stderr


def test_a_missing_cassette_is_named(tmp_path):
    proc = run("lifecycle", "--replay", str(tmp_path / "nope.yaml"))
    assert proc.returncode == 2 and "nope.yaml: no such file" in proc.stderr


def test_recording_nothing_leaves_an_existing_cassette_as_it_was(race_cassette, tmp_path):
    kept = tmp_path / "kept.yaml"
    kept.write_bytes(race_cassette.read_bytes())
    proc = run("duplicate-create-race", "--record", str(kept), "--target", "http://127.0.0.1:9")
    assert proc.returncode == 3 and "cannot reach the target" in proc.stderr
    assert kept.read_bytes() == race_cassette.read_bytes()


def test_the_demo_prints_the_command_that_replays_its_cassette(tmp_path):
    demo = subprocess.run([*EXPORTJOBS, "demo"], capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    command = demo.stdout.rsplit("Replay it yourself: ", 1)[1].strip()
    assert command == "exportjobs run duplicate-create-race --replay cassettes/demo.yaml"
    replayed = run(*command.split()[2:], cwd=tmp_path)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "0 upstream connection(s)" in replayed.stdout


def test_a_cassette_path_that_cannot_be_made_is_named(tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    proc = run("lifecycle", "--record", str(tmp_path / "a-file" / "c.yaml"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"--record {tmp_path / 'a-file' / 'c.yaml'}: cannot use" in proc.stderr
