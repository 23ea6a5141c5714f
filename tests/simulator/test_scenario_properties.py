"""Generated scenarios through the loader and the pre-send checks: a scenario that can run,
or a ScenarioError whose every problem names a line; never another exception.

Documents are built from the schema's own shapes (its keys, in their places) filled with
hostile values: YAML types JSON lacks, non-finite and huge numbers, control characters,
line breaks and non-ASCII in paths and headers, ``${...}`` references, deep nesting; and
as text, mutated after dumping (truncated, a byte replaced).
"""

from __future__ import annotations

import datetime

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exportjobs.simulator.runner import preflight
from exportjobs.simulator.scenario import ScenarioError, parse_scenario, schema

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))

RAW = "@@RAW@@"
HOSTILE_TEXT = st.sampled_from([
    "/beta/employeeExperience/goals/exportJobs", "/", "", "x", "${v}", "/${v}", "${nope}",
    "http://127.0.0.1:99999", "http://[::1", "https://h/", "a\nb", "caf\u00e9", "/caf\u00e9",
    "(a+)+$", "[", "\t", " ", "value.0.id", "error..code", "GET", "POST", "guid", "1e9", RAW,
])
# YAML written out where a generated value said RAW: what a dumper would never produce.
RAW_YAML = st.sampled_from([
    "!!float abc", "!!int 12x", "!!bool maybe", "!!null x", "!!timestamp 2026-13-45", "!!binary aGk=",
    "!!binary '%%%'", "!!set {a, b}", "!!omap [{a: 1}]", "!!pairs [{a: 1}]", "2026-01-01", "2026-01-01 10:00:00",
    ".inf", "-.inf", ".nan", "9" * 5000, "!!python/tuple [1]", "*nowhere", "&x [*x]", "[" * 90 + "]" * 90,
    '"\\ud800"', '"\\x00"', '"a\\nb"', '"caf\\u00e9"', "!!str", "!custom 1", "0x1F", "0o17", "1_000",
    "1:20", "'${v}'", "~", "!!float 1e400", "-0.0", "!!int -0",
])
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12), HOSTILE_TEXT,
    st.dates(), st.datetimes(), st.binary(max_size=8),
    st.frozensets(st.integers(0, 3), max_size=3).map(set),
)
JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-1000, 1000), st.floats(allow_nan=False, allow_infinity=False),
              HOSTILE_TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(HOSTILE_TEXT, inner, max_size=3)),
    max_leaves=8)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.one_of(HOSTILE_TEXT, st.text(max_size=6)), inner, max_size=3)),
    max_leaves=12)


def _resolve(definition: dict) -> dict:
    while "$ref" in definition:
        node = schema()
        for part in definition["$ref"].lstrip("#/").split("/"):
            node = node[part]
        definition = node
    return definition


def _mostly(typed: st.SearchStrategy) -> st.SearchStrategy:
    """Usually a value of the right type, one time in thirty anything at all."""
    return st.integers(0, 29).flatmap(lambda i: VALUES if i == 29 else typed)


def _typed(kind: str | list) -> st.SearchStrategy:
    kinds = kind if isinstance(kind, list) else [kind]
    options = {"string": st.one_of(HOSTILE_TEXT, st.text(max_size=8)),
               "number": st.one_of(st.integers(1, 3), st.floats(0.01, 2), st.floats(allow_nan=True, allow_infinity=True)),
               "integer": st.one_of(st.integers(1, 20), st.integers()), "boolean": st.booleans(),
               "null": st.none(), "array": st.lists(JSON_VALUES, max_size=3), "object": st.just({})}
    return st.one_of(*(options[k] for k in kinds if k in options)) if kinds else VALUES


