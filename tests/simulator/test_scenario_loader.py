"""The scenario loader: shipped scenarios load; every mistake names file, line and fix."""

from __future__ import annotations

import textwrap
from pathlib import Path

import jsonschema
import pytest

from exportjobs.simulator.scenario import ScenarioError, load_scenario, parse_scenario, schema

SCENARIOS = sorted(Path(__file__).parent.parent.parent.joinpath("scenarios").glob("*.yaml"))

VALID = """\
name: ok
variables:
  org: {generate: guid}
steps:
  - name: create
    request:
      method: POST
      path: /beta/employeeExperience/goals/exportJobs
      json: {goalsOrganizationId: "${org}", explorerViewId: "${org}"}
    expect: {status: 201}
    save:
      job_url: {header: Location}
  - name: read
    request: {url: "${job_url}"}
"""


def problems(text: str, **kwargs) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(textwrap.dedent(text), "s.yaml", **kwargs)
    return [str(p) for p in info.value.problems]


def test_the_schema_is_a_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(schema())


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_shipped_scenarios_load(path):
    scenario = load_scenario(path)
    assert scenario.steps and scenario.name == path.stem
    assert scenario.description


def test_shipped_scenarios_name_the_schema_for_editors():
    for path in SCENARIOS:
        assert path.read_text().startswith(
            "# yaml-language-server: $schema=scenario.schema.json"), path


def test_a_valid_scenario_loads_with_lines_and_kinds():
    scenario = parse_scenario(VALID, "s.yaml")
    assert [(s.kind, s.line) for s in scenario.steps] == [("request", 5), ("request", 13)]
    values = scenario.resolve_variables()
    assert len(values["org"]) == 36
    assert scenario.resolve_variables({"org": "fixed"})["org"] == "fixed"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("name: x\nstep: []\n", ["s.yaml:2: unknown key 'step' in the scenario; allowed here:",
                                 "s.yaml:1: the scenario needs 'steps'"]),
        ("name: x\nsteps:\n  - pause: -1\n", ["s.yaml:3: steps[0].pause: -1 is less than the minimum of 0"]),
        ("name: x\nsteps:\n  - burst: {count: many, request: {path: /}}\n",
         ["s.yaml:3: steps[0].burst.count should be integer, not str 'many'"]),
        ("name: x\nsteps:\n  - burst: {count: 2, release: fast, request: {path: /}}\n",
         ["steps[0].burst.release is 'fast'; use one of: none, barrier, last-byte"]),
        ("name: x\nsteps:\n  - request:\n      path: /\n      metod: GET\n",
         ["s.yaml:5: unknown key 'metod' in steps[0].request; allowed here: auth, body, headers"]),
        ("name: x\nvariables:\n  v: {generate: uuid}\nsteps:\n  - pause: 1\n",
         ["s.yaml:3: variables.v.generate is 'uuid'; use one of: guid, GUID"]),
        ("name: x\nsteps:\n  - request: {path: '/${nope}'}\n",
         ["s.yaml:3: ${nope} is not defined before this step; define it under 'variables', "
          "save it in an earlier step, or pass --var nope=VALUE"]),
        ("name: x\nsteps:\n  - request: {path: /, url: 'http://x'}\n",
         ["s.yaml:3: a request needs exactly one of 'path' (joined to target) or 'url'"]),
        ("name: x\nsteps:\n  - {pause: 1, request: {path: /}}\n",
         ["s.yaml:3: a step needs exactly one of request, burst, poll, pause, load (found: request, pause)"]),
        ("name: x\nsteps:\n  - {name: nothing}\n", ["s.yaml:3: a step needs exactly one of"]),
        ("name: x\nsteps:\n  - request: {path: /}\n    expect: {counts: {201: 1}}\n",
         ["s.yaml:4: 'counts' applies to bursts only"]),
        ("name: x\nsteps:\n  - burst: {count: 2, request: {path: /}}\n    expect: {status: 201}\n",
         ["s.yaml:4: in a burst, put 'status' under 'each'"]),
        ("name: x\nsteps:\n  - request: {path: /}\n    expect: {json: {'a..b': 1}}\n",
         ["s.yaml:4: malformed JSON path 'a..b'"]),
        ("name: x\nsteps:\n  - request: {path: /}\n    expect: {headers: {Location: {pattern: '(('}}}\n",
         ["s.yaml:4: pattern '((' is not a regular expression"]),
        ("name: x\nsteps:\n  - load: {duration: 1, mix: [{request: {path: /}}]}\n",
         ["s.yaml:3: a load phase needs exactly one of 'concurrency' or 'rate'"]),
        ("name: x\nsteps:\n  - pause: 1\n  - pause: 2\nname: y\n", ["s.yaml:5: 'name' is given twice"]),
        ("name: x\nsteps:\n  - request: {path: /\n", ["s.yaml:4: not valid YAML"]),
        ("", ["s.yaml:1: the file is empty"]),
        ("name: x\x01\nsteps: []\n", ["s.yaml:1: column 8: character U+0001 is a control character YAML does not allow"]),
        ("name: x\nsteps: &s [*s]\n", ["s.yaml:2: a YAML alias refers to the node that holds it"]),
        ("- just\n- a list\n", ["s.yaml:1: a scenario is a mapping"]),
        ("name: x\nsteps:\n  - request: {path: /}\n    save: {a: {json: id, from: first}}\n",
         ["s.yaml:4: 'from' applies to bursts only"]),
        ("name: x\nsteps:\n  - request: {path: /}\n    save: {a: {json: id, header: Location}}\n",
         ["s.yaml:4: save 'a' needs exactly one of json, header or status"]),
    ],
)
def test_mistakes_name_the_line_and_the_fix(text, expected):
    found = problems(text)
    for want in expected:
        assert any(want in p for p in found), (want, found)


