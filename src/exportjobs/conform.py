"""``exportjobs conform``: re-send a recorded session to a target and name every difference
a client could observe.

A cassette recorded against real Graph is the service's own answer sheet. Sending its
requests again, in order, to another target (by default an emulator started in-process) and
comparing the answers is how the emulator is checked against the real service. Only what a
client can rely on is compared, each by its nature:

- the status;
- the headers Graph always sends (``request-id``, ``client-request-id``, ``Date``: present,
  of the right shape), ``Content-Type``'s media type, ``Location`` (present, absolute or
  not, naming the same kind of resource) and ``Retry-After`` (present or not);
- JSON bodies by key path and value type (``error.innerError.code: string``); error codes,
  ``@odata.type``, the context's fragment and a job's ``status`` by value; volatile values
  (ids, dates, GUIDs) by shape, never by value.

The target issues its own job ids. The id a recorded create got is mapped onto the id the
target gave the same create, and replaced in every later request, so a recorded get of
job A asks the target for its own A. Interactions the proxy injected (fault plans) are not
the service's: they are skipped and counted. A recorded poll (a get of a job whose status
is notStarted or running) is repeated against the target, within ``wait`` seconds, until
the target's job reaches the recorded status: services differ in speed, not in shape.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp

from exportjobs.addons.cassette import Cassette, body_bytes, load_cassette
from exportjobs.addons.matching import INJECTED
from exportjobs.addons.redaction import PLACEHOLDER
from exportjobs.graph import is_guid, match_exportjobs

# Headers never re-sent: they described the recorded connection, or are recomputed.
_NOT_SENT = frozenset({"host", "content-length", "connection", "keep-alive", "transfer-encoding",
                       "upgrade", "proxy-connection", "te", "trailer", "accept-encoding"})
ALWAYS_HEADERS = ("request-id", "client-request-id", "date")
PRESENCE_HEADERS = ("location", "retry-after")
# JSON keys compared by value: what a client branches on.
VALUE_KEYS = frozenset({"code", "@odata.type", "status"})
_PROGRESS = {"notStarted": 0, "running": 1, "succeeded": 2, "failed": 2}

# Volatile values: compared by the kind of value they are.
_HTTP_DATE = re.compile(r"^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
_OPAQUE_ID = re.compile(r"^[A-Za-z0-9!_=+/.~-]{16,}$")
SHAPES: tuple[tuple[str, Callable[[str], bool]], ...] = (
    ("GUID", is_guid),
    ("ISO 8601 date", lambda v: _ISO_DATE.match(v) is not None),
    ("HTTP date", lambda v: _HTTP_DATE.match(v) is not None),
    ("opaque id", lambda v: _OPAQUE_ID.match(v) is not None and not v.isalpha()),
)


def shape(value: str) -> str | None:
    """The volatile kind of a text value, or None for an ordinary one."""
    return next((name for name, test in SHAPES if test(value)), None)


class ConformError(Exception):
    """The target could not be reached or did not answer (exit 3)."""


@dataclass(frozen=True)
class Difference:
    interaction: int
    request: str  # method and path, as recorded
    where: str  # "status", "header Location", "json error.code", ...
    recorded: str
    target: str


@dataclass
class Outcome:
    compared: int = 0
    skipped_injected: int = 0
    differences: list[Difference] = field(default_factory=list)

    @property
    def conforms(self) -> bool:
        return not self.differences


# --- comparing ------------------------------------------------------------------------------


def _type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def key_paths(data: Any, prefix: str = "") -> dict[str, Any]:
    """Every key path of a JSON value with a value found there (array items as ``[]``)."""
    out: dict[str, Any] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            out[path] = value
            out.update(key_paths(value, path))
    elif isinstance(data, list):
        for item in data:
            path = f"{prefix}[]"
            out.setdefault(path, item)
            for sub, value in key_paths(item, path).items():
                out.setdefault(sub, value)
    return out


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."


def _header(headers: Iterable[tuple[str, str]] | Iterable[list[str]], name: str) -> str | None:
    return next((v for k, v in headers if k.lower() == name), None)


def _media_type(value: str | None) -> str | None:
    return value.split(";", 1)[0].strip().lower() if value is not None else None


def _location_shape(value: str) -> str:
    parts = urlsplit(value)
    route = match_exportjobs(parts.path)
    kind = f"exportJobs {route.resource}" if route is not None else "another path"
    return f"{'absolute' if parts.scheme else 'relative'} URL of {kind}"


def _body_kind(message: dict[str, Any]) -> str:
    return next((k for k in ("json", "text", "base64") if k in message), "empty")


class IdMap:
    """Recorded job ids and the ids the target issued for the same creates."""

    def __init__(self) -> None:
        self.ids: dict[str, str] = {}

    def learn(self, recorded: str | None, target: str | None) -> None:
        if recorded and target and recorded not in self.ids:
            self.ids[recorded] = target

    def apply(self, text: str) -> str:
        for old, new in self.ids.items():
            text = text.replace(old, new).replace(quote(old, safe=""), quote(new, safe=""))
        return text

    def apply_json(self, data: Any) -> Any:
        if isinstance(data, str):
            return self.ids.get(data, data)
        if isinstance(data, list):
            return [self.apply_json(v) for v in data]
        if isinstance(data, dict):
            return {k: self.apply_json(v) for k, v in data.items()}
        return data


def _job_of(body: Any) -> dict[str, Any] | None:
    """The job in a body: the bare entity, or the docs' ``{"value": {job}}`` wrapper."""
    if isinstance(body, dict) and isinstance(body.get("value"), dict):
        body = body["value"]
    return body if isinstance(body, dict) and "status" in body else None