def _shaped(definition: dict, depth: int = 0) -> st.SearchStrategy:
    """A value shaped like ``definition`` of the schema, mostly of the right types, with
    hostile values among them."""
    definition = _resolve(definition)
    if "enum" in definition:
        return _mostly(st.sampled_from(definition["enum"]))
    if "const" in definition:
        return _mostly(st.just(definition["const"]))
    if "anyOf" in definition:
        return st.one_of(*(_shaped(d, depth + 1) for d in definition["anyOf"]))
    props = definition.get("properties")
    if depth > 5:
        return VALUES
    if props:
        # A request takes one of path or url: draw each way.
        ways = [{"path"}, {"url"}] if {"path", "url"} <= props.keys() else [set()]
        return _mostly(st.one_of(*(st.fixed_dictionaries(
            {k: _shaped(v, depth + 1) for k, v in props.items() if k in set(definition.get("required", [])) | way},
            optional={k: _shaped(v, depth + 1) for k, v in props.items()
                      if k not in set(definition.get("required", [])) | {"path", "url"}}) for way in ways)))
    extra = definition.get("additionalProperties")
    if isinstance(extra, dict):
        keys = st.one_of(st.sampled_from(["201", "409", "v", "id", "value.0.id", "Location"]), HOSTILE_TEXT)
        return _mostly(st.dictionaries(keys, _shaped(extra, depth + 1), max_size=2))
    if "items" in definition:
        return _mostly(st.lists(_shaped(definition["items"], depth + 1), min_size=1, max_size=2))
    if "type" in definition:
        return _mostly(_typed(definition["type"]))
    return _mostly(JSON_VALUES)


_KINDS = ("request", "burst", "poll", "pause", "load")
_STEP = _resolve({"$ref": "#/$defs/step"})["properties"]
STEP = st.sampled_from(_KINDS).flatmap(lambda kind: st.fixed_dictionaries(
    {kind: _shaped(_STEP[kind])},
    optional={k: _shaped(_STEP[k]) for k in ("name", "expect", "save", "retry")}))
STEPS = st.lists(_mostly(STEP), min_size=1, max_size=3)
DOCUMENTS = st.fixed_dictionaries(
    {"name": _mostly(st.just("generated")), "steps": STEPS},
    optional={"variables": st.dictionaries(st.sampled_from(["v", "n", "w"]), _mostly(st.one_of(
                  HOSTILE_TEXT, st.integers(), st.booleans(), st.just({"generate": "guid"}))), max_size=3),
              "target": _mostly(HOSTILE_TEXT), "auth": _shaped({"$ref": "#/$defs/auth"}),
              "bogus": st.integers(0, 29).flatmap(lambda i: VALUES if i == 29 else st.nothing())})


def _dump(document: dict) -> str:
    return yaml.dump(document, allow_unicode=True, default_flow_style=None, sort_keys=False)


def _load_and_check(text: str) -> None:
    try:
        scenario = parse_scenario(text, "g.yaml", extra_variables={"w"})
        variables = scenario.resolve_variables({"w": "1"})
        preflight(scenario, variables, target=scenario.target, proxy=scenario.proxy)
    except ScenarioError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.line >= 1 and problem.message, str(problem)
            assert str(problem).startswith("g.yaml:")


@SETTINGS
@given(DOCUMENTS, st.data())
def test_generated_scenarios_load_or_name_a_line(document, data):
    text = _dump(document)
    while f"'{RAW}'" in text:
        text = text.replace(f"'{RAW}'", data.draw(RAW_YAML), 1)
    _load_and_check(text)


@SETTINGS
@given(DOCUMENTS, st.data())
def test_mutated_scenario_text_loads_or_names_a_line(document, data):
    text = _dump(document)
    cut = data.draw(st.integers(0, len(text)))
    replacement = data.draw(st.one_of(
        st.sampled_from(["", "\x00", "\x1b", "\ufeff", "\ud800"[:0], "&a", "*a", "!!float x", "!!set",
                         "[" * 80, "{", ": ", "\n  - ", "\t", "\u2028", "'", '"']),
        st.text(max_size=3)))
    _load_and_check(text[:cut] + replacement + text[cut + 1:])


def test_a_date_key_and_value_are_examples_the_generator_covers():
    """The generator reaches the YAML types that once escaped as tracebacks."""
    text = _dump({"name": "x", "steps": [{"request": {"path": "/", "json": {"d": datetime.date(2026, 1, 1)}}}]})
    assert "2026-01-01" in text
    _load_and_check(text)