def test_a_value_saved_by_a_later_step_is_not_yet_defined():
    text = VALID.replace('request: {url: "${job_url}"}', 'request: {url: "${later}"}') + (
        "    save: {later: {json: id}}\n")
    found = problems(text)
    assert any("s.yaml:14: ${later} is not defined before this step" in p for p in found)


def test_var_from_the_command_line_counts_as_defined():
    parse_scenario("name: x\nsteps:\n  - request: {path: '/${v}'}\n", "s.yaml", extra_variables={"v"})


def test_every_problem_is_reported_at_once():
    found = problems("name: x\nsteps:\n  - pause: -1\n  - burst: {count: 0, request: {path: /}}\n")
    assert len(found) == 2


def test_unreadable_file_is_a_scenario_error(tmp_path):
    with pytest.raises(ScenarioError) as info:
        load_scenario(tmp_path / "missing.yaml")
    assert "missing.yaml: cannot read the scenario" in str(info.value)


def test_every_problem_is_reported_at_once_keys_given_twice_included():
    found = problems("name: x\nname: y\nsteps:\n  - pause: 1\n    pause: 2\n  - bogus: 1\n")
    assert any("s.yaml:2: 'name' is given twice" in p for p in found), found
    assert any("s.yaml:5: 'pause' is given twice" in p for p in found), found
    assert any(p.startswith("s.yaml:6:") for p in found), found


def test_aliases_of_aliases_are_checked_once_and_deep_nesting_is_a_clear_error(monkeypatch):
    from exportjobs import yamldoc
    from exportjobs.yamldoc import YamlError, read_yaml

    calls = []
    visit = yamldoc._KeyCheck.visit
    monkeypatch.setattr(yamldoc._KeyCheck, "visit",
                        lambda self, node, path: (calls.append(1), visit(self, node, path))[1])
    levels = ["a0: &a0 [1]"] + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 6)]
    doc = read_yaml("\n".join(levels) + "\n")
    assert doc.line(["a5"]) == 6
    assert len(calls) < 100  # 9**5 paths run through the aliases: a walk along each is a hang
    with pytest.raises(YamlError) as info:
        read_yaml("[" * 5000 + "]" * 5000)
    assert "nested too deeply" in info.value.message
