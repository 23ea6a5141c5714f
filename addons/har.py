"""HAR 1.2 in and out: cassette interactions as HAR entries, and HAR entries as interactions.

Written with mitmproxy's own HAR code, so a HAR from here reads as one from mitmproxy's
``savehar`` does: an interaction becomes a mitmproxy flow and ``SaveHar.flow_entry`` writes
its entry; an imported entry becomes a flow through ``mitmproxy.io.har.request_to_flow``
and is then recorded as the recorder records a live flow (``request_doc``/``response_doc``,
redacted by a ``Redactor``). What mitmproxy's reader takes on trust (every field present,
the right type) is checked here first, entry by entry, so that a HAR someone shares gets an
error naming the entry and field instead of a traceback.

What a HAR cannot say (interaction numbers, concurrency, injected faults) rides along in an
``_exportjobs`` field of each entry (HAR allows custom fields that start with ``_``), so
a cassette exported and imported again replays the same; a HAR from elsewhere gets its
numbers from the order of ``startedDateTime`` and its concurrency from overlapping times.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import bisect
import json
import math
import os
import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from mitmproxy import connection, http
from mitmproxy.addons.savehar import SaveHar
from mitmproxy.io.har import request_to_flow

from exportjobs.addons.cassette import (
    Cassette,
    body_bytes,
    new_header,
    request_doc,
    response_doc,
)
from exportjobs.addons.persister import CassetteError, CassetteWriter
from exportjobs.addons.redaction import PLACEHOLDER, Redactor
from exportjobs.addons.scope import Scope
from exportjobs.addons.traffic import classify
from exportjobs.graph import graph_time

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


_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # an HTTP header name (RFC 9110)

# Not stored (the cassette keeps bodies decoded, as the recorder does); dropped before
# mitmproxy's reader would encode the body again for them.
_BODY_FRAMING = frozenset({"content-encoding", "content-length", "transfer-encoding"})


class HarError(Exception):
    """A HAR (or a cassette to export) that cannot be used: names the file, where, what to do."""

    def __init__(self, path: str | os.PathLike[str], where: str, problem: str, hint: str) -> None:
        at = f", {where}" if where else ""
        super().__init__(f"HAR {os.fspath(path)}{at}: {problem}; {hint}")


# --- export -----------------------------------------------------------------------------------


def _timestamp(created: Any) -> float:
    """The cassette header's ``created`` as a POSIX time (now, for one that does not parse)."""
    if isinstance(created, str):
        try:
            return _parse_time(created)
        except ValueError:
            pass
    return datetime.now(UTC).timestamp()


def _parse_time(text: str) -> float:
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


