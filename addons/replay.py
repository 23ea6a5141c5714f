"""Replay answers: recorded responses made live again, and the Graph error for a miss.

Volatile headers are refreshed (``request-id`` new, ``client-request-id`` echoed, ``Date``
now) and hop-by-hop ones (``Connection`` and kin) dropped; an error body's ``innerError``
repeats the fresh ids and date, as Graph's own errors do; everything else is served as
recorded. A miss never reaches the network: it gets a Graph error naming the cassette,
built like every Graph error the proxy sends (``exportjobs.graph.headers``).
"""

from __future__ import annotations

import copy
import json
import time
from email.utils import parsedate_to_datetime
from typing import Any

from mitmproxy import http
from mitmproxy.net.http import status_codes
from mitmproxy.utils.strutils import always_bytes

from exportjobs.addons.cassette import body_bytes
from exportjobs.addons.matching import Take
from exportjobs.addons.redaction import PLACEHOLDER
from exportjobs.graph.headers import CLIENT_REQUEST_ID, VOLATILE, error_answer, volatile_headers

MISS_STATUS = 404
_REFRESHED = VOLATILE | {"content-length", "transfer-encoding", "content-encoding"}
# Hop-by-hop headers describe the recorded connection, not the live one: a recorded
# "Connection: close" replayed would make every client reconnect after every response.
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "te", "trailer",
                         "upgrade"})
_NOT_REPLAYED = _REFRESHED | _HOP_BY_HOP
REPLAY_HEADER = "x-exportjobs-replay"
REPLAY_HEADER_BYTES = REPLAY_HEADER.encode()


def graph_headers(request: http.Request) -> list[tuple[str, str]]:
    """The volatile Graph headers (``exportjobs.graph.headers``) for an answer to ``request``."""
    return volatile_headers(request.headers.get(CLIENT_REQUEST_ID))


def graph_error(request: http.Request, status: int, code: str, message: str, inner_code: str,
                *extra: tuple[str, str]) -> http.Response:
    """A Graph error answering ``request``: volatile headers, error body, Content-Type,
    then ``extra`` headers."""
    headers, body = error_answer(code, message, inner_code, request.headers.get(CLIENT_REQUEST_ID))
    headers.extend(extra)
    return make_response(status, headers, body, request)


def _encoded(headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    """Header fields encoded as ``Headers.add`` encodes them."""
    return [(always_bytes(name, "utf-8", "surrogateescape"),
             always_bytes(value, "utf-8", "surrogateescape")) for name, value in headers]


# A Response checked once by Response.make. Every answer is a shallow copy of it with its
# own data: Response.make's type checks cost more than all the rest of a replay, and every
# field set below is built here with the type mitmproxy expects.
_BLANK = http.Response.make(200)


def make_response(status: int, headers: list[tuple[str, str]], body: bytes, request: http.Request) -> http.Response:
    """A response to ``request``: ``headers`` as given, then ``content-length``."""
    return _response(status, status_codes.RESPONSES.get(status, "").encode(), _encoded(headers),
                     body, request)


def _response(status: int, reason: bytes, fields: list[tuple[bytes, bytes]], body: bytes,
              request: http.Request) -> http.Response:
    """A response to ``request`` with the encoded header ``fields``, then ``content-length``."""
    response = copy.copy(_BLANK)
    response.data = data = copy.copy(_BLANK.data)
    data.status_code = status
    data.reason = reason
    fields.append((b"content-length", b"%d" % len(body)))
    data.headers = http.Headers(fields)
    data.content = body
    data.http_version = request.data.http_version
    data.timestamp_start, data.timestamp_end = time.time(), None
    return response


def _marker(take: Take) -> str:
    """The replay header's value: ``hit 3/10`` is the third of ten recorded responses."""
    return f"{take.outcome.value} {take.position}/{take.recorded}"


class Prepared:
    """What replay makes of a recorded response once, not per answer: its status line, the
    header fields it sends as recorded (encoded), and its body unless the body names the
    answer's own ids (``body`` None: ``_body`` builds it per answer)."""

    __slots__ = ("body", "fields", "reason", "status")

    def __init__(self, stored: dict[str, Any]) -> None:
        self.status = int(stored["status"])
        self.reason = status_codes.RESPONSES.get(self.status, "").encode()
        self.fields = _encoded([
            (str(name), str(value)) for name, value in stored.get("headers", [])
            if str(name).lower() not in _NOT_REPLAYED and value != PLACEHOLDER
        ])
        self.body = None if _inner_error(stored) else body_bytes(stored)


def recorded_response(take: Take, request: http.Request,
                      prepared: dict[int, Prepared] | None = None) -> http.Response:
    """The recorded response of ``take`` (a HIT or REPEAT), with volatile headers refreshed.
    ``prepared`` (``ReplayIndex.answers``) keeps what is the same in every answer, by id()
    of the recorded response; it must only hold responses of interactions still alive."""
    assert take.interaction is not None
    stored = take.interaction["response"]
    ready = prepared.get(id(stored)) if prepared is not None else None
    if ready is None:
        ready = Prepared(stored)
        if prepared is not None:
            prepared[id(stored)] = ready
    fresh = graph_headers(request)
    fields = [*ready.fields, *_encoded(fresh), (REPLAY_HEADER_BYTES, _marker(take).encode())]
    body = ready.body if ready.body is not None else _body(stored, fresh)
    return _response(ready.status, ready.reason, fields, body, request)


_INNER_KEYS = ("innerError", "innererror")  # Graph's spelling, and the docs' 409 example's


def _inner_error(stored: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], str] | None:
    """A stored JSON error body's data, its ``error`` and the key of its ``innerError``
    mapping, if it has one (then each answer's body names the answer's own ids)."""
    data = stored.get("json")
    if not isinstance(data, dict) or not isinstance(error := data.get("error"), dict):
        return None
    key = next((k for k in _INNER_KEYS if k in error), None)
    if key is None or not isinstance(error[key], dict):
        return None
    return data, error, key


