"""The scenario loader: YAML in, a validated ``Scenario`` out, or errors with file and line.

Shapes are checked against the shipped JSON Schema (``scenario.schema.json``, the same
file editors use); what a schema cannot say (one kind per step, references to variables
defined earlier, regular expressions that compile) is checked here. Nothing is sent before
a scenario has loaded cleanly.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from exportjobs import scenarios as shipped
from exportjobs.simulator.expectations import pattern_problem
from exportjobs.simulator.steps import KINDS, Auth, Step, build, build_step
from exportjobs.simulator.values import generated, parse_path, references
from exportjobs.yamldoc import YamlDocument, YamlError, json_problems, read_yaml

STEP_KINDS = tuple(KINDS)
BURST_ONLY = ("counts", "invariants", "each")

# Bounds on what a scenario file may hold, so that reading one takes bounded time and memory
# and nothing after the loader (schema, interpolation, JSON encoding) can recurse too deep.
# The YAML reader checks the value count (aliases count each time they are used, keys count)
# and the depth; these are the scenario's choice of its bounds.
MAX_FILE_BYTES = 10 * 1024 * 1024
MAX_DEPTH = 64
MAX_VALUES = 100_000
_MAX_INT = 2**64  # beyond 64 bits JSON tools disagree about a number


@dataclass(frozen=True)
class Problem:
    source: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.message}" if self.line else f"{self.source}: {self.message}"


class ScenarioError(Exception):
    """A scenario that cannot run; ``problems`` says where and how to fix each."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: p.line)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True, slots=True)
class Scenario:
    """A whole scenario: the top-level keys (``source`` and ``lines`` are not keys)."""

    source: str = field(metadata={"yaml": False})
    name: str
    steps: tuple[Step, ...] = field(metadata={"yaml": False})  # built with their index and line
    description: str = ""
    target: str | None = None  # None: the embedded emulator
    proxy: str | None = None
    auth: Auth = field(default_factory=Auth, metadata={"build": lambda data: build(Auth, data)})
    variables: Mapping[str, Any] = field(default_factory=dict)  # literal, or {generate: guid}
    lines: Mapping[str, int] = field(default_factory=dict, metadata={"yaml": False})  # of each key

    def resolve_variables(self, overrides: dict[str, str] | None = None) -> dict[str, Any]:
        """Literal and generated values for this run; ``overrides`` (from --var) win."""
        values: dict[str, Any] = {}
        for name, spec in self.variables.items():
            values[name] = generated(spec) if isinstance(spec, dict) else spec
        values.update(overrides or {})
        return values


@cache
def schema() -> dict[str, Any]:
    return json.loads(shipped.schema_text())


# --- YAML with line numbers ------------------------------------------------------------------


def _read(text: str, source: str) -> YamlDocument:
    """The YAML document of a scenario text, bounded by the scenario's limits (checked by
    the one YAML reader, before anything is built), or ScenarioError naming the line."""
    try:
        return read_yaml(text, budget=MAX_VALUES, max_depth=MAX_DEPTH)
    except YamlError as exc:
        raise ScenarioError([Problem(source, exc.line, exc.message)]) from None