def _location_id(value: str | None) -> str | None:
    route = match_exportjobs(urlsplit(value).path) if value else None
    return route.job_id if route is not None else None


def compare(number: int, request: str, recorded: dict[str, Any], status: int,
            headers: list[tuple[str, str]], body: dict[str, Any], ids: IdMap) -> list[Difference]:
    """Every difference a client could observe between a recorded response and the target's
    (``body`` in cassette form: ``{"json": ...}``, ``{"text": ...}``, ...)."""
    found: list[Difference] = []

    def differ(where: str, was: Any, now: Any) -> None:
        found.append(Difference(number, request, where, _show(was), _show(now)))

    if recorded["status"] != status:
        differ("status", recorded["status"], status)
    rec_headers = recorded.get("headers", [])
    for name in ALWAYS_HEADERS + PRESENCE_HEADERS:
        was, now = _header(rec_headers, name), _header(headers, name)
        if (was is None) != (now is None):
            differ(f"header {name}", was if was is not None else "(absent)",
                   now if now is not None else "(absent)")
        elif was is not None and now is not None and was != PLACEHOLDER:
            if name == "location":
                if _location_shape(was) != _location_shape(now):
                    differ("header location", _location_shape(was), _location_shape(now))
                else:
                    _check_id(differ, "header location", _location_id(was), _location_id(now), ids)
            elif name in ALWAYS_HEADERS and shape(was) != shape(now):
                differ(f"header {name}", f"{shape(was) or 'text'}: {was}", f"{shape(now) or 'text'}: {now}")
    was_type = _media_type(_header(rec_headers, "content-type"))
    now_type = _media_type(_header(headers, "content-type"))
    if was_type != now_type:
        differ("header content-type", was_type or "(absent)", now_type or "(absent)")
    if _body_kind(recorded) != _body_kind(body):
        differ("body", _body_kind(recorded), _body_kind(body))
    elif "json" in recorded:
        found.extend(_compare_json(number, request, recorded["json"], body["json"], ids))
    return found


def _check_id(differ: Callable[[str, Any, Any], None], where: str, was: str | None,
              now: str | None, ids: IdMap) -> None:
    """A recorded id the target has a counterpart for must be that counterpart."""
    if was is not None and was in ids.ids and now != ids.ids[was]:
        differ(where, f"the recorded job {was}", f"another job: {now}")


def _compare_json(number: int, request: str, was: Any, now: Any, ids: IdMap) -> list[Difference]:
    found: list[Difference] = []
    was_paths, now_paths = key_paths(was), key_paths(now)
    missing: list[str] = []  # a key absent on one side: its descendants are not listed too
    for path in sorted(was_paths.keys() | now_paths.keys()):
        where = f"json {path}"
        if any(path.startswith(m) and path[len(m)] in ".[" for m in missing):
            continue
        if (path in was_paths) != (path in now_paths):
            missing.append(path)
        if path not in now_paths:
            found.append(Difference(number, request, where, _show(was_paths[path]), "(absent)"))
            continue
        if path not in was_paths:
            found.append(Difference(number, request, where, "(absent)", _show(now_paths[path])))
            continue
        a, b = was_paths[path], now_paths[path]
        if _type(a) != _type(b):
            found.append(Difference(number, request, where, f"{_type(a)} {_show(a)}",
                                    f"{_type(b)} {_show(b)}"))
            continue
        if not isinstance(a, str) or a == PLACEHOLDER:
            continue
        leaf = path.rsplit(".", 1)[-1]
        if leaf == "@odata.context":
            a, b = a.partition("#")[2], b.partition("#")[2]
            if a != b:
                found.append(Difference(number, request, where, f"#{a}", f"#{b}"))
        elif leaf in VALUE_KEYS:
            if a != b:
                found.append(Difference(number, request, where, a, b))
        elif shape(a) != shape(b):
            found.append(Difference(number, request, where, f"{shape(a) or 'text'}: {_show(a)}",
                                    f"{shape(b) or 'text'}: {_show(b)}"))
        elif a in ids.ids and b != ids.ids[a]:
            found.append(Difference(number, request, where, f"the recorded job {_show(a)}",
                                    f"another job: {_show(b)}"))
    return found


# --- sending --------------------------------------------------------------------------------


