"""The scenario loader: YAML in, a validated ``Scenario`` out, or errors with file and line.

Shapes are checked against the shipped JSON Schema (``scenario.schema.json``, the same
file editors use); what a schema cannot say (one kind per step, references to variables
defined earlier, regular expressions that compile) is checked here. Nothing is sent before
a scenario has loaded cleanly.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from simulator.values import GENERATORS, parse_path, references
from simulator.yamldoc import YamlDocument, YamlError, read_yaml

STEP_KINDS = ("request", "burst", "poll", "pause", "load")
BURST_ONLY = ("counts", "invariants", "each")


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


@dataclass
class Step:
    index: int
    line: int
    name: str
    kind: str
    spec: Any  # the kind's own mapping (or seconds, for a pause), with ${...} still in it
    expect: dict[str, Any] = field(default_factory=dict)
    save: dict[str, dict[str, Any]] = field(default_factory=dict)
    retry: dict[str, Any] | None = None  # request steps: retry throttles and failures


@dataclass
class Scenario:
    source: str
    name: str
    description: str
    target: str | None
    proxy: str | None
    auth: dict[str, str]
    variables: dict[str, Any]
    steps: list[Step]

    def resolve_variables(self, overrides: dict[str, str] | None = None) -> dict[str, Any]:
        """Literal and generated values for this run; ``overrides`` (from --var) win."""
        values: dict[str, Any] = {}
        for name, spec in self.variables.items():
            values[name] = GENERATORS[spec["generate"]]() if isinstance(spec, dict) else spec
        values.update(overrides or {})
        return values


@cache
def schema() -> dict[str, Any]:
    return json.loads(resources.files("simulator").joinpath("scenario.schema.json").read_text())


# --- YAML with line numbers ------------------------------------------------------------------


def _normalise(value: Any) -> Any:
    """Mapping keys become strings (YAML reads ``201: 1`` with an integer key)."""
    if isinstance(value, dict):
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    return value


def _where(path: list[Any]) -> str:
    out = ""
    for seg in path:
        out += f"[{seg}]" if isinstance(seg, int) else (f".{seg}" if out else str(seg))
    return out or "the scenario"


def _describe(err: jsonschema.ValidationError) -> tuple[list[Any], str | None, str]:
    """(path, key to point at, message) for one schema error."""
    path = list(err.absolute_path)
    hint = err.schema.get("description") if isinstance(err.schema, dict) else None
    where = _where(path)
    if err.validator == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        unknown = sorted(set(err.instance) - set(allowed)) if isinstance(err.instance, dict) else []
        name = unknown[0] if unknown else "?"
        fix = f"allowed here: {', '.join(allowed)}" if allowed else hint or ""
        return path, name, f"unknown key '{name}' in {where}; {fix}"
    if err.validator == "required":
        missing = re.findall(r"'([^']+)' is a required property", err.message)
        name = missing[0] if missing else "?"
        prop_hint = err.schema.get("properties", {}).get(name, {}).get("description")
        return path, None, f"{where} needs '{name}'" + (f" ({prop_hint})" if prop_hint else "")
    if err.validator == "propertyNames":
        bad = err.instance if isinstance(err.instance, str) else "?"
        return path, bad, f"'{bad}' is not a valid name here; {hint or 'use letters, digits and _'}"
    if err.validator == "enum":
        options = ", ".join(str(o) for o in err.validator_value)
        return path, None, f"{where} is {err.instance!r}; use one of: {options}"
    if err.validator == "type":
        return path, None, (f"{where} should be {err.validator_value}, not {type(err.instance).__name__}"
                            f" {err.instance!r}" + (f"; {hint}" if hint else ""))
    if err.validator in ("anyOf", "oneOf"):
        return path, None, f"{where} is {err.instance!r}; expected {hint or 'another form'}"
    return path, None, f"{where}: {err.message}" + (f" ({hint})" if hint else "")


def _schema_problems(data: Any, doc: YamlDocument, source: str) -> list[Problem]:
    validator = jsonschema.Draft202012Validator(schema())
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
            self.problem(path, f"${{{name}}} is not defined before this step; define it under "
                               f"'variables', save it in an earlier step, or pass --var {name}=VALUE")

    def json_paths(self, path: list[Any], mapping: dict[str, Any] | None) -> None:
        for expr, matcher in (mapping or {}).items():
            try:
                parse_path(expr)
            except ValueError as exc:
                self.problem(path, f"{exc}; write it like error.code, value.0.id or value['@odata.type']", expr)
            if isinstance(matcher, dict) and "pattern" in matcher:
                self.regex([*path, expr], matcher["pattern"])

    def regex(self, path: list[Any], pattern: str) -> None:
        try:
            re.compile(pattern)
        except re.error as exc:
            self.problem(path, f"pattern {pattern!r} is not a regular expression: {exc}", "pattern")

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
    try:
        doc = read_yaml(text)
    except YamlError as exc:
        raise ScenarioError([Problem(source, exc.line, exc.message)]) from None
    if doc.root is None:
        raise ScenarioError([Problem(source, 1, "the file is empty; a scenario needs a name and steps")])
    data = _normalise(doc.data)
    problems = [Problem(source, p.line, p.message) for p in doc.problems]
    if not isinstance(data, dict):
        raise ScenarioError([Problem(source, 1, "a scenario is a mapping with name and steps")])
    problems += _schema_problems(data, doc, source)
    if problems:
        raise ScenarioError(problems)
    checker = _Checker(doc, source, set(data.get("variables") or {}) | set(extra_variables))
    checker.refs([], {k: data.get(k) for k in ("target", "proxy")})
    for i, step in enumerate(data["steps"]):
        checker.step(i, step)
    if checker.problems:
        raise ScenarioError(checker.problems)

    steps = []
    for i, raw in enumerate(data["steps"]):
        kind = next(k for k in STEP_KINDS if k in raw)
        steps.append(Step(
            index=i,
            line=doc.line(["steps", i]),
            name=raw.get("name") or f"{kind} {i + 1}",
            kind=kind,
            spec=raw[kind],
            expect=raw.get("expect") or {},
            save=raw.get("save") or {},
            retry=raw.get("retry"),
        ))
    return Scenario(
        source=source,
        name=data["name"],
        description=data.get("description", ""),
        target=data.get("target"),
        proxy=data.get("proxy"),
        auth=data.get("auth") or {},
        variables=data.get("variables") or {},
        steps=steps,
    )


def load_scenario(path: str | Path, *, extra_variables: set[str] | frozenset[str] = frozenset()) -> Scenario:
    """Read and check the scenario file at ``path``."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ScenarioError([Problem(source, 0, f"cannot read the scenario: {reason}")]) from None
    return parse_scenario(text, source, extra_variables=extra_variables)
