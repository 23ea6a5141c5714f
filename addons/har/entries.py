"""HAR entries -> interactions: each entry checked field by field, kept only if it is
exportJobs traffic, then recorded as the recorder records a live flow (redacted)."""

from __future__ import annotations

import base64
import binascii
import bisect
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from mitmproxy import http
from mitmproxy.io.har import request_to_flow

from exportjobs.addons.cassette import (
    body_bytes,
    request_doc,
    response_doc,
)
from exportjobs.addons.har.common import EXTENSION, MAX_CONCURRENT, HarError, finite, number, parse_time
from exportjobs.addons.redaction import Redactor
from exportjobs.addons.scope import Scope
from exportjobs.addons.traffic import classify

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # an HTTP header name (RFC 9110)

# Not stored (the cassette keeps bodies decoded, as the recorder does); dropped before
# mitmproxy's reader would encode the body again for them.
_BODY_FRAMING = frozenset({"content-encoding", "content-length", "transfer-encoding"})



@dataclass
class Imported:
    """What an import made of a HAR: the interactions to write, how many entries were not
    exportJobs traffic, notes for the user, and the redactions that change a request's key."""

    interactions: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0
    notes: list[str] = field(default_factory=list)
    replay_query: set[str] = field(default_factory=set)
    replay_json: set[str] = field(default_factory=set)
    started: float = 0.0
    creator: str = ""


class _Fields:
    """Reading one entry's fields, each mistake named by its path (``entries[3].request.url``)."""

    def __init__(self, path: Path, index: int) -> None:
        self.path, self.index = path, index

    def fail(self, where: str, problem: str, hint: str = "fix or remove that entry") -> HarError:
        return HarError(self.path, f"entries[{self.index}]{where}", problem, hint)

    def mapping(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, "is missing or not an object")
        return value

    def text(self, value: Any, where: str) -> str:
        if not isinstance(value, str):
            raise self.fail(where, "is missing or not text")
        return value

    def headers(self, value: Any, where: str) -> list[tuple[str, str]]:
        """``[{name, value}]`` (browsers, Charles, Fiddler) or ``[[name, value]]`` (Slack),
        without HTTP/2's pseudo-headers (``:authority``), which are no headers on the wire."""
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(where, "is not a list")
        pairs: list[tuple[str, str]] = []
        for n, header in enumerate(value):
            if isinstance(header, dict):
                name, text = header.get("name"), header.get("value")
            elif isinstance(header, list) and len(header) == 2:
                name, text = header
            else:
                raise self.fail(f"{where}[{n}]", "is not a {name, value} header")
            if not isinstance(name, str) or not isinstance(text, str) or not name:
                raise self.fail(f"{where}[{n}]", "has a name or value that is not text")
            if name.startswith(":"):
                continue
            if not _TOKEN.match(name):
                raise self.fail(f"{where}[{n}].name", f"is not a header name: {name[:40]!r}")
            # Firefox joins repeated headers (Set-Cookie) with line breaks: one header each
            pairs.extend((name, line.strip("\r")) for line in text.split("\n"))
        return pairs


def _request_body(fields: _Fields, request: dict[str, Any]) -> str | bytes:
    post = request.get("postData")
    if post is None:
        return ""
    post = fields.mapping(post, ".request.postData")
    text = post.get("text")
    if text is None and isinstance(post.get("params"), list):  # a form given as params only
        params = [(p.get("name", ""), p.get("value", "")) for p in post["params"]
                  if isinstance(p, dict)]
        return urlencode([(str(k), str(v)) for k, v in params])
    text = fields.text(text, ".request.postData.text")
    return _decoded(fields, text, post.get("encoding"), ".request.postData")


def _decoded(fields: _Fields, text: str, encoding: Any, where: str) -> str | bytes:
    if encoding in (None, ""):
        return text
    if encoding != "base64":
        raise fields.fail(f"{where}.encoding", f"is {str(encoding)[:40]!r}; only base64 is read",
                          "export the HAR again with bodies as text or base64")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise fields.fail(f"{where}.text", "is not valid base64",
                          "export the HAR again; the body was cut or altered") from None