def _finite(value: Any) -> bool:
    """A JSON number that is a number (Python's JSON reader also takes NaN and Infinity)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


def _number(value: Any) -> float:
    return float(value) if _finite(value) else 0.0


def interaction_flow(item: dict[str, Any], created: float, redactor: Redactor) -> http.HTTPFlow:
    """A loaded cassette interaction as a mitmproxy flow (headers exactly as stored, bodies
    as replay sends them), timed from ``created`` as it was recorded."""
    request, response = item["request"], item["response"]
    start = created + max(_number(item.get("started")), 0.0)
    end = start + max(_number(item.get("duration")), 0.0)
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


# --- import: reading --------------------------------------------------------------------------


def read_har(path: str | os.PathLike[str], max_bytes: int = MAX_HAR_BYTES) -> dict[str, Any]:
    """The HAR at ``path`` parsed, if it is a regular file of at most ``max_bytes`` bytes of
    JSON with a ``log.entries`` list; raises ``HarError`` otherwise."""
    path = Path(path)
    try:
        with open(path, "rb") as file:
            info = os.fstat(file.fileno())
            if not _regular(info.st_mode):
                raise HarError(path, "", "is not a regular file", "pass the .har file itself")
            if info.st_size > max_bytes:
                raise HarError(path, "", f"is {info.st_size:,} bytes, more than the "
                               f"{max_bytes:,} this reads by default",
                               "export fewer requests, or pass --max-size MB if you trust it")
            data = file.read(max_bytes + 1)
    except FileNotFoundError:
        raise HarError(path, "", "no such file", "check the path") from None
    except IsADirectoryError:
        raise HarError(path, "", "is a folder", "pass the .har file inside it") from None
    except OSError as exc:
        raise HarError(path, "", f"cannot be read ({exc.strerror})", "check its permissions") from None
    if len(data) > max_bytes:
        raise HarError(path, "", f"is more than {max_bytes:,} bytes", "pass --max-size MB")
    try:
        text = data.decode("utf-8-sig")  # the HAR spec lets writers put a BOM first
    except UnicodeDecodeError as exc:
        raise HarError(path, f"byte {exc.start}", "is not UTF-8 text",
                       "a HAR is UTF-8 JSON; export it again from the browser or tool") from None
    try:
        har = json.loads(text)
    except json.JSONDecodeError as exc:
        raise HarError(path, f"line {exc.lineno} column {exc.colno}", f"is not JSON ({exc.msg})",
                       "pass a .har file as a browser or proxy saves it") from None
    except (ValueError, RecursionError) as exc:
        raise HarError(path, "", f"is not JSON this reads ({str(exc)[:100] or 'nested too deeply'})",
                       "pass a .har file as a browser or proxy saves it") from None
    log = har.get("log") if isinstance(har, dict) else None
    if not isinstance(log, dict) or not isinstance(log.get("entries"), list):
        raise HarError(path, "log.entries", "is missing: this is JSON but not a HAR",
                       "pass a HAR (an object with log.entries)")
    return har


def _regular(mode: int) -> bool:
    import stat

    return stat.S_ISREG(mode)


# --- import: entries --------------------------------------------------------------------------


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
        "time": max(_number(entry.get("time")), 0.0),
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
        moment = _parse_time(fields.text(started, ".startedDateTime"))
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
        if _finite(value.get(key)):
            kept[key] = value[key]
    concurrent = value.get("concurrent")
    if isinstance(concurrent, list) and all(type(n) is int for n in concurrent):
        kept["concurrent"] = concurrent
    for key in ("injected", "lost"):
        mark = value.get(key)
        if isinstance(mark, dict):
            kept[key] = {k: v for k, v in mark.items()
                         if isinstance(k, str) and (v is None or isinstance(v, str) or _finite(v))}
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


# --- import: writing --------------------------------------------------------------------------


def import_header(imported: Imported, tool: str, source: str) -> dict[str, Any]:
    header = new_header(graph_time(imported.started), tool)
    header["imported_from"] = source
    return header


async def write_cassette(path: str | os.PathLike[str], header: dict[str, Any],
                         interactions: Iterable[dict[str, Any]], force: bool) -> None:
    """Write a new cassette at ``path`` with the project's writer, all or nothing: into a
    temporary file beside it, fsynced, checked to load and index as replay loads it, and
    only then linked into place (``force``: renamed over an existing one). A crash at any
    point leaves either no cassette (or the old one) or the complete new one."""
    from exportjobs.addons.matching import load_index

    path = Path(path)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.importing")
    writer = CassetteWriter(temp, header)
    try:
        try:  # appended together, so the writer's group commit fsyncs them once
            await asyncio.gather(*(writer.append(item) for item in interactions))
        finally:
            await writer.close()
        load_index(temp)
        _place(temp, path, force)
    finally:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass


def _place(temp: Path, path: Path, force: bool) -> None:
    if force:
        os.replace(temp, path)
    else:
        try:
            os.link(temp, path)  # fails if the cassette appeared meanwhile: never overwritten
        except FileExistsError:
            raise CassetteError(path, "already exists", "pass --force to replace it") from None
        except OSError:  # a file system without hard links
            if path.exists():
                raise CassetteError(path, "already exists", "pass --force to replace it") from None
            os.replace(temp, path)
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    """Make the new directory entry durable (where the OS allows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


__all__ = ["EXTENSION", "IMPORT_HEADERS", "IMPORT_JSON", "IMPORT_QUERY", "MAX_HAR_BYTES",
           "HarError", "Imported", "cassette_to_har", "har_chunks", "har_entries", "har_interactions",
           "import_header", "import_redactor", "interaction_flow", "read_har", "write_cassette"]