def _number_problem(value: Any) -> str | None:
    """The scenario's own rule for numbers (JSON-shaped ones the reader let through): finite,
    and integers within 64 bits, beyond which JSON tools disagree about a number."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"is {value!r}, which is not a number JSON can carry; write a finite number"
    if isinstance(value, int) and not isinstance(value, bool) and not -_MAX_INT < value < _MAX_INT:
        return (f"is an integer of {len(str(abs(value)))} digits, beyond what JSON tools carry; "
                "quote it to send it as text")
    return None


def _json_data(doc: YamlDocument, source: str) -> tuple[Any, list[Problem]]:
    """The document's data as JSON-shaped values, with a problem for every value that is
    not one (found by the YAML reader's JSON check, each at its line) and every number the
    scenario cannot carry. Mapping keys become text (YAML reads ``201: 1`` with an integer
    key). The reader has already bounded the data's size and depth."""
    assert doc.root is not None
    problems = [Problem(source, exc.line, f"{_where(list(exc.path or ()))}: {exc.message}")
                for exc in json_problems(doc.root, integer_keys=True)]
    root: dict[str, Any] = {}
    stack: list[tuple[Any, tuple[Any, ...], Any, Any]] = [(doc.data, (), root, "")]
    while stack:
        value, path, parent, key = stack.pop()
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            parent[key] = out
            for k, v in value.items():
                out[str(k)] = None
                stack.append((v, (*path, str(k)), out, str(k)))
        elif isinstance(value, list):
            items: list[Any] = [None] * len(value)
            parent[key] = items
            stack.extend((v, (*path, i), items, i) for i, v in enumerate(value))
        else:
            parent[key] = value
            why = _number_problem(value)
            if why is not None:
                problems.append(Problem(source, doc.line(list(path)), f"{_where(list(path))} {why}"))
    return root.get(""), problems


def _where(path: list[Any]) -> str:
    out = ""
    for seg in path:
        out += f"[{seg}]" if isinstance(seg, int) else (f".{seg}" if out else str(seg))
    return out or "the scenario"


def _describe(err: jsonschema.ValidationError) -> tuple[list[Any], str | None, str]:
    """(path, key to point at, message) for one schema error."""
    path = list(err.absolute_path)
    schema: dict[str, Any] = err.schema if isinstance(err.schema, dict) else {}
    hint = schema.get("description")
    where = _where(path)
    if err.validator == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        unknown = sorted(set(err.instance) - set(allowed)) if isinstance(err.instance, dict) else []
        name = unknown[0] if unknown else "?"
        fix = f"allowed here: {', '.join(allowed)}" if allowed else hint or ""
        return path, name, f"unknown key '{name}' in {where}; {fix}"
    if err.validator == "required":
        missing = re.findall(r"'([^']+)' is a required property", err.message)
        name = missing[0] if missing else "?"
        prop_hint = schema.get("properties", {}).get(name, {}).get("description")
        return path, None, f"{where} needs '{name}'" + (f" ({prop_hint})" if prop_hint else "")
    if err.validator == "propertyNames":
        bad = err.instance if isinstance(err.instance, str) else "?"
        return path, bad, f"'{bad}' is not a valid name here; {hint or 'use letters, digits and _'}"
    if err.validator == "enum":
        options = ", ".join(str(o) for o in schema.get("enum", ()))
        return path, None, f"{where} is {err.instance!r}; use one of: {options}"
    if err.validator == "type":
        return path, None, (f"{where} should be {err.validator_value}, not {type(err.instance).__name__}"
                            f" {err.instance!r}" + (f"; {hint}" if hint else ""))
    if err.validator in ("anyOf", "oneOf"):
        return path, None, f"{where} is {err.instance!r}; expected {hint or 'another form'}"
    return path, None, f"{where}: {err.message}" + (f" ({hint})" if hint else "")


def _is_integer(checker: Any, instance: Any) -> bool:
    """An integer is an int: ``count: 10.0`` is a float, and says so, rather than passing
    the schema and failing where a count is used."""
    return isinstance(instance, int) and not isinstance(instance, bool)


_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer))


def _schema_problems(data: Any, doc: YamlDocument, source: str) -> list[Problem]:
    validator = _Validator(schema())
    problems = []
    for err in validator.iter_errors(data):
        # For anyOf failures, the branch that got furthest says the most.
        if err.validator in ("anyOf", "oneOf") and err.context:
            deepest = max(err.context, key=lambda e: len(e.absolute_path))
            if len(deepest.absolute_path) > len(err.absolute_path) or deepest.validator == "additionalProperties":
                err = deepest
        path, key, message = _describe(err)
        problems.append(Problem(source, doc.line(path, key), message))
    return problems


# --- what the schema cannot say -------------------------------------------------------------------


