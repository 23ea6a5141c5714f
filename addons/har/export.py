"""Cassette -> HAR: each interaction as a mitmproxy flow, written by ``SaveHar.flow_entry``."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from mitmproxy import connection, http
from mitmproxy.addons.savehar import SaveHar

from exportjobs.addons.cassette import (
    Cassette,
    body_bytes,
)
from exportjobs.addons.har.common import EXTENSION, number, parse_time
from exportjobs.addons.redaction import PLACEHOLDER, Redactor


def _timestamp(created: Any) -> float:
    """The cassette header's ``created`` as a POSIX time (now, for one that does not parse)."""
    if isinstance(created, str):
        try:
            return parse_time(created)
        except ValueError:
            pass
    return datetime.now(UTC).timestamp()








def interaction_flow(item: dict[str, Any], created: float, redactor: Redactor) -> http.HTTPFlow:
    """A loaded cassette interaction as a mitmproxy flow (headers exactly as stored, bodies
    as replay sends them), timed from ``created`` as it was recorded."""
    request, response = item["request"], item["response"]
    start = created + max(number(item.get("started")), 0.0)
    end = start + max(number(item.get("duration")), 0.0)
    client = connection.Client(peername=("127.0.0.1", 0), sockname=("127.0.0.1", 0),
                               timestamp_start=start)
    flow = http.HTTPFlow(client, connection.Server(address=None))
    req = http.Request.make(request["method"], request["url"])
    req.headers = http.Headers([(k.encode(), v.encode()) for k, v in
                                redactor.header_pairs(request.get("headers", []))])
    req.raw_content = body_bytes(request)
    req.timestamp_start = req.timestamp_end = start
    res = http.Response.make(response["status"])
    res.headers = http.Headers([(k.encode(), v.encode()) for k, v in
                                redactor.header_pairs(response.get("headers", []))])
    res.raw_content = body_bytes(response)
    res.timestamp_start = res.timestamp_end = end
    flow.request, flow.response = req, res
    return flow


def _utf8(text: Any) -> bool:
    """Whether ``text`` can be written as UTF-8 (mitmproxy escapes undecodable bytes)."""
    try:
        str(text).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def har_entries(cassette: Cassette) -> Iterator[dict[str, Any]]:
    """The cassette's interactions as HAR entries, in arrival order, one at a time.

    Entries are mitmproxy's (``SaveHar.flow_entry``); each also keeps the request URL as
    recorded and, under ``_exportjobs``, what the cassette records beyond HTTP. Nothing is
    added that the cassette does not hold: no address, no cookie (a cookie header is
    redacted again, should a hand edit have put one back)."""
    created = _timestamp(cassette.header.get("created"))
    redactor = Redactor()
    saver = SaveHar()
    ordered = sorted(range(len(cassette.interactions)),
                     key=lambda n: (cassette.interactions[n].get("interaction", 0), n))
    for n in ordered:
        item = cassette.interactions[n]
        flow = interaction_flow(item, created, redactor)
        entry = saver.flow_entry(flow, set())
        entry["request"]["url"] = item["request"]["url"]
        _text_safe(entry, flow)
        _tidy(entry)
        extra = {k: v for k, v in item.items() if k not in ("request", "response")}
        if extra:
            entry[EXTENSION] = extra
        if "injected" in item:
            entry["comment"] = "made up by an exportjobs fault plan; replay never serves it"
        yield entry


def _log(tool: str) -> dict[str, Any]:
    return {"version": "1.2", "creator": {"name": "exportjobs", "version": tool, "comment": ""},
            "pages": []}


def cassette_to_har(cassette: Cassette, tool: str) -> dict[str, Any]:
    """The cassette as a HAR 1.2 document (held whole: ``har_chunks`` streams it)."""
    return {"log": {**_log(tool), "entries": list(har_entries(cassette))}}


def har_chunks(cassette: Cassette, tool: str) -> Iterator[bytes]:
    """The HAR document of ``cassette`` as UTF-8 JSON, an entry at a time, so that memory
    holds the loaded cassette and one entry, whatever the HAR's size."""
    head = json.dumps({"log": _log(tool)}, indent=2, ensure_ascii=False)
    yield head[:head.rindex("}", 0, head.rindex("}"))].rstrip().encode() + b',\n    "entries": ['
    for n, entry in enumerate(har_entries(cassette)):
        text = json.dumps(entry, indent=2, ensure_ascii=False).replace("\n", "\n      ")
        yield ("," if n else "").encode() + b"\n      " + text.encode("utf-8")
    yield b"\n    ]\n  }\n}\n"


def _text_safe(entry: dict[str, Any], flow: http.HTTPFlow) -> None:
    """Bodies that are not text (mitmproxy keeps them as text with escapes) as base64."""
    assert flow.response is not None
    content = entry["response"]["content"]
    if not _utf8(content.get("text", "")):
        content["text"] = base64.b64encode(flow.response.raw_content or b"").decode()
        content["encoding"] = "base64"
    post = entry["request"].get("postData")
    if post is not None and not _utf8(post.get("text", "")):
        post["text"] = base64.b64encode(flow.request.raw_content or b"").decode()
        post["encoding"] = "base64"  # HAR 1.3's field; 1.2 has none for request bodies


def _tidy(entry: dict[str, Any]) -> None:
    """No cookie parsed out of a redacted header (it would read as a cookie named REDACTED),
    and times in whole microseconds rather than float noise."""
    for side, header in (("request", "cookie"), ("response", "set-cookie")):
        values = [h["value"] for h in entry[side]["headers"] if h["name"].lower() == header]
        if values and all(v == PLACEHOLDER for v in values):
            entry[side]["cookies"] = []
    entry["time"] = round(entry["time"], 3)
    entry["timings"] = {k: v if v is None else round(v, 3) for k, v in entry["timings"].items()}