def _absolute(fields: _Fields, url: str) -> None:
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise fields.fail(".request.url", f"is not a URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise fields.fail(".request.url", f"is not an absolute http(s) URL: {url[:80]!r}")


def _request(fields: _Fields, entry: dict[str, Any]) -> tuple[str, str, list[tuple[str, str]]]:
    request = fields.mapping(entry.get("request"), ".request")
    method = fields.text(request.get("method"), ".request.method")
    if not method or not method.isascii() or not method.replace("-", "").isalnum():
        raise fields.fail(".request.method", f"is not an HTTP method: {method[:40]!r}")
    url = fields.text(request.get("url"), ".request.url")
    _absolute(fields, url)
    return method.upper(), url, fields.headers(request.get("headers"), ".request.headers")


def _normalized(fields: _Fields, entry: dict[str, Any], method: str, url: str,
                headers: list[tuple[str, str]], started: float) -> tuple[dict[str, Any], str]:
    """The entry as mitmproxy's reader needs it (every field it reads present and checked,
    response headers without body framing, bodies decoded), and a note for the user ("" for
    none)."""
    response = entry.get("response")
    if not isinstance(response, dict):
        raise fields.fail(".response", "is missing: the request got no response",
                          "remove that entry, or pass --skip-unanswered")
    status = response.get("status")
    if type(status) is not int or not 100 <= status <= 999:
        raise fields.fail(".response.status",
                          f"is {status!r}: the request got no response" if status in (0, -1, None)
                          else f"is {str(status)[:20]!r}, not an HTTP status from 100 to 999",
                          "remove that entry, or pass --skip-unanswered")
    res_headers = [(k, v) for k, v in fields.headers(response.get("headers"), ".response.headers")
                   if k.lower() not in _BODY_FRAMING]
    content = response.get("content")
    content = {} if content is None else fields.mapping(content, ".response.content")
    note = ""
    text = content.get("text")
    if text is None:
        text, size = "", content.get("size")
        if type(size) is int and size > 0:
            note = (f"entries[{fields.index}]: the HAR holds no response body ({size} bytes were "
                    "sent; save the HAR with content); imported with an empty body")
    body = _decoded(fields, fields.text(text, ".response.content.text"), content.get("encoding"),
                    ".response.content")
    request = entry["request"]
    normalized = {
        "startedDateTime": datetime.fromtimestamp(started, UTC).isoformat(),
        "time": max(number(entry.get("time")), 0.0),
        "request": {"method": method, "url": url, "headers": headers,
                    "httpVersion": str(request.get("httpVersion") or ""),
                    "postData": {"text": _request_body(fields, request)}},
        "response": {"status": status, "headers": res_headers,
                     "httpVersion": str(response.get("httpVersion") or ""),
                     "content": ({"text": base64.b64encode(body).decode(), "encoding": "base64"}
                                 if isinstance(body, bytes) else {"text": body})},
    }
    return normalized, note


def _entry_time(fields: _Fields, entry: dict[str, Any], default: float) -> float:
    started = entry.get("startedDateTime")
    if started is None:
        return default
    try:
        moment = parse_time(fields.text(started, ".startedDateTime"))
    except (ValueError, OverflowError):
        moment = -1.0
    if not 0 <= moment < 2 ** 35:  # 1970 to 3058
        raise fields.fail(".startedDateTime", f"is not an ISO 8601 time: {started[:40]!r}")
    return moment


def _extension(fields: _Fields, value: Any) -> dict[str, Any]:
    """What an ``_exportjobs`` field may carry back into a cassette: numbers and the fault
    marks, each of the type replay expects; anything else in it is left out."""
    if not isinstance(value, dict):
        return {}
    kept: dict[str, Any] = {}
    number = value.get("interaction")
    if type(number) is int and number > 0:
        kept["interaction"] = number
    for key in ("started", "duration", "injected_latency_ms"):
        if finite(value.get(key)):
            kept[key] = value[key]
    concurrent = value.get("concurrent")
    if isinstance(concurrent, list) and all(type(n) is int for n in concurrent):
        kept["concurrent"] = concurrent
    for key in ("injected", "lost"):
        mark = value.get(key)
        if isinstance(mark, dict):
            kept[key] = {k: v for k, v in mark.items()
                         if isinstance(k, str) and (v is None or isinstance(v, str) or finite(v))}
    return kept


def _lost_response(fields: _Fields, value: Any, redactor: Redactor) -> dict[str, Any] | None:
    """The answer a lost-response fault gave the client, rebuilt (and redacted) as the
    recorder builds it; None when there is none or it is not one."""
    lost = value.get("lost") if isinstance(value, dict) else None
    response = lost.get("response") if isinstance(lost, dict) else None
    if not isinstance(response, dict) or type(response.get("status")) is not int:
        return None
    headers = fields.headers(response.get("headers"), f".{EXTENSION}.lost.response.headers")
    try:
        body = body_bytes(response)
    except (binascii.Error, ValueError, TypeError):
        raise fields.fail(f".{EXTENSION}.lost.response", "has a body that cannot be read") from None
    return response_doc(response["status"], headers, body, redactor)


def har_interactions(har: dict[str, Any], path: str | os.PathLike[str], scope: Scope,
                     redactor: Redactor, replay_redactor: Redactor,
                     skip_unanswered: bool = False) -> Imported:
    """The exportJobs entries of ``har`` as cassette interactions, redacted by ``redactor``.

    An entry is kept when ``addons.traffic`` would call its request exportJobs traffic
    under ``scope`` (the recorder's own test); every other entry is skipped unread beyond
    its request line. ``replay_redactor`` is what a replaying proxy would redact: where the
    two give a request different keys, the query and JSON names to redact at replay are
    collected. Raises ``HarError`` naming the entry and field."""
    path = Path(path)
    log = har["log"]
    creator = log.get("creator")
    result = Imported()
    if isinstance(creator, dict):
        result.creator = " ".join(str(creator.get(k) or "")[:60] for k in ("name", "version")).strip()
    kept: list[tuple[float, float, int, dict[str, Any], dict[str, Any]]] = []
    default = datetime.now(UTC).timestamp()
    for index, entry in enumerate(log["entries"]):
        fields = _Fields(path, index)
        entry = fields.mapping(entry, "")
        method, url, headers = _request(fields, entry)
        try:
            probe = http.Request.make(method, url, b"", [(k.encode(), v.encode()) for k, v in headers])
        except (ValueError, UnicodeError) as exc:
            raise fields.fail(".request.url", f"is not a URL mitmproxy reads ({str(exc)[:80]})") from None
        if classify(probe, scope).kind is None:
            result.skipped += 1
            continue
        started = _entry_time(fields, entry, default)
        try:
            normalized, note = _normalized(fields, entry, method, url, headers, started)
        except HarError:
            if skip_unanswered and not _answered(entry):
                result.notes.append(f"entries[{index}]: no response; skipped")
                continue
            raise
        if note:
            result.notes.append(note)
        try:
            flow = request_to_flow(normalized)
        except (ValueError, UnicodeError, LookupError) as exc:
            raise fields.fail("", f"cannot be read as HTTP ({type(exc).__name__}: "
                                  f"{str(exc)[:80]})") from None
        req, res = flow.request, flow.response
        assert res is not None
        pairs = headers  # as the HAR has them: mitmproxy's reader adds a Content-Length
        body = req.get_content(strict=False) or b""
        doc = request_doc(method, url, pairs, body, redactor)
        _replay_hints(result, doc, request_doc(method, url, pairs, body, replay_redactor), redactor)
        interaction: dict[str, Any] = {"request": doc,
                                       "response": response_doc(res.status_code, list(res.headers.items(True)),
                                                                res.get_content(strict=False) or b"",
                                                                redactor)}
        extension = entry.get(EXTENSION)
        extra = _extension(fields, extension)
        lost = _lost_response(fields, extension, redactor)
        if lost is not None and "lost" in extra:
            extra["lost"]["response"] = lost
        interaction.update({k: v for k, v in extra.items()
                            if k not in ("interaction", "started", "duration", "concurrent")})
        duration = normalized["time"] / 1000.0
        kept.append((started, duration, index, interaction, extra))
    result.started = min((k[0] for k in kept), default=default)
    _number_and_time(result, kept)
    return result


def _answered(entry: dict[str, Any]) -> bool:
    response = entry.get("response")
    return isinstance(response, dict) and type(response.get("status")) is int \
        and 100 <= response["status"] <= 999


def _replay_hints(result: Imported, doc: dict[str, Any], plain: dict[str, Any],
                  redactor: Redactor) -> None:
    """Note the query parameters and JSON fields whose redaction makes this request differ
    from what a replaying proxy (without the same flags) would key on."""
    if doc == plain:
        return
    query = urlsplit(plain["url"]).query
    result.replay_query.update(k.lower() for k, _ in parse_qsl(query, keep_blank_values=True)
                               if k.lower() in redactor.query)
    if "json" in plain:
        result.replay_json.update(_json_names(plain["json"]) & redactor.json_fields)


def _json_names(data: Any) -> set[str]:
    """Every key of a JSON value, at any depth (walked with a stack: no recursion)."""
    names: set[str] = set()
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            names.update(k.lower() for k in value)
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return names


def _number_and_time(result: Imported, kept: list[tuple[float, float, int, dict[str, Any],
                                                         dict[str, Any]]]) -> None:
    """Number the interactions in order of arrival and give each its time and concurrency,
    unless the HAR carried them (an exportjobs export); ``result.interactions`` in order."""
    used = {extra["interaction"] for *_, extra in kept if "interaction" in extra}
    free = (n for n in range(1, len(kept) + len(used) + 1) if n not in used)
    spans: list[tuple[float, float, dict[str, Any]]] = []
    for started, duration, _, interaction, extra in sorted(kept, key=lambda k: (k[0], k[2])):
        number = extra.get("interaction") or next(free)
        interaction.update({
            "interaction": number,
            "started": extra.get("started", round(started - result.started, 6)),
            "duration": extra.get("duration", round(duration, 6)),
            "concurrent": extra.get("concurrent"),
        })
        spans.append((started, started + duration, interaction))
    starts = [start for start, _, _ in spans]
    for start, end, interaction in spans:
        if interaction["concurrent"] is not None:
            continue
        # the others that began before this one ended and ended after it began, looked for
        # among the latest starts only (bounded, however many entries overlap)
        last = bisect.bisect_left(starts, end)
        interaction["concurrent"] = sorted(
            other["interaction"] for s, e, other in spans[max(0, last - 2 * MAX_CONCURRENT):last]
            if other is not interaction and s < end and e > start)[:MAX_CONCURRENT]
    order = ("interaction", "started", "duration", "concurrent", "request", "response")
    result.interactions = sorted(
        ({**{key: i[key] for key in order}, **{k: v for k, v in i.items() if k not in order}}
         for _, _, i in spans), key=lambda i: i["interaction"])