class _Checker:
    def __init__(self, doc: YamlDocument, source: str, defined: set[str]) -> None:
        self.doc, self.source, self.defined = doc, source, set(defined)
        self.problems: list[Problem] = []

    def problem(self, path: list[Any], message: str, key: str | None = None) -> None:
        self.problems.append(Problem(self.source, self.doc.line(path, key), message))

    def refs(self, path: list[Any], value: Any) -> None:
        """Report undefined ``${name}`` at the innermost place that uses it."""
        if isinstance(value, dict):
            for k, v in value.items():
                self.refs([*path, k], v)
            return
        if isinstance(value, list):
            for i, v in enumerate(value):
                self.refs([*path, i], v)
            return
        for name in sorted(references(value) - self.defined):
            near = difflib.get_close_matches(name, sorted(self.defined), n=1, cutoff=0.5)
            self.problem(path, f"${{{name}}} is not defined before this step"
                               + (f" (did you mean ${{{near[0]}}}?)" if near else "")
                               + f"; define it under 'variables', save it in an earlier step, "
                               f"or pass --var {name}=VALUE")

    def variables(self, variables: dict[str, Any]) -> None:
        """What the schema leaves to say about generated variables: which keys go together."""
        for name, spec in variables.items():
            if not isinstance(spec, dict) or "generate" not in spec:
                continue
            kind = spec["generate"]
            if kind == "choice" and "from" not in spec:
                self.problem(["variables", name], f"{name}: generate: choice needs 'from', the values "
                             "to choose from, e.g. {generate: choice, from: [a, b]}")
            if "from" in spec and kind != "choice":
                self.problem(["variables", name], f"{name}: 'from' goes with generate: choice", "from")
            if "start" in spec and kind != "counter":
                self.problem(["variables", name], f"{name}: 'start' goes with generate: counter", "start")

    def step_references(self, i: int, step: Any) -> None:
        """The undefined references of a step whose shape may be wrong: every ``${name}`` in
        its action and its expectations (the full check reports them at the same places)."""
        if not isinstance(step, dict):
            return
        for key in (*STEP_KINDS, "expect"):
            if key in step:
                self.refs(["steps", i, key], step[key])
        saved = step.get("save")
        if isinstance(saved, dict):
            self.defined |= set(saved)

    def json_paths(self, path: list[Any], mapping: dict[str, Any] | None) -> None:
        for expr, matcher in (mapping or {}).items():
            try:
                parse_path(expr)
            except ValueError as exc:
                self.problem(path, f"{exc}; write it like error.code, value.0.id or value['@odata.type']", expr)
            if isinstance(matcher, dict) and "pattern" in matcher:
                self.regex([*path, expr], matcher["pattern"])

    def regex(self, path: list[Any], pattern: str) -> None:
        why = pattern_problem(pattern)
        if why is not None:
            self.problem(path, why, "pattern")

    def request(self, path: list[Any], req: dict[str, Any]) -> None:
        if ("path" in req) == ("url" in req):
            self.problem(path, "a request needs exactly one of 'path' (joined to target) or 'url'")
        if "json" in req and "body" in req:
            self.problem(path, "a request takes 'json' or 'body', not both", "body")
        self.refs(path, req)

    def response_expectation(self, path: list[Any], expect: dict[str, Any]) -> None:
        self.json_paths([*path, "json"], expect.get("json"))
        for name, matcher in (expect.get("headers") or {}).items():
            if isinstance(matcher, dict) and "pattern" in matcher:
                self.regex([*path, "headers", name], matcher["pattern"])
        self.refs(path, expect)

    def step(self, i: int, step: dict[str, Any]) -> None:
        path: list[Any] = ["steps", i]
        kinds = [k for k in STEP_KINDS if k in step]
        if len(kinds) != 1:
            found = ", ".join(kinds) if kinds else "none"
            self.problem(path, f"a step needs exactly one of {', '.join(STEP_KINDS)} (found: {found})")
            return
        kind = kinds[0]
        spec = step[kind]
        if kind == "request":
            self.request([*path, "request"], spec)
        elif kind in ("burst", "poll"):
            self.request([*path, kind, "request"], spec["request"])
        elif kind == "load":
            for j, item in enumerate(spec["mix"]):
                self.request([*path, "load", "mix", j, "request"], item["request"])
            if ("concurrency" in spec) == ("rate" in spec):
                self.problem([*path, "load"], "a load phase needs exactly one of 'concurrency' or 'rate'")
        if kind == "poll":
            if not spec["until"]:
                self.problem([*path, "poll", "until"], "'until' needs a status, headers or json condition")
            self.response_expectation([*path, "poll", "until"], spec["until"])
        if kind == "burst" and "spacing" in spec and spec.get("release", "none") != "none":
            self.problem([*path, "burst"], "'spacing' sends copies one after another with no "
                         "synchronisation; it goes with release: none", "spacing")
        if "retry" in step and kind != "request":
            self.problem(path, "'retry' applies to request steps only"
                         + ("; a poll already waits Retry-After between tries" if kind == "poll" else ""),
                         "retry")
        expect = step.get("expect") or {}
        if "honours_retry_after" in expect and kind not in ("request", "poll"):
            self.problem([*path, "expect"], "'honours_retry_after' applies to request and poll steps",
                         "honours_retry_after")
        if expect and kind in ("pause", "load"):
            self.problem(path, f"a {kind} step takes no 'expect'"
                         + ("; put limits under load.thresholds" if kind == "load" else ""), "expect")
        for key in BURST_ONLY:
            if key in expect and kind != "burst":
                self.problem([*path, "expect"], f"'{key}' applies to bursts only", key)
        for key in ("status", "headers", "json"):
            if key in expect and kind == "burst":
                self.problem([*path, "expect"], f"in a burst, put '{key}' under 'each' (checked on "
                             "every response), or count statuses with 'counts'", key)
        self.response_expectation([*path, "expect"], expect)
        if "each" in expect:
            self.response_expectation([*path, "expect", "each"], expect["each"])
        for name, rule in (step.get("save") or {}).items():
            sources = [s for s in ("json", "header", "status") if s in rule]
            if len(sources) != 1:
                self.problem([*path, "save"], f"save '{name}' needs exactly one of json, header or status", name)
            if "from" in rule and kind != "burst":
                self.problem([*path, "save", name], "'from' applies to bursts only", "from")
            if kind in ("pause", "load"):
                self.problem([*path, "save"], f"a {kind} step has no response to save from", name)
            if "json" in rule:
                self.json_paths([*path, "save"], {rule["json"]: None})
        self.defined |= set(step.get("save") or {})


