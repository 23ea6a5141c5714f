"""Redaction: secrets are replaced by a fixed placeholder before anything touches disk.

The addon redacts every request and response it writes down, and the matcher redacts live
requests the same way, so a request carrying a new secret still matches its recording.
Header, query-parameter and JSON-field names compare case-insensitively.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

PLACEHOLDER = "REDACTED"

# Always redacted, whatever the user configures.
ALWAYS_HEADERS = frozenset({"authorization", "cookie", "set-cookie", "proxy-authorization"})


def _lower(names: Iterable[str]) -> frozenset[str]:
    return frozenset(n.strip().lower() for n in names if n.strip())


@dataclass(frozen=True, slots=True)
class Redactor:
    """Which header, query-parameter and JSON-field values to replace by ``PLACEHOLDER``."""

    headers: frozenset[str] = ALWAYS_HEADERS
    query: frozenset[str] = frozenset()
    json_fields: frozenset[str] = frozenset()

    @classmethod
    def configured(
        cls,
        headers: Iterable[str] = (),
        query: Iterable[str] = (),
        json_fields: Iterable[str] = (),
    ) -> Redactor:
        return cls(ALWAYS_HEADERS | _lower(headers), _lower(query), _lower(json_fields))

    def header_pairs(self, pairs: Iterable[tuple[str, str]]) -> list[list[str]]:
        return [
            [name, PLACEHOLDER if name.lower() in self.headers else value] for name, value in pairs
        ]

    def query_pairs(self, pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        return [(k, PLACEHOLDER if k.lower() in self.query else v) for k, v in pairs]

    def query_string(self, query: str) -> str:
        """``a=1&secret=x`` with configured parameters redacted (unchanged when none match)."""
        if not query or not self.query:
            return query
        pairs = parse_qsl(query, keep_blank_values=True)
        if not any(k.lower() in self.query for k, _ in pairs):
            return query
        return urlencode(self.query_pairs(pairs), safe="$,'():@/")

    def json(self, data: Any) -> Any:
        """A copy of ``data`` with configured fields replaced at any depth."""
        if not self.json_fields:
            return data
        if isinstance(data, dict):
            return {
                k: PLACEHOLDER if k.lower() in self.json_fields else self.json(v)
                for k, v in data.items()
            }
        if isinstance(data, list):
            return [self.json(v) for v in data]
        return data