def _body(stored: dict[str, Any], fresh: list[tuple[str, str]]) -> bytes:
    """The recorded body, except that a JSON error's ``innerError`` names this answer's own
    ``request-id``, ``client-request-id`` and date (``fresh``, from ``volatile_headers``), as a
    live Graph error does; only keys the recording has are set. Other bodies are untouched
    (one dict lookup on the way)."""
    found = _inner_error(stored)
    if found is None:
        return body_bytes(stored)
    data, error, key = found
    inner = dict(error[key])
    ids = {"request-id": fresh[0][1], "client-request-id": fresh[1][1]}
    for name, value in ids.items():
        if name in inner:
            inner[name] = value
    if "date" in inner:
        inner["date"] = parsedate_to_datetime(fresh[2][1]).strftime("%Y-%m-%dT%H:%M:%S")
    return body_bytes({"json": {**data, "error": {**error, key: inner}}})


def not_recorded_response(take: Take, request: http.Request, cassette: str,
                          diagnosis: str = "") -> http.Response:
    """The Graph error for a MISS or an EXHAUSTED sequence (policy ``error``); a MISS names
    the nearest recordings and what differs (``diagnosis``, from ``matching.explain_miss``)."""
    target = f"{request.method} {request.path.partition('?')[0]}"
    if take.interaction is None and take.recorded == 0:
        code, inner = "notRecorded", "exportJobsCassetteMiss"
        message = (f"Not recorded: cassette '{cassette}' has no interaction matching {target}; "
                   "record it first (exportjobs proxy --mode record)."
                   + (f" {diagnosis[:1].upper()}{diagnosis[1:]}."
                      if diagnosis else ""))
    else:
        code, inner = "notRecorded", "exportJobsCassetteExhausted"
        message = (f"Not recorded: cassette '{cassette}' holds {take.recorded} response(s) for "
                   f"{target} and all were replayed (miss policy 'error').")
    return graph_error(request, MISS_STATUS, code, message, inner, (REPLAY_HEADER, _marker(take)))


def response_json(response: http.Response | None) -> Any:
    """The JSON body of a response, or None (for the console line)."""
    if response is None or "json" not in response.headers.get("content-type", ""):
        return None
    try:
        return json.loads(response.get_content(strict=False) or b"null")
    except ValueError:
        return None


def replay_failed_response(request: http.Request, cassette: str, exc: BaseException) -> http.Response:
    """The Graph error when a matching recording cannot be sent; replay never falls back to
    the network."""
    return graph_error(request, 502, "notRecorded",
                       f"Cassette '{cassette}' has a recording for {request.method} "
                       f"{request.path.partition('?')[0]} that cannot be replayed ({exc}); "
                       "re-record it.", "exportJobsCassetteUnusable")


PROXY_ERROR_HEADER = "x-exportjobs-proxy-error"


def proxy_error_response(request: http.Request, status: int, code: str, message: str) -> http.Response:
    """A Graph error the proxy itself answers with when it cannot, or must not, let a flow
    go on (an addon failed, the upstream is down, the proxy is stopping): the same shape,
    headers and ids as every other answer, marked so the proxy knows its own."""
    return graph_error(request, status, code, message, f"exportJobsProxy{status}",
                       (PROXY_ERROR_HEADER, code))