def parse_scenario(text: str, source: str, *, extra_variables: set[str] | frozenset[str] = frozenset()) -> Scenario:
    """Parse and check a scenario; ``extra_variables`` are names given with --var."""
    doc = _read(text, source)
    if doc.root is None:
        raise ScenarioError([Problem(source, 1, "the file is empty; a scenario needs a name and steps")])
    data, problems = _json_data(doc, source)
    if problems:  # values that are not JSON: the schema cannot judge them
        raise ScenarioError(problems + [Problem(source, p.line, p.message) for p in doc.problems])
    problems = [Problem(source, p.line, p.message) for p in doc.problems]
    if not isinstance(data, dict):
        raise ScenarioError([Problem(source, 1, "a scenario is a mapping with name and steps")])
    problems += _schema_problems(data, doc, source)
    variables = data.get("variables")
    checker = _Checker(doc, source, set(variables if isinstance(variables, dict) else ()) | set(extra_variables))
    checker.refs([], {k: data.get(k) for k in ("target", "proxy")})
    if isinstance(variables, dict):
        checker.variables(variables)
    steps = data.get("steps")
    if problems:  # the shapes are wrong somewhere: still report every undefined reference
        for i, step in enumerate(steps if isinstance(steps, list) else ()):
            checker.step_references(i, step)
    else:
        for i, step in enumerate(data["steps"]):
            checker.step(i, step)
    if problems or checker.problems:
        raise ScenarioError(_unique(problems + checker.problems))

    steps = tuple(build_step(i, doc.line(["steps", i]), raw) for i, raw in enumerate(data["steps"]))
    top = build(Scenario, {k: v for k, v in data.items() if k != "steps"}, source=source, steps=steps,
                lines={key: doc.line([], key) for key in data})
    return top


def _unique(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))


def unused_variables(scenario: Scenario, names: set[str] | frozenset[str]) -> list[tuple[str, str | None]]:
    """Each of ``names`` (given with --var) that the scenario neither defines nor uses, with
    the nearest name it does define or use (None when nothing is near): a typo shows."""
    known = set(scenario.variables) | references([scenario.target, scenario.proxy, scenario.steps])
    unused = []
    for name in sorted(names - known):
        near = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.5)
        unused.append((name, near[0] if near else None))
    return unused


def load_scenario(path: str | Path, *, extra_variables: set[str] | frozenset[str] = frozenset()) -> Scenario:
    """Read and check the scenario file at ``path``."""
    source = str(path)
    try:
        if not Path(path).is_file():  # a FIFO or a device would block or never end
            why = "no such file" if not Path(path).exists() else "not a regular file"
            raise ScenarioError([Problem(source, 0, f"cannot read the scenario: {why}")])
        with open(path, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ScenarioError([Problem(source, 0, f"cannot read the scenario: {exc.strerror or exc}")]) from None
    if len(raw) > MAX_FILE_BYTES:
        raise ScenarioError([Problem(source, 0, f"the file is larger than {MAX_FILE_BYTES >> 20} MiB; "
                                     "a scenario is a short YAML file")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ScenarioError([Problem(source, line, f"column {column}: byte 0x{raw[exc.start]:02x} is not "
                                     "UTF-8; save the file as UTF-8")]) from None
    return parse_scenario(text, source, extra_variables=extra_variables)
