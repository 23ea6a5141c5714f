"""What the HAR conversions share: the extension field, the bounds, the import's extra
redaction, and the error that names the file, the entry and the fix."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from exportjobs.addons.redaction import Redactor

EXTENSION = "_exportjobs"  # the entry field that carries what HAR has no field for
# A HAR is read whole (JSON has no cheap streaming reader here): this bounds memory, about
# ten times the file's size at peak. Larger files need --max-size.
MAX_HAR_BYTES = 100 * 1024 * 1024
# The interaction numbers an imported entry lists as overlapping it in time, at most, found
# among the entries that started just before it (a HAR from elsewhere; one from ``har
# export`` carries the recorded lists whole).
MAX_CONCURRENT = 100

# Credentials that HARs carry besides the headers every recording redacts (Dev Proxy's own
# list of sensitive headers, and OAuth's names in queries and JSON): redacted on import.
IMPORT_HEADERS = frozenset({
    "x-api-key", "x-auth-token", "x-csrf-token", "x-xsrf-token", "x-session-token",
    "www-authenticate", "proxy-authenticate",
})
IMPORT_QUERY = frozenset({"access_token", "id_token", "refresh_token", "token", "code",
                          "client_secret", "api_key", "apikey", "sig", "signature"})
IMPORT_JSON = frozenset({"access_token", "id_token", "refresh_token", "client_secret",
                         "password", "token"})


def import_redactor(headers: Iterable[str] = (), query: Iterable[str] = (),
                    json_fields: Iterable[str] = ()) -> Redactor:
    """What an import redacts: the recorder's redaction (its defaults and the same flags)
    plus the credentials HARs from browsers and other proxies carry elsewhere."""
    return Redactor.configured([*IMPORT_HEADERS, *headers], [*IMPORT_QUERY, *query],
                               [*IMPORT_JSON, *json_fields])


class HarError(Exception):
    """A HAR (or a cassette to export) that cannot be used: names the file, where, what to do."""

    def __init__(self, path: str | os.PathLike[str], where: str, problem: str, hint: str) -> None:
        at = f", {where}" if where else ""
        super().__init__(f"HAR {os.fspath(path)}{at}: {problem}; {hint}")

def parse_time(text: str) -> float:
    """An ISO 8601 time as a POSIX time; one without a zone (Dev Proxy writes those) is UTC.
    Graph's seven fraction digits are cut to the six Python reads."""
    text = text.strip().replace("Z", "+00:00").replace("z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        rest = rest[:min(digits, 6)] + rest[digits:]
        text = f"{head}.{rest}" if digits else head + rest
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()

def finite(value: Any) -> bool:
    """A JSON number that is a number (Python's JSON reader also takes NaN and Infinity)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)

def number(value: Any) -> float:
    return float(value) if finite(value) else 0.0
