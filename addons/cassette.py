"""The cassette: the one reader and writer of recorded exportJobs interactions.

A cassette is a YAML stream. The first document is a header (format, version, created,
tool); every further document is one interaction, written with an explicit end marker
(``...``) in a single write and fsynced before the response goes on to the client. A last
document without its end marker was torn by a crash: the reader drops it and says so.
See docs/cassette.md.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import gc
import io
import json
import json.scanner
import os
import re
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import yaml

from exportjobs.addons.redaction import PLACEHOLDER, Redactor
from exportjobs.yamldoc import MAX_DEPTH, CheckedConstruction, YamlError, check_nodes

FORMAT = "exportjobs-cassette"
VERSION = 1
_END = b"\n...\n"

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

# Not written down: the body is stored decoded, so its length and encoding are recomputed.
_UNSTORED_RESPONSE_HEADERS = frozenset({"content-length", "content-encoding", "transfer-encoding"})


class CassetteError(Exception):
    """A cassette that cannot be used; the message names the file and what to do."""

    def __init__(self, path: str | os.PathLike[str], problem: str, hint: str, line: int = 0) -> None:
        where = f", line {line}" if line else ""
        super().__init__(f"cassette {os.fspath(path)}{where}: {problem}; {hint}")
        self.path = os.fspath(path)
        self.line = line


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


_RE_RECORD = "re-record it with --mode record or fix that document"
# How many more values than its length a cassette may hold through YAML aliases; the
# writer never writes one, so this is only room for a hand edit.
_ALIAS_ALLOWANCE = 100_000
# The fast reader caches header lines that repeat (Content-Type, Host, ...): one list
# object for all of them. Bounded: cleared when it holds this many distinct lines.
_PAIR_CACHE_SIZE = 10_000


def _document_error(path: Path, number: int, line: int, problem: str) -> CassetteError:
    return CassetteError(path, f"document {number} {problem}", _RE_RECORD, line)


def _load_own_format(data: bytes) -> list[Any] | None:
    """The documents of ``data`` as the fast reader sees them (None: not the writer's own
    format); kept for comparing the two readers."""
    read = _read_own_format(io.BytesIO(data))
    return None if read is None else [doc for _, doc in read[0]]


def _read_own_format(file: BinaryIO) -> tuple[list[tuple[int, dict[str, Any]]], int] | None:
    """The complete documents (with the line each starts at) of a cassette exactly as
    ``dump_document`` writes them, and the number of bytes after the last one; None for
    anything else, which then goes through the YAML reader.

    Read a block at a time, cut at end markers, and parsed with the JSON scanner per value:
    several times faster than YAML, and the file is never held whole (as bytes, then text,
    then pieces). Lines may end in CRLF (git's autocrlf). A value that could need a check
    only the YAML reader makes (deep nesting, a surrogate escape) sends the file there."""
    documents: list[tuple[int, dict[str, Any]]] = []
    pairs: dict[str, list[Any]] = {}
    # appended to in place, so a document longer than a block is not copied once per block
    buffer, line, searched = bytearray(), 1, 0
    while True:
        block = file.read(_BLOCK)
        buffer += block
        start = 0
        for marker in _END_BYTES.finditer(buffer, max(0, searched - 8)):
            chunk = buffer[start:marker.start()]
            if chunk.strip():
                document = _own_chunk(chunk, pairs)
                if document is None:
                    return None
                documents.append((line + 1, document))  # its first line after ---
            line += chunk.count(b"\n") + 2
            start = marker.end()
        del buffer[:start]
        searched = len(buffer)
        if not block:
            return documents, (len(buffer) if buffer.strip() else 0)


_BLOCK = 1 << 20
_END_BYTES = re.compile(rb"\n\.\.\.\r?\n")
_SCAN = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[attr-defined]


def _json(text: str) -> Any:
    """One JSON value filling ``text`` (the scanner, without json.loads' layers)."""
    value, end = _SCAN(text, 0)
    if end != len(text):
        raise ValueError("text after the value")
    return value


def _own_chunk(chunk: bytes | bytearray, pairs: dict[str, list[Any]]) -> dict[str, Any] | None:
    """One document's bytes (without its end marker) as ``_own_document`` reads them."""
    try:
        text = chunk.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if "\r" in text:
        text = text.replace("\r\n", "\n")
        if text.endswith("\r"):
            text = text[:-1]
    if "\\ud" in text or "\\uD" in text:
        return None  # perhaps a lone surrogate: the YAML reader checks and names the line
    lines = text.split("\n")
    if text.count("[") + text.count("{") > MAX_DEPTH and any(
            line.count("[") + line.count("{") > MAX_DEPTH for line in lines):
        return None  # perhaps nested too deeply: the YAML reader checks and names the line
    return _own_document(lines, pairs)


def _own_document(lines: list[str], pairs: dict[str, list[Any]]) -> dict[str, Any] | None:
    """One document: ``key: <json>`` lines, ``key:`` opening a mapping indented by two, and
    ``- <json>`` items under ``key:`` (at the key's indent), as ``dump_document`` writes."""
    if lines[0] != "---":
        return None
    root: dict[str, Any] = {}
    nested: dict[str, Any] | None = None  # the indented mapping being filled
    opened: tuple[dict[str, Any], str, int] | None = None  # "key:" waiting for its block
    items: list[Any] | None = None
    items_indent = -1
    intern = sys.intern
    try:
        for line in lines[1:]:
            indent = 2 if line.startswith("  ") else 0
            body = line[indent:]
            if body.startswith("- "):
                if opened is not None and opened[2] == indent:
                    container, key, _ = opened
                    items = container[key] = []
                    items_indent, opened = indent, None
                if items is None or indent != items_indent:
                    return None
                item = pairs.get(body)
                if item is None:
                    item = _json(body[2:])
                    if type(item) is list and len(item) == 2 and type(item[0]) is str:
                        item[0] = intern(item[0])
                        if len(pairs) >= _PAIR_CACHE_SIZE:
                            pairs.clear()
                        pairs[body] = item
                items.append(item)
                continue
            items = None
            if indent:
                if opened is not None:
                    container, key, level = opened
                    if level != 0:
                        return None
                    nested = container[key] = {}
                    opened = None
                if nested is None:
                    return None
                container = nested
            else:
                if opened is not None:
                    return None
                nested, container = None, root
            key, sep, rest = body.partition(":")
            if not sep or not key.isidentifier():
                return None
            key = intern(key)
            if not rest:
                opened = (container, key, indent)
            elif rest[0] == " ":
                container[key] = _json(rest[1:])
            else:
                return None
    except (ValueError, StopIteration, RecursionError):
        return None
    return None if opened is not None else root


def _open_regular(path: Path) -> BinaryIO:
    """``path`` opened for reading, if it is a regular file. Opened without blocking, so a
    FIFO (which would wait forever for a writer) is refused rather than waited on."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise CassetteError(path, "no such file", "record one first with --mode record") from None
    except IsADirectoryError:
        raise CassetteError(path, "is a folder, not a file", "pass the cassette file inside it") from None
    except OSError as exc:
        raise CassetteError(path, f"cannot be read ({exc.strerror})", "check the path and its permissions") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        what = "a folder" if stat.S_ISDIR(mode) else "not a regular file (a pipe, socket or device)"
        raise CassetteError(path, f"is {what}", "pass the cassette file written by --mode record")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def load_cassette(path: str | os.PathLike[str]) -> Cassette:
    """Read and check a cassette; a torn last document is dropped and reported in ``torn``.

    Raises ``CassetteError`` (naming the file, and the document and line where there is
    one) for anything it cannot use, and for nothing else: once loaded, every interaction
    can be indexed by ``addons.matching`` and replayed."""
    path = Path(path)
    collecting = gc.isenabled()
    gc.disable()  # millions of new containers, none garbage: collections would only cost time
    try:
        with _open_regular(path) as file:
            try:
                read = _read_own_format(file)
                if read is None or not read[0]:  # the YAML reader names what it holds instead
                    file.seek(0)
                    read = _load_yaml(path, file.read())
            except OSError as exc:
                raise CassetteError(path, f"cannot be read ({exc.strerror})",
                                    "check the path and its permissions") from None
    finally:
        if collecting:
            gc.enable()
    located, tail = read
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
    return Cassette(path, header, interactions, torn, lines)


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


class _YamlLoader(CheckedConstruction, _Loader):  # type: ignore[misc, valid-type]
    """The cassette's YAML reader: libyaml when available, values a tag cannot build named."""


def _decode(path: Path, data: bytes) -> str:
    """``data`` as text, or a ``CassetteError`` saying what it is instead."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise CassetteError(path, "is UTF-16 text", "convert it to UTF-8 (iconv -f UTF-16 -t UTF-8) "
                            "or re-record it with --mode record")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise CassetteError(path, "holds a NUL character: it is binary (or UTF-16) data, not a "
                            "cassette", "pass the file --mode record writes", data.count(b"\n", 0, nul) + 1)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise CassetteError(path, f"is not UTF-8 text (byte 0x{data[exc.start]:02x} is not text)",
                            "a cassette is the UTF-8 YAML --mode record writes; pass that file",
                            line) from None
    return text


def _load_yaml(path: Path, data: bytes) -> tuple[list[tuple[int, Any]], int]:
    """Any YAML stream (hand-edited cassettes land here), each document bounded and checked
    (``check_nodes``: JSON values only, aliases and nesting bounded) before it is built.

    Only the part up to the last end marker is read (the rest is a torn tail: a crash may
    have cut it anywhere, even inside a character); a file without any is still decoded,
    so that binary data or UTF-16 is named as such rather than as an empty cassette."""
    cut = max((m.end() for m in _END_BYTES.finditer(data, max(0, len(data) - _BLOCK))), default=-1)
    if cut < 0:
        cut = max((m.end() for m in _END_BYTES.finditer(data)), default=-1)
    if cut < 0:
        _decode(path, data)
        return [], len(data) if data.strip() else 0
    complete = _decode(path, data[:cut])
    tail = len(data) - cut if data[cut:].strip() else 0
    documents: list[tuple[int, Any]] = []
    budget = len(complete) + _ALIAS_ALLOWANCE
    try:
        loader = _YamlLoader(complete)
    except yaml.YAMLError as exc:
        raise CassetteError(path, f"is not valid YAML ({exc})", _RE_RECORD) from None
    try:
        while loader.check_node():
            node = loader.get_node()
            budget -= check_nodes(node, budget, json_only=True)
            documents.append((node.start_mark.line + 1, loader.construct_document(node)))
    except YamlError as exc:
        raise CassetteError(path, f"document {len(documents) + 1}: {exc.message}", _RE_RECORD,
                            exc.line) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        if mark is not None:
            line = mark.line + 1
        elif isinstance(getattr(exc, "position", None), int):
            line = complete.count("\n", 0, exc.position) + 1
        else:
            line = 0
        problem = " ".join(str(part) for part in (getattr(exc, "context", None), getattr(exc, "problem", None)
                                                  or getattr(exc, "reason", None)) if part) or "a syntax error"
        if "nesting depth" in problem:  # libyaml's own bound (1,000 levels)
            problem = "the YAML is nested too deeply; write it flatter"
        raise CassetteError(path, f"is not valid YAML ({problem})", _RE_RECORD, line) from None
    finally:
        loader.dispose()
    return documents, tail


# --- writing ---------------------------------------------------------------------------------


# Characters YAML must not see raw inside a quoted scalar (non-printable, or line breaks
# that YAML would fold into spaces); JSON leaves them unescaped with ensure_ascii=False.
_YAML_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]")
_BLOCK_KEYS = frozenset({"request", "response"})
_JSON = json.JSONEncoder(ensure_ascii=False, allow_nan=False)
# What _JSON writes for a str (the C encoder when available), for the header-pair fast path.
_JSON_STR = json.encoder.encode_basestring
_EXPONENT = re.compile(r"e[+-][0-9]")  # a literal first character: a fast scan


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xD800 <= code <= 0xDFFF:  # a lone surrogate (only from broken JSON) has no YAML form
        code = 0xFFFD
    return f"\\u{code:04x}"


def _json_safe_for_yaml(value: Any) -> bool:
    """False when a float would read back as a string (YAML 1.1 floats need a dot) or is NaN/inf."""
    if isinstance(value, float):
        return "." in repr(value)
    if isinstance(value, dict):
        return all(_json_safe_for_yaml(v) for v in value.values())
    if isinstance(value, list):
        return all(_json_safe_for_yaml(v) for v in value)
    return True


def _dotless_exponent(text: str) -> bool:
    """Whether JSON ``text`` may hold a number like ``1e-05`` (an exponent and no dot, as
    repr() writes some floats), which YAML 1.1 would read back as a string. Text inside
    strings may match too ("a 1e-5"; not a uuid's "...3e-0b5f"): a match only means the
    value gets walked (``_json_safe_for_yaml``), never a wrong answer."""
    for match in _EXPONENT.finditer(text):
        start = end = match.start()
        while start and "0" <= text[start - 1] <= "9":
            start -= 1
        if start < end and (start == 0 or not (text[start - 1].isalnum()
                                               or text[start - 1] in "._")):
            return True
    return False


def _flow(value: Any) -> str:
    """``value`` as a one-line YAML flow node. JSON is used because it is valid YAML flow
    syntax and many times faster to write than PyYAML's emitter; the rare value JSON cannot
    carry faithfully (an exponent float without a dot, NaN) goes through PyYAML instead."""
    kind = type(value)  # scalars first: several per interaction, same text as _JSON's
    if kind is str:
        return _YAML_UNSAFE.sub(_escape, _JSON_STR(value))
    if kind is int:
        return int.__repr__(value)
    if kind is float:
        text = float.__repr__(value)
        if "." in text:  # finite, and YAML 1.1 reads it back as a float
            return text
    try:
        text = _JSON.encode(value)
    except ValueError:  # NaN or infinity
        pass
    else:
        # repr() of a float lacks a dot only with an exponent: walk the value only then
        if not _dotless_exponent(text) or _json_safe_for_yaml(value):
            return _YAML_UNSAFE.sub(_escape, text)
    text = yaml.dump([value], Dumper=yaml.SafeDumper, default_flow_style=True, sort_keys=False,
                     allow_unicode=False, width=1 << 30)
    return text.strip()[1:-1]


def _pair(pair: Any) -> str:
    """A header ``[name, value]`` as ``_flow`` writes it, without the general encoder's
    per-call setup (there are many per interaction)."""
    if type(pair) is list and len(pair) == 2 and type(pair[0]) is str and type(pair[1]) is str:
        return _YAML_UNSAFE.sub(_escape, f"[{_JSON_STR(pair[0])}, {_JSON_STR(pair[1])}]")
    return _flow(pair)


def dump_document(doc: dict[str, Any]) -> bytes:
    """One YAML document with explicit start (``---``) and end (``...``) markers.

    Block style for the interaction's skeleton, one header per line, flow style (JSON
    syntax) for values and JSON bodies: readable, and cheap enough to write per request.
    """
    lines = ["---"]

    def mapping(node: dict[str, Any], pad: str) -> None:
        for key, value in node.items():
            if key in _BLOCK_KEYS and isinstance(value, dict):
                lines.append(f"{pad}{key}:")
                mapping(value, pad + "  ")
            elif key == "headers" and isinstance(value, list) and value:
                lines.append(f"{pad}{key}:")
                lines.extend(f"{pad}- {_pair(pair)}" for pair in value)
            else:
                lines.append(f"{pad}{key}: {_flow(value)}")

    mapping(doc, "")
    lines.append("...\n")
    return "\n".join(lines).encode("utf-8")


def new_header(created: str, tool: str) -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, "created": created, "tool": tool,
            "placeholder": PLACEHOLDER}


def _write_some(fd: int, data: memoryview) -> int:
    """One ``write(2)``; how many bytes it took (the disk may take fewer than given)."""
    return os.write(fd, data)


class CassetteWriter:
    """Appends interactions to a new cassette; ``append`` returns once the data is on disk.

    Appends that arrive while a write is in progress are written and fsynced together
    (group commit), so concurrent responses share one fsync and none waits for a later one.
    """

    def __init__(self, path: str | os.PathLike[str], header: dict[str, Any]) -> None:
        self.path = Path(path)
        self.written = 0
        # Unbuffered: a failed append is cut off exactly (see _write), no buffer keeps it.
        self._file = open(self.path, "wb", buffering=0)  # noqa: SIM115 - closed in close()
        self._size = 0  # bytes of complete documents in the file
        self._write(dump_document(header))
        try:  # make the new directory entry durable too
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
        except OSError:
            pass
        else:
            try:
                os.fsync(dir_fd)
            except OSError:
                pass
            finally:
                os.close(dir_fd)
        self._pending: list[tuple[bytes, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    def _write(self, blob: bytes) -> None:
        """Write ``blob`` and fsync it, or leave the file as it was: on any failure (disk
        full, quota, I/O error) the file is cut back to its last complete document, so no
        client that is told its response was not recorded finds it in the cassette later."""
        fd = self._file.fileno()
        try:
            view = memoryview(blob)
            while view:
                view = view[_write_some(fd, view):]
            os.fsync(fd)
        except OSError:
            try:
                os.ftruncate(fd, self._size)  # shrinking needs no space
                os.lseek(fd, self._size, os.SEEK_SET)
                os.fsync(fd)
            except OSError:  # pragma: no cover - the reader drops a torn tail anyway
                pass
            raise
        self._size += len(blob)

    async def append(self, doc: dict[str, Any]) -> None:
        """Write ``doc`` and fsync it; raises OSError when the disk refuses."""
        data = dump_document(doc)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._pending.append((data, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush())
        await done

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await asyncio.to_thread(self._write, b"".join(data for data, _ in batch))
            except OSError as exc:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
            else:
                self.written += len(batch)
                for _, fut in batch:
                    if not fut.done():
                        fut.set_result(None)

    async def close(self) -> None:
        if self._flusher is not None:
            await asyncio.shield(self._flusher)
        self._file.close()

    def close_now(self) -> None:
        """Close without waiting (on reconfiguration); pending appends still complete first."""
        if self._flusher is not None and not self._flusher.done():
            self._flusher.add_done_callback(lambda _: self._file.close())
        else:
            self._file.close()
