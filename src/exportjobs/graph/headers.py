"""The volatile headers every Graph response carries, built in one place.

Graph answers each request with a new ``request-id``, echoes the client's
``client-request-id`` (or repeats the request-id when the client sent none) and stamps
``Date``. The proxy's answers (replayed recordings, misses, injected faults, its own
errors) carry the same three, so a client cannot tell who answered by its headers.
The standard library only: plain ``(name, value)`` pairs any HTTP library can send.
"""

from __future__ import annotations

import time
from email.utils import formatdate

from exportjobs.graph.errors import error_json
from exportjobs.graph.ids import new_request_id
from exportjobs.graph.media import ERROR_CONTENT_TYPE

REQUEST_ID = "request-id"
CLIENT_REQUEST_ID = "client-request-id"
DATE = "Date"
# Lower-cased, for filtering recorded headers before fresh ones are added.
VOLATILE = frozenset({REQUEST_ID, CLIENT_REQUEST_ID, DATE.lower()})

# The Date header's text for the current second: consecutive answers mostly share it.
_date: tuple[int, str] = (0, "")


def http_date() -> str:
    """Now, as an HTTP ``Date`` value (IMF-fixdate)."""
    global _date
    second = int(time.time())
    if _date[0] != second:
        _date = (second, formatdate(second, usegmt=True))
    return _date[1]


def volatile_headers(client_request_id: str | None) -> list[tuple[str, str]]:
    """``request-id`` (new), ``client-request-id`` (the client's, else the request-id) and
    ``Date`` (now), in that order: ``[0][1]`` and ``[1][1]`` are the ids an error body
    repeats."""
    request_id = new_request_id()
    return [
        (REQUEST_ID, request_id),
        (CLIENT_REQUEST_ID, client_request_id or request_id),
        (DATE, http_date()),
    ]


def error_answer(code: str, message: str, inner_code: str,
                 client_request_id: str | None) -> tuple[list[tuple[str, str]], bytes]:
    """The headers and body of a Graph error: the volatile headers, the error body repeating
    their ids, and the one Content-Type every error carries (``graph.media``), whoever
    produced it."""
    headers = volatile_headers(client_request_id)
    body = error_json(code, message, inner_code=inner_code, request_id=headers[0][1],
                      client_request_id=headers[1][1])
    headers.append(("Content-Type", ERROR_CONTENT_TYPE))
    return headers, body


__all__ = ["CLIENT_REQUEST_ID", "DATE", "ERROR_CONTENT_TYPE", "REQUEST_ID", "VOLATILE", "error_answer", "http_date", "volatile_headers"]