def _order(interactions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Arrival order; within a recorded race (interactions in flight together, whose order
    at the service nobody saw) the winner first, as it must have reached the service first."""
    def key(item: dict[str, Any]) -> tuple[int, int, int]:
        number = item.get("interaction", 0)
        group = [n for n in item.get("concurrent", []) if isinstance(n, int)]
        return min([number, *group]), int(item["response"]["status"] >= 300), number
    return sorted(interactions, key=key)


def _request_headers(recorded: list[list[str]], token: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for name, value in recorded:
        lower = name.lower()
        if lower in _NOT_SENT:
            continue
        if value == PLACEHOLDER or PLACEHOLDER in value:
            if lower != "authorization":
                continue  # a redacted cookie or secret: the target gets none
            value = f"Bearer {token}"
        out.append((name, value))
    return out


def _target_url(base: str, recorded_url: str, ids: IdMap) -> str:
    parts = urlsplit(recorded_url)
    path = ids.apply(parts.path)
    query = ids.apply(parts.query)
    return base.rstrip("/") + path + (f"?{query}" if query else "")


def _body_doc(raw: bytes, content_type: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": ""}
    if "json" in (content_type or "").lower() or text.lstrip()[:1] in ("{", "["):
        try:
            return {"json": json.loads(text)}
        except ValueError:
            pass
    return {"text": text}


async def conform(cassette: Cassette, target: str, token: str, *, wait: float = 120.0,
                  timeout: float = 30.0) -> Outcome:
    """Send the cassette's requests to ``target`` one at a time and compare every answer.

    Raises ``ConformError`` when the target cannot be reached or stops answering."""
    outcome = Outcome()
    ids = IdMap()
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(timeout=client_timeout, auto_decompress=True) as session:
        for item in _order(cassette.interactions):
            if INJECTED in item:
                outcome.skipped_injected += 1
                continue
            outcome.compared += 1
            request, recorded = item["request"], item["response"]
            number = item.get("interaction", outcome.compared)
            label = f"{request['method']} {urlsplit(request['url']).path}"
            url = _target_url(target, request["url"], ids)
            headers = _request_headers(request.get("headers", []), token)
            data = (json.dumps(ids.apply_json(request["json"])).encode() if "json" in request
                    else body_bytes(request))
            status, got_headers, body = await _send(session, request["method"], url, headers,
                                                    data, _job_of(recorded.get("json")), wait)
            if 200 <= recorded["status"] < 300 and 200 <= status < 300 \
                    and request["method"].upper() == "POST":
                rec_job, got_job = _job_of(recorded.get("json")), _job_of(body.get("json"))
                ids.learn(rec_job.get("id") if rec_job else None, got_job.get("id") if got_job else None)
                ids.learn(_location_id(_header(recorded.get("headers", []), "location")),
                          _location_id(_header(got_headers, "location")))
            outcome.differences.extend(compare(number, label, recorded, status, got_headers, body, ids))
    return outcome


async def _send(session: aiohttp.ClientSession, method: str, url: str,
                headers: list[tuple[str, str]], data: bytes, recorded_job: dict[str, Any] | None,
                wait: float) -> tuple[int, list[tuple[str, str]], dict[str, Any]]:
    """One request; a poll is repeated until the target's job is as far as the recorded one."""
    deadline = time.monotonic() + wait
    while True:
        try:
            async with session.request(method, url, headers=headers, data=data or None,
                                       allow_redirects=False) as response:
                raw = await response.read()
                got_headers = list(response.headers.items())
                status = response.status
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise ConformError(f"{method} {urlsplit(url).path}: {type(exc).__name__}: {exc}") from None
        body = _body_doc(raw, response.headers.get("Content-Type"))
        job = _job_of(body.get("json"))
        if recorded_job is None or job is None or method.upper() != "GET" \
                or time.monotonic() >= deadline:
            return status, got_headers, body
        was = _PROGRESS.get(str(recorded_job.get("status")))
        now = _PROGRESS.get(str(job.get("status")))
        if was is None or now is None or now >= was:
            return status, got_headers, body
        await asyncio.sleep(min(0.25, max(0.0, deadline - time.monotonic())))


# --- reporting ------------------------------------------------------------------------------


def table(differences: list[Difference]) -> str:
    """The differences as a plain-text table (interaction, request, where, recorded, target)."""
    heads = ("#", "request", "where", "recorded", "target")
    rows = [(str(d.interaction), d.request, d.where, d.recorded, d.target) for d in differences]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(heads)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


def write_report(outcome: Outcome, path: str | Path, cassette: Path, target: str) -> None:
    document = {"cassette": str(cassette), "target": target, "conforms": outcome.conforms,
                "compared": outcome.compared, "skipped_injected": outcome.skipped_injected,
                "differences": [asdict(d) for d in outcome.differences]}
    Path(path).write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


__all__ = ["ConformError", "Difference", "IdMap", "Outcome", "compare", "conform", "key_paths",
           "load_cassette", "shape", "table", "write_report"]
