"""The cassette: the records (request and response documents, body fields, the header)
and loading a cassette as checked records.

A cassette is a YAML stream. The first document is a header (format, version, created,
tool); every further document is one interaction, written with an explicit end marker
(``...``) in a single write and fsynced before the response goes on to the client. A last
document without its end marker was torn by a crash: the reader drops it and says so.
See docs/cassette.md.

Split as VCR.py splits it: this module holds what a cassette records and what a loaded one
must be; ``addons.serializer`` its text form (YAML encode, fast decode); ``addons.persister``
the file (reading within bounds, the fsync writer).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from exportjobs.addons.persister import (
    CassetteError,
    CassetteWriter,
    read_documents,
    read_header_document,
    replace_header,
)
from exportjobs.addons.redaction import PLACEHOLDER, Redactor
from exportjobs.addons.serializer import RE_RECORD, dump_document

FORMAT = "exportjobs-cassette"
VERSION = 1

# Not written down: the body is stored decoded, so its length and encoding are recomputed.
_UNSTORED_RESPONSE_HEADERS = frozenset({"content-length", "content-encoding", "transfer-encoding"})


# --- bodies ---------------------------------------------------------------------------------


def body_fields(raw: bytes, content_type: str | None, redactor: Redactor) -> dict[str, Any]:
    """``{"json": data}``, ``{"text": str}``, ``{"base64": str}`` or ``{}`` for no body."""
    if not raw:
        return {}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(raw).decode("ascii")}
    ctype = (content_type or "").lower()
    if "json" in ctype or text.lstrip()[:1] in ("{", "["):
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):  # not JSON, or nested too deep: kept as text
            pass
        else:
            return {"json": redactor.json(data)}
    if "x-www-form-urlencoded" in ctype:
        text = redactor.query_string(text)
    return {"text": text}


def body_bytes(message: dict[str, Any]) -> bytes:
    """The body of a stored request or response, as bytes to send."""
    if "json" in message:
        return json.dumps(message["json"], separators=(",", ":"), ensure_ascii=False).encode()
    if "text" in message:
        return str(message["text"]).encode()
    if "base64" in message:
        return base64.b64decode(message["base64"])
    return b""


def _split_url(url: str) -> tuple[str, str]:
    base, _, query = url.partition("?")
    return base, query


def request_doc(
    method: str, url: str, headers: list[tuple[str, str]], raw: bytes, redactor: Redactor
) -> dict[str, Any]:
    """A request as the cassette stores it, redacted (the matcher keys the same shape)."""
    base, query = _split_url(url)
    query = redactor.query_string(query)
    content_type = next((v for k, v in headers if k.lower() == "content-type"), None)
    return {
        "method": method,
        "url": f"{base}?{query}" if query else base,
        "headers": redactor.header_pairs(headers),
        **body_fields(raw, content_type, redactor),
    }


def response_doc(
    status: int, headers: list[tuple[str, str]], raw: bytes, redactor: Redactor
) -> dict[str, Any]:
    """A response as the cassette stores it, redacted."""
    content_type = next((v for k, v in headers if k.lower() == "content-type"), None)
    kept = [(k, v) for k, v in headers if k.lower() not in _UNSTORED_RESPONSE_HEADERS]
    return {
        "status": status,
        "headers": redactor.header_pairs(kept),
        **body_fields(raw, content_type, redactor),
    }


def new_header(created: str, tool: str) -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, "created": created, "tool": tool,
            "placeholder": PLACEHOLDER}


# --- the run's variables in the header --------------------------------------------------------
#
# ``exportjobs run --record`` stores the values its scenario drew (``variables``, a mapping
# of name to JSON value), the scenario's name (``scenario``) and the names it would not
# write down because they look like secrets (``variables_withheld``), so ``run --replay``
# can send the same requests. Optional keys: a reader that does not know them ignores them,
# and the version stays 1.


@dataclass(frozen=True)
class RunVariables:
    """What a header says about the run that recorded it (all None/empty when nothing)."""

    scenario: str | None
    variables: dict[str, Any] | None  # None: the header stores none (not even an empty mapping)
    withheld: tuple[str, ...] = ()


def _header_fault(path: Path, key: str, what: str) -> CassetteError:
    return CassetteError(path, f"its header's {key} is not {what}",
                         "fix that field or record the cassette again with exportjobs run --record")


def read_run_variables(path: str | os.PathLike[str]) -> RunVariables:
    """The run variables in the header of the cassette at ``path``, checked; reads the header
    only. Raises ``CassetteError`` naming the file and the field."""
    path = Path(path)
    header = read_header_document(path)
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CassetteError(path, f"is not an exportjobs cassette (its first document lacks format: {FORMAT})",
                            "pass a file written by --mode record or exportjobs run --record")
    scenario = header.get("scenario")
    if scenario is not None and not isinstance(scenario, str):
        raise _header_fault(path, "scenario", "text")
    variables = header.get("variables")
    if variables is not None and not (isinstance(variables, dict)
                                      and all(isinstance(k, str) for k in variables)):
        raise _header_fault(path, "variables", "a mapping of names to values")
    withheld = header.get("variables_withheld", [])
    if not isinstance(withheld, list) or not all(isinstance(n, str) for n in withheld):
        raise _header_fault(path, "variables_withheld", "a list of names")
    return RunVariables(scenario, variables, tuple(withheld))


def store_run_variables(path: str | os.PathLike[str], run: RunVariables) -> None:
    """Write ``run`` into the header of the cassette at ``path`` (no writer may have it open),
    keeping the header's other fields and every interaction byte for byte."""
    header = read_header_document(Path(path))
    if not isinstance(header, dict):
        raise CassetteError(path, "has no header mapping", "record it again")
    header = {k: v for k, v in header.items() if k not in ("scenario", "variables", "variables_withheld")}
    header["scenario"] = run.scenario
    header["variables"] = dict(run.variables or {})
    if run.withheld:
        header["variables_withheld"] = list(run.withheld)
    replace_header(path, header)



