"""The typed parts of a scenario: one frozen dataclass per step kind and per part.

Each default is stated once, in its field; the runner reads attributes. The loader builds
these from YAML that has already passed the JSON Schema and the loader's own checks, so
building only maps keys to fields. The schema (``scenario.schema.json``) and the table of
defaults in docs/scenarios.md are checked against these classes by the tests
(``yaml_keys`` and ``defaults`` are what they compare).

A string field may still hold ``${name}``: values are filled in when a step runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeVar

from exportjobs.simulator.emulator.auth import READ_WRITE


class _Absent:
    """A key that was not given (where null would be a value: a request's ``json``)."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()

Release = Literal["none", "barrier", "last-byte"]
T = TypeVar("T")


def build(cls: type[T], data: Mapping[str, Any], **given: Any) -> T:
    """An instance of ``cls`` from a checked YAML mapping: each key to its field, nested
    parts built by their own class; a key not given keeps the field's default. ``given``
    sets fields that are not YAML keys."""
    kwargs = dict(given)
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        key = f.metadata.get("key", f.name)
        if f.metadata.get("yaml", True) and key in data:
            convert = f.metadata.get("build")
            kwargs[f.name] = convert(data[key]) if convert else data[key]
    return cls(**kwargs)


def yaml_keys(cls: type) -> dict[str, dataclasses.Field[Any]]:
    """The YAML keys ``cls`` reads, each with its field."""
    return {f.metadata.get("key", f.name): f for f in dataclasses.fields(cls)
            if f.metadata.get("yaml", True)}


def default(f: dataclasses.Field[Any]) -> Any:
    """A field's default value (dataclasses.MISSING when the key is required)."""
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _tuple(items: Any) -> tuple[Any, ...]:
    return tuple(items)


def _status(value: Any) -> int | tuple[int, ...] | None:
    return tuple(value) if isinstance(value, list) else value


# --- requests and expectations ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """One HTTP request as written (``${...}`` still in it); also the request step's kind."""

    KIND: ClassVar[str] = "request"
    method: str = "GET"
    path: Any = None  # text starting with / (or ${...}); exactly one of path and url
    url: Any = None
    query: Mapping[str, Any] = field(default_factory=dict)
    headers: Mapping[str, Any] = field(default_factory=dict)
    json: Any = ABSENT  # null is a body; ABSENT is none
    body: Any = None
    auth: bool = True
    timeout: float | None = None  # None: the run's --timeout

    def requests(self) -> list[tuple[str, RequestSpec]]:
        return [("request", self)]


@dataclass(frozen=True, slots=True)
class ResponseExpectation:
    """What one response must show (a poll's ``until``, a burst's ``each``)."""

    status: int | tuple[int, ...] | None = field(metadata={"build": _status}, default=None)
    headers: Mapping[str, Any] = field(default_factory=dict)  # name to matcher
    json: Mapping[str, Any] = field(default_factory=dict)  # JSON path to matcher

    def as_data(self) -> dict[str, Any]:
        """The keys that were given, as YAML data (for messages)."""
        data = {"status": list(self.status) if isinstance(self.status, tuple) else self.status,
                "headers": dict(self.headers), "json": dict(self.json)}
        return {k: v for k, v in data.items() if v not in (None, {})}


def _response(data: Mapping[str, Any]) -> ResponseExpectation:
    return build(ResponseExpectation, data)


@dataclass(frozen=True, slots=True)
class Expect(ResponseExpectation):
    """A step's ``expect``: one response's checks, and a burst's checks as a whole."""

    counts: Mapping[str, int] = field(default_factory=dict)  # status (as text) to count
    invariants: tuple[str, ...] = field(metadata={"build": _tuple}, default=())
    each: ResponseExpectation | None = field(metadata={"build": _response}, default=None)
    honours_retry_after: bool = False


@dataclass(frozen=True, slots=True)
class SaveRule:
    """Where a saved value comes from: exactly one of json, header and status."""

    json: str | None = None
    header: str | None = None
    status: bool = False
    source: Literal["winner", "first", "last"] = field(default="winner", metadata={"key": "from"})

    @property
    def where(self) -> str:
        return self.json or self.header or "status"


@dataclass(frozen=True, slots=True)
class Retry:
    """A request step's retries of throttles and failures."""

    statuses: tuple[int, ...] = field(metadata={"build": _tuple}, default=(429, 503, 504))
    max_retries: int = 3
    max_retry_after: float = 60.0
    interval: float = 1.0


# --- the step kinds ---------------------------------------------------------------------------


def _request(data: Mapping[str, Any]) -> RequestSpec:
    return build(RequestSpec, data)


@dataclass(frozen=True, slots=True)
class Burst:
    """``count`` copies of one request, released together (or ``spacing`` s apart)."""

    KIND: ClassVar[str] = "burst"
    count: int
    request: RequestSpec = field(metadata={"build": _request})
    release: Release = "last-byte"  # none when spacing is given (the loader sets it)
    spacing: float | None = None

    def requests(self) -> list[tuple[str, RequestSpec]]:
        return [("burst.request", self.request)]


@dataclass(frozen=True, slots=True)
class Poll:
    """A request repeated until ``until`` holds."""

    KIND: ClassVar[str] = "poll"
    request: RequestSpec = field(metadata={"build": _request})
    until: ResponseExpectation = field(metadata={"build": _response})
    interval: float = 1.0
    max_retry_after: float = 60.0
    timeout: float = 120.0

    def requests(self) -> list[tuple[str, RequestSpec]]:
        return [("poll.request", self.request)]


@dataclass(frozen=True, slots=True)
class Pause:
    """Seconds to wait (the step's value is the number)."""

    KIND: ClassVar[str] = "pause"
    seconds: float

    def requests(self) -> list[tuple[str, RequestSpec]]:
        return []


@dataclass(frozen=True, slots=True)
class MixItem:
    request: RequestSpec = field(metadata={"build": _request})
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Limits a load phase must stay within; None: no limit."""

    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    error_rate: float | None = None
    min_rps: float | None = None


@dataclass(frozen=True, slots=True)
class Load:
    """A load phase: ``concurrency`` in flight (closed) or ``rate`` a second (open)."""

    KIND: ClassVar[str] = "load"
    duration: float
    mix: tuple[MixItem, ...] = field(metadata={"build": lambda items: tuple(build(MixItem, i) for i in items)})
    concurrency: int | None = None
    rate: float | None = None
    max_requests: int | None = None  # None: no limit
    thresholds: Thresholds = field(metadata={"build": lambda data: build(Thresholds, data)},
                                   default_factory=Thresholds)

    def requests(self) -> list[tuple[str, RequestSpec]]:
        return [(f"load.mix[{j}].request", item.request) for j, item in enumerate(self.mix)]


Action = RequestSpec | Burst | Poll | Pause | Load
KINDS: dict[str, type[Action]] = {c.KIND: c for c in (RequestSpec, Burst, Poll, Pause, Load)}


def build_action(kind: str, value: Any) -> Action:
    """The typed kind of a step from its YAML value."""
    if kind == "pause":
        return Pause(float(value))
    if kind == "burst" and "spacing" in value and "release" not in value:
        value = {**value, "release": "none"}  # spaced copies carry no synchronisation
    return build(KINDS[kind], value)


@dataclass(frozen=True, slots=True)
class Step:
    """One step: its kind (``action``) and what is checked and saved after it."""

    index: int = field(metadata={"yaml": False})
    line: int = field(metadata={"yaml": False})
    name: str
    action: Action = field(metadata={"yaml": False})  # under one of the KINDS keys
    expect: Expect = field(metadata={"build": lambda data: build(Expect, data)}, default_factory=Expect)
    save: Mapping[str, SaveRule] = field(
        metadata={"build": lambda data: {k: build(SaveRule, v) for k, v in data.items()}}, default_factory=dict)
    retry: Retry | None = field(metadata={"build": lambda data: build(Retry, data)}, default=None)

    @property
    def kind(self) -> str:
        return self.action.KIND


@dataclass(frozen=True, slots=True)
class Auth:
    token_env: str | None = None  # None: a fake token carrying `scopes`
    scopes: str = READ_WRITE


def build_step(index: int, line: int, data: Mapping[str, Any]) -> Step:
    """A step from its checked YAML mapping (which holds exactly one of the ``KINDS``)."""
    kind = next(k for k in KINDS if k in data)
    parts = {f.name: f.metadata["build"](data[key]) for key, f in yaml_keys(Step).items()
             if key in data and "build" in f.metadata}
    return Step(index=index, line=line, name=data.get("name") or f"{kind} {index + 1}",
                action=build_action(kind, data[kind]), **parts)


# The parts whose defaults the docs list, under the name a reader looks for.
DOCUMENTED = (("auth", Auth), ("request", RequestSpec), ("burst", Burst), ("poll", Poll),
              ("retry", Retry), ("load", Load), ("load.mix[]", MixItem), ("save.NAME", SaveRule))


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, tuple):
        return f"`[{', '.join(map(str, value))}]`"
    if isinstance(value, float):
        return f"{value:g}"
    return f"`{value}`" if isinstance(value, str) else str(value)


def stated_default(f: dataclasses.Field[Any]) -> Any:
    """The default of a field that says something (dataclasses.MISSING when the default
    means "not given": None, nothing, false, empty text or an empty part)."""
    value = default(f)
    if value is None or value is ABSENT or value is False or value in ((), {}, "") or dataclasses.is_dataclass(value):
        return dataclasses.MISSING
    return value


def defaults_table() -> str:
    """The Markdown table of every stated default (docs/scenarios.md holds it, tested)."""
    rows = ["| key | default |", "|---|---|"]
    for where, cls in DOCUMENTED:
        for key, f in yaml_keys(cls).items():
            value = stated_default(f)
            if value is not dataclasses.MISSING:
                rows.append(f"| `{where}.{key}` | {_shown(value)} |")
    return "\n".join(rows) + "\n"
