"""The scenario loader's YAML bounds and JSON rules come from the one YAML reader
(``exportjobs.yamldoc``), with the scenario's own, tighter, bounds; every problem at once."""

from __future__ import annotations

import pytest

from exportjobs.simulator.scenario import MAX_DEPTH, MAX_VALUES, ScenarioError, parse_scenario


def _problems(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "s.yaml")
    return [str(p) for p in info.value.problems]


def _nested(levels: int) -> str:
    return "[" * levels + "]" * levels


def test_the_scenario_depth_bound_is_the_scenarios_not_the_readers():
    """Between the scenario's 64 levels and the reader's 200: refused, at the line."""
    found = _problems(f"name: x\nsteps:\n  - request: {{method: POST, path: /x, json: {_nested(MAX_DEPTH + 5)}}}\n")
    assert found == [f"s.yaml:3: the YAML is nested too deeply (more than {MAX_DEPTH} levels); write it flatter"]


def test_depth_through_an_alias_is_bounded_too():
    """An alias nests a shallow anchor deeper than the composer ever saw."""
    deep = _nested(MAX_DEPTH - 8)
    text = (f"name: x\nvariables:\n  a: &a {deep}\nsteps:\n  - request:\n      method: POST\n"
            "      path: /x\n      json: [[[[[[[[*a]]]]]]]]\n")
    found = _problems(text)
    assert len(found) == 1 and "nested too deeply (more than 64 levels)" in found[0], found


def test_the_value_budget_is_the_scenarios():
    found = _problems("name: x\nvariables: {a: [" + "0, " * MAX_VALUES + "]}\nsteps:\n  - pause: 0\n")
    assert len(found) == 1 and f"more than {MAX_VALUES:,} values" in found[0], found


def test_every_value_json_cannot_carry_is_reported_at_once_with_its_place():
    text = ("name: x\nsteps:\n  - request:\n      method: POST\n      path: /x\n"
            "      json: {d: 2026-01-01, b: !!binary aGk=, n: .nan, i: 184467440737095516160, t: {true: 1}}\n"
            "  - pause: .inf\n")
    found = _problems(text)
    assert sorted(found) == sorted([
        "s.yaml:6: steps[0].request.json.d: a timestamp value ('2026-01-01') is not one JSON can carry; "
        "quote it to make it text",
        "s.yaml:6: steps[0].request.json.b: a binary value ('aGk=') is not one JSON can carry; "
        "quote it to make it text",
        "s.yaml:6: steps[0].request.json.t: a key that is not text (a number, a date, a list or a merge '<<'); "
        "quote it",
        "s.yaml:6: steps[0].request.json.n is nan, which is not a number JSON can carry; write a finite number",
        "s.yaml:6: steps[0].request.json.i is an integer of 21 digits, beyond what JSON tools carry; "
        "quote it to send it as text",
        "s.yaml:7: steps[1].pause is inf, which is not a number JSON can carry; write a finite number",
    ]), found


def test_integer_keys_are_read_as_text():
    scenario = parse_scenario("name: x\nsteps:\n  - burst: {count: 2, request: {path: /x}}\n"
                              "    expect: {counts: {201: 1, 409: 1}}\n", "s.yaml")
    assert dict(scenario.steps[0].expect.counts) == {"201": 1, "409": 1}