# --- reading ---------------------------------------------------------------------------------
#
# What a loaded cassette holds is checked once, here, so that nothing later (the matcher's
# key, replay's response) meets a value it does not expect: every value is one JSON has
# (text without lone surrogates, a number of at most MAX_INT_DIGITS digits, true/false,
# null, a list, or a mapping with text keys), nested at most MAX_DEPTH deep, expanded
# (aliases written out) to a size bounded by the file's, and every request url splits.


@dataclass
class Cassette:
    """A loaded cassette. ``torn`` describes a dropped incomplete last document, if any;
    ``lines`` holds the line each interaction starts at (for messages)."""

    path: Path
    header: dict[str, Any]
    interactions: list[dict[str, Any]] = field(default_factory=list)
    torn: str | None = None
    lines: list[int] = field(default_factory=list)
    # Bytes of complete documents when it was read: where an append (new_episodes) goes, so
    # appending needs no second read of the file.
    complete_size: int = 0


def _document_error(path: Path, number: int, line: int, problem: str) -> CassetteError:
    return CassetteError(path, f"document {number} {problem}", RE_RECORD, line)


def load_cassette(path: str | os.PathLike[str]) -> Cassette:
    """Read and check a cassette; a torn last document is dropped and reported in ``torn``.

    Raises ``CassetteError`` (naming the file, and the document and line where there is
    one) for anything it cannot use, and for nothing else: once loaded, every interaction
    can be indexed by ``addons.matching`` and replayed."""
    path = Path(path)
    located, tail = read_documents(path)
    torn = None
    if tail:
        torn = (f"its last document is incomplete ({tail} bytes after the last complete "
                f"one, probably cut off by a crash) and was dropped")
    located = [(line, d) for line, d in located if d is not None]
    if not located:
        raise CassetteError(path, "is empty or holds no complete document", "record one with --mode record")
    header = located[0][1]
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CassetteError(path, f"is not an exportjobs cassette (its first document lacks format: {FORMAT})",
                            "pass a file written by --mode record")
    version = header.get("version")
    if type(version) is not int or version > VERSION:
        raise CassetteError(path, f"has format version {version!r}, this tool reads {VERSION}",
                            "upgrade exportjobs or re-record it")
    interactions = [d for _, d in located[1:]]
    lines = [line for line, _ in located[1:]]
    for number, (line, item) in enumerate(located[1:], start=2):
        problem = _interaction_problem(item)
        if problem:
            raise _document_error(path, number, line, problem)
    return Cassette(path, header, interactions, torn, lines, path.stat().st_size - tail)


def _interaction_problem(item: Any) -> str | None:
    """What makes an interaction unusable for the matcher or replay, if anything."""
    if not isinstance(item, dict):
        return "is not a mapping"
    request, response = item.get("request"), item.get("response")
    if not isinstance(request, dict) or not isinstance(request.get("method"), str) \
            or not isinstance(request.get("url"), str):
        return "has no request method and url"
    try:
        urlsplit(request["url"])
    except ValueError as exc:
        return f"has a request url that is not a URL ({exc})"
    if not isinstance(response, dict) or type(response.get("status")) is not int \
            or not 100 <= response["status"] <= 999:
        return "has no response status (a number from 100 to 999)"
    if not isinstance(item.get("interaction", 0), int):
        return "has an interaction number that is not a whole number"
    for side, message in (("request", request), ("response", response)):
        problem = _message_problem(message)
        if problem:
            return f"has a {side} whose {problem}"
    return None


def _message_problem(message: dict[str, Any]) -> str | None:
    """What is wrong with a stored request or response's headers or body, if anything:
    checked on load so that replay never meets a recording it cannot send."""
    headers = message.get("headers", [])
    if not isinstance(headers, list) or not all(
            isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, str) for v in pair)
            for pair in headers):
        return "headers are not a list of [name, value] pairs of text"
    if "text" in message and not isinstance(message["text"], str):
        return "text body is not text"
    if "base64" in message:
        try:
            base64.b64decode(message["base64"], validate=True)
        except (binascii.Error, TypeError, ValueError):
            return "base64 body is not valid base64"
    return None


# CassetteError, CassetteWriter and dump_document are the persister's and the serializer's,
# named here too for callers that know a cassette only by this module.
__all__ = ["FORMAT", "VERSION", "Cassette", "CassetteError", "CassetteWriter", "RunVariables",
           "body_bytes", "body_fields", "dump_document", "load_cassette", "new_header",
           "read_run_variables", "request_doc", "response_doc", "store_run_variables"]
