"""The typed steps are the one place scenario defaults are stated: the JSON Schema's shapes
and ``default`` keywords, and the defaults table in docs/scenarios.md, agree with them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from exportjobs.simulator import steps
from exportjobs.simulator.scenario import Scenario, parse_scenario, schema

DOCS = Path(__file__).resolve().parent.parent.parent / "docs" / "scenarios.md"

# Each typed part and where the schema describes it; keys the class builds itself.
PARTS = [
    (Scenario, "", {"steps"}),
    (steps.Step, "$defs/step", set(steps.KINDS)),
    (steps.Auth, "$defs/auth", set()),
    (steps.RequestSpec, "$defs/request", set()),
    (steps.ResponseExpectation, "$defs/response_expectation", set()),
    (steps.Expect, "$defs/expect", set()),
    (steps.SaveRule, "$defs/save/additionalProperties", set()),
    (steps.Burst, "$defs/burst", set()),
    (steps.Retry, "$defs/retry", set()),
    (steps.Poll, "$defs/poll", set()),
    (steps.Load, "$defs/load", set()),
    (steps.MixItem, "$defs/load/properties/mix/items", set()),
    (steps.Thresholds, "$defs/load/properties/thresholds", set()),
]


def _at(pointer: str) -> dict:
    node = schema()
    for part in filter(None, pointer.split("/")):
        node = node[part]
    return node


def _words(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(list(value) if isinstance(value, tuple) else value)


def _yaml(value):
    return list(value) if isinstance(value, tuple) else value


def test_every_part_of_a_step_is_checked_here():
    classes = {cls for cls, _, _ in PARTS}
    typed = {obj for obj in vars(steps).values()
             if isinstance(obj, type) and dataclasses.is_dataclass(obj)} - {steps.Pause}
    assert typed <= classes, typed - classes


@pytest.mark.parametrize("cls, pointer, own", PARTS, ids=[c.__name__ for c, _, _ in PARTS])
def test_the_schema_and_the_dataclass_have_the_same_keys_and_defaults(cls, pointer, own):
    properties = _at(pointer)["properties"]
    fields = steps.yaml_keys(cls)
    assert set(fields) | own == set(properties), (set(fields) ^ set(properties))
    for key, f in fields.items():
        stated = steps.stated_default(f)
        if stated is dataclasses.MISSING:
            assert "default" not in properties[key] or properties[key]["default"] == _yaml(steps.default(f)), key
            continue
        assert "default" in properties[key], f"{pointer}/properties/{key} needs \"default\": {_yaml(stated)!r}"
        assert properties[key]["default"] == _yaml(stated), key
        described = properties[key].get("description", "")
        if "default" in described:  # a description that names the default names this one
            assert f"default {_words(stated)}" in described, (key, described)


def test_the_documented_defaults_are_the_dataclasses():
    text = DOCS.read_text(encoding="utf-8")
    documented = text.split("<!-- defaults: generated -->\n")[1].split("<!-- /defaults -->")[0]
    assert documented == steps.defaults_table(), (
        "docs/scenarios.md's defaults table is out of date; paste in "
        "exportjobs.simulator.steps.defaults_table()")


def test_a_step_left_bare_gets_the_defaults_of_its_fields():
    scenario = parse_scenario("name: x\nsteps:\n  - poll: {request: {path: /x}, until: {status: 200}}\n"
                              "  - request: {path: /x}\n    retry: {}\n"
                              "  - burst: {count: 2, spacing: 0.1, request: {path: /x}}\n", "s.yaml")
    poll, _, burst = (s.action for s in scenario.steps)
    assert (poll.interval, poll.max_retry_after, poll.timeout) == (1.0, 60.0, 120.0)
    assert poll.request.method == "GET" and poll.request.auth is True and poll.until.status == 200
    assert scenario.steps[1].retry == steps.Retry() and scenario.steps[1].retry.statuses == (429, 503, 504)
    assert burst.release == "none" and burst.spacing == 0.1
    assert scenario.steps[0].name == "poll 1" and scenario.auth.scopes == "Goals-Export.ReadWrite.All"
