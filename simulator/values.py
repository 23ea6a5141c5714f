"""Scenario values: ``${name}`` interpolation, generated variables, and JSON paths.

A JSON path is dotted, with numeric segments indexing lists and brackets for keys that
contain dots: ``error.target``, ``value.0.id``, ``value['@odata.type']``.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SEGMENT = re.compile(r"\[(?:'([^']*)'|\"([^\"]*)\")\]|([^.\[\]]+)")

MISSING = object()

GENERATORS: dict[str, Callable[[], str]] = {
    "guid": lambda: str(uuid.uuid4()),
    "GUID": lambda: str(uuid.uuid4()).upper(),
}


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
            return variables[whole[1]]
        return _REF.sub(lambda m: str(variables[m[1]]), value)
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
