"""The one console line per exportJobs exchange.

``REC    POST /beta/employeeExperience/goals/exportJobs 201 job=eyJf... notStarted 4.2ms``.
Only the method, the path without its query, the status and facts from the response body
are printed: never headers, so never a token or a cookie.
"""

from __future__ import annotations

import logging
from typing import Any

try:  # mitmproxy 9+: hands every log record to every addon as the deprecated add_log event
    from mitmproxy.log import LegacyLogEvents as _FAN_OUT
except ImportError:  # pragma: no cover - an older or no mitmproxy
    _FAN_OUT = ()  # type: ignore[assignment,misc]


def shown(logger: logging.Logger, level: int) -> bool:
    """Whether a record at ``level`` from ``logger`` reaches a handler that shows it.

    mitmproxy installs a handler that formats every record and fans it out to every addon
    as the deprecated ``add_log`` event, whatever the console shows; under ``mitmdump -q``
    nothing else takes an INFO line. The addon builds and logs its line only when some other
    handler would take it (mitmdump's terminal, the event log of mitmproxy and mitmweb, the
    CLI's, a test's capture), which saves that work on every exchange.
    """
    if not logger.isEnabledFor(level):
        return False
    current: logging.Logger | None = logger
    found = False
    while current is not None:
        for handler in current.handlers:
            found = True
            if level >= handler.level and not isinstance(handler, _FAN_OUT):
                return True
        if not current.propagate:
            break
        current = current.parent
    # No handler anywhere: logging falls back to lastResort (stderr, warnings and up).
    last = logging.lastResort
    return not found and last is not None and level >= last.level


def job_facts(body: Any) -> str:
    """``job=ID STATUS`` (or ``jobs=N``, or an error code) from a Graph response body."""
    if not isinstance(body, dict):
        return ""
    error = body.get("error")
    if isinstance(error, dict):
        facts = str(error.get("code", "error"))
        if isinstance(error.get("target"), str):
            facts += f" job={error['target']}"
        return facts
    value = body.get("value")
    if isinstance(value, list):
        return f"jobs={len(value)}"
    job = value if isinstance(value, dict) else body
    parts = []
    if isinstance(job.get("id"), str):
        parts.append(f"job={job['id']}")
    if isinstance(job.get("status"), str):
        parts.append(str(job["status"]))
    return " ".join(parts)


def exchange_line(tag: str, method: str, path: str, status: int | str, body: Any,
                  seconds: float, note: str = "") -> str:
    words = [f"{tag:<6}", method, path.partition("?")[0], str(status)]
    facts = job_facts(body)
    if facts:
        words.append(facts)
    words.append(f"{seconds * 1000:.1f}ms")
    if note:
        words.append(f"({note})")
    return " ".join(words)
