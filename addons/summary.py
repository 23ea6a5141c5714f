"""The one console line per exportJobs exchange.

``REC    POST /beta/employeeExperience/goals/exportJobs 201 job=eyJf... notStarted 4.2ms``.
Only the method, the path without its query, the status and facts from the response body
are printed: never headers, so never a token or a cookie.
"""

from __future__ import annotations

from typing import Any


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
