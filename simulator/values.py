"""Scenario values: ``${name}`` interpolation, generated variables, ``Retry-After``, and JSON paths.

A generated variable (``{generate: guid}``) is drawn once per run by default. With
``per: request`` it is a ``PerRequest`` value instead, drawn anew for every request built
from it (each copy in a burst, each request of a load phase): one draw per request, so a
request that uses ``${id}`` twice sends the same value twice. Generators: ``guid`` and
``GUID`` (a fresh GUID), ``counter`` (``start``, ``start + 1``, ...) and ``choice`` (one of
``from``, at random).

A JSON path is dotted, with numeric segments indexing lists and brackets for keys that
contain dots: ``error.target``, ``value.0.id``, ``value['@odata.type']``.
"""

from __future__ import annotations

import dataclasses
import datetime
import email.utils
import itertools
import random
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SEGMENT = re.compile(r"\[(?:'([^']*)'|\"([^\"]*)\")\]|([^.\[\]]+)")

MISSING = object()


def _counter(spec: Mapping[str, Any]) -> Callable[[], Any]:
    numbers = itertools.count(int(spec.get("start", 1)))
    return lambda: next(numbers)


def _choice(spec: Mapping[str, Any]) -> Callable[[], Any]:
    options, rng = list(spec["from"]), random.Random()
    return lambda: rng.choice(options)


# Each makes a draw function from the variable's spec (``{generate: NAME, ...}``).
GENERATORS: dict[str, Callable[[Mapping[str, Any]], Callable[[], Any]]] = {
    "guid": lambda spec: lambda: str(uuid.uuid4()),
    "GUID": lambda spec: lambda: str(uuid.uuid4()).upper(),
    "counter": _counter,
    "choice": _choice,
}


class PerRequest:
    """A variable drawn anew for each request (``per: request``)."""

    __slots__ = ("_draw", "spec")

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.spec = dict(spec)
        self._draw = GENERATORS[spec["generate"]](spec)

    def draw(self) -> Any:
        return self._draw()

    def sample(self) -> Any:
        """A value of the kind it draws, without advancing it (to check a request can be built)."""
        return GENERATORS[self.spec["generate"]](self.spec)()

    def __repr__(self) -> str:
        return f"PerRequest({self.spec!r})"


def generated(spec: Mapping[str, Any]) -> Any:
    """The value of a ``{generate: ...}`` variable for a run: drawn now, or a ``PerRequest``."""
    if spec.get("per", "run") == "request":
        return PerRequest(spec)
    return GENERATORS[spec["generate"]](spec)()


def draw(variables: Mapping[str, Any]) -> dict[str, Any]:
    """``variables`` for one request: every ``PerRequest`` replaced by a fresh draw."""
    return {k: v.draw() if isinstance(v, PerRequest) else v for k, v in variables.items()}


def sample(variables: Mapping[str, Any]) -> dict[str, Any]:
    """``variables`` with every ``PerRequest`` replaced by a sample that advances nothing."""
    return {k: v.sample() if isinstance(v, PerRequest) else v for k, v in variables.items()}


def per_request(value: Any, variables: Mapping[str, Any]) -> bool:
    """Whether ``value`` uses a variable drawn per request."""
    return any(isinstance(variables.get(n), PerRequest) for n in references(value))


def _value(value: Any) -> Any:
    return value.draw() if isinstance(value, PerRequest) else value


def retry_after_seconds(raw: str | None, *, date: str | None = None, now: float | None = None) -> float | None:
    """The wait a ``Retry-After`` header asks for, in seconds, in either of its forms:
    delay-seconds (``120``) or an HTTP-date (``Wed, 21 Oct 2015 07:28:00 GMT``), counted
    from the response's own ``Date`` when it has one (so a skewed local clock does not
    change the wait), else from ``now``. None when absent or neither form."""
    if raw is None:
        return None
    text = raw.strip()
    if text.isdigit():
        return float(text)
    try:
        seconds = float(text)  # not the RFC's form, but unambiguous: "1.5"
        return max(0.0, seconds) if seconds == seconds and seconds != float("inf") else None
    except ValueError:
        pass
    when = _http_date(text)
    if when is None:
        return None
    base = _http_date(date) if date else None
    if base is None:
        base = time.time() if now is None else now
    return max(0.0, when - base)


def _http_date(text: str) -> float | None:
    try:
        parsed = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:  # HTTP-dates are GMT
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.timestamp()


def references(value: Any) -> set[str]:
    """Every ``${name}`` used anywhere inside ``value`` (strings, lists, mappings, and the
    fields of a scenario's typed parts)."""
    found: set[str] = set()
    if isinstance(value, str):
        found.update(_REF.findall(value))
    elif isinstance(value, Mapping):
        for k, v in value.items():
            found |= references(k) | references(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            found |= references(v)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            found |= references(getattr(value, f.name))
    return found


def interpolate(value: Any, variables: Mapping[str, Any]) -> Any:
    """``value`` with every ``${name}`` replaced. A string that is exactly one reference
    takes the variable's own type, so ``count: ${n}`` can stay a number."""
    if isinstance(value, str):
        whole = _REF.fullmatch(value)
        if whole:
            return _value(variables[whole[1]])
        return _REF.sub(lambda m: str(_value(variables[m[1]])), value)
    if isinstance(value, Mapping):
        return {interpolate(k, variables): interpolate(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, variables) for v in value]
    return value


def parse_path(path: str) -> list[str | int]:
    """Split a JSON path into keys and list indices; raise ValueError when malformed."""
    segments: list[str | int] = []
    pos = 0
    while pos < len(path):
        if path[pos] == "." and segments:
            pos += 1
        m = _SEGMENT.match(path, pos)
        if m is None:
            raise ValueError(f"malformed JSON path {path!r} at character {pos + 1}")
        quoted = m[1] if m[1] is not None else m[2]
        if quoted is not None:
            segments.append(quoted)
        else:
            segments.append(int(m[3]) if m[3].isdigit() else m[3])
        pos = m.end()
    if not segments:
        raise ValueError("empty JSON path")
    return segments


def get_path(document: Any, path: str | Iterable[str | int]) -> Any:
    """The value at ``path`` in ``document``, or ``MISSING``."""
    segments = parse_path(path) if isinstance(path, str) else path
    node = document
    for seg in segments:
        if isinstance(seg, int) and isinstance(node, list):
            if not -len(node) <= seg < len(node):
                return MISSING
            node = node[seg]
        elif isinstance(node, dict) and str(seg) in node:
            node = node[str(seg)]
        else:
            return MISSING
    return node


def shown_url(url: str | None) -> str | None:
    """``url`` fit to print or write down: any user:password in it is replaced."""
    if not url or "@" not in url:
        return url
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = "REDACTED@" + authority.rpartition("@")[2]
    return f"{scheme}{sep}{authority}{slash}{path}"
