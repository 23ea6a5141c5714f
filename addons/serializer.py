"""The cassette's text form: one YAML document per interaction, encoded and decoded.

As VCR.py's serializers: text in, values out, and nothing about files. ``dump_document``
writes the form the fast decoder (``read_own_format``) reads back several times faster
than YAML; anything else (a hand-edited cassette) goes through ``load_yaml``, which bounds
and checks every value before it is built. A problem is a ``DecodeError`` (what, the hint,
the line); the persister names the file.
"""

from __future__ import annotations

import io
import json
import json.scanner
import re
import sys
from typing import Any, BinaryIO

import yaml

from exportjobs.yamldoc import MAX_DEPTH, CheckedConstruction, YamlError, check_nodes

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

RE_RECORD = "re-record it with --mode record or fix that document"


class DecodeError(Exception):
    """Text that is not a cassette's: ``problem`` and ``hint`` (what to do), at ``line``."""

    def __init__(self, problem: str, hint: str, line: int = 0) -> None:
        super().__init__(problem)
        self.problem, self.hint, self.line = problem, hint, line


# --- decoding: the writer's own form, fast -----------------------------------------------------

# How many more values than its length a cassette may hold through YAML aliases; the
# writer never writes one, so this is only room for a hand edit.
_ALIAS_ALLOWANCE = 100_000
# The fast reader caches header lines that repeat (Content-Type, Host, ...): one list
# object for all of them. Bounded: cleared when it holds this many distinct lines.
_PAIR_CACHE_SIZE = 10_000


def load_own_format(data: bytes) -> list[Any] | None:
    """The documents of ``data`` as the fast reader sees them (None: not the writer's own
    format); kept for comparing the two readers."""
    read = read_own_format(io.BytesIO(data))
    return None if read is None else [doc for _, doc in read[0]]


def read_own_format(file: BinaryIO) -> tuple[list[tuple[int, dict[str, Any]]], int] | None:
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
END_MARKER = _END_BYTES  # a document's end, as the writer writes it
_SCAN = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]


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



# --- decoding: any YAML, checked -----------------------------------------------------------------


class _YamlLoader(CheckedConstruction, _Loader):  # type: ignore[misc, valid-type]
    """The cassette's YAML reader: libyaml when available, values a tag cannot build named."""


def _decode(data: bytes) -> str:
    """``data`` as text, or a ``DecodeError`` saying what it is instead."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DecodeError("is UTF-16 text", "convert it to UTF-8 (iconv -f UTF-16 -t UTF-8) "
                            "or re-record it with --mode record")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise DecodeError("holds a NUL character: it is binary (or UTF-16) data, not a "
                            "cassette", "pass the file --mode record writes", data.count(b"\n", 0, nul) + 1)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DecodeError(f"is not UTF-8 text (byte 0x{data[exc.start]:02x} is not text)",
                            "a cassette is the UTF-8 YAML --mode record writes; pass that file",
                            line) from None
    return text


def load_yaml(data: bytes) -> tuple[list[tuple[int, Any]], int]:
    """Any YAML stream (hand-edited cassettes land here), each document bounded and checked
    (``check_nodes``: JSON values only, aliases and nesting bounded) before it is built.

    Only the part up to the last end marker is read (the rest is a torn tail: a crash may
    have cut it anywhere, even inside a character); a file without any is still decoded,
    so that binary data or UTF-16 is named as such rather than as an empty cassette."""
    cut = max((m.end() for m in _END_BYTES.finditer(data, max(0, len(data) - _BLOCK))), default=-1)
    if cut < 0:
        cut = max((m.end() for m in _END_BYTES.finditer(data)), default=-1)
    if cut < 0:
        _decode(data)
        return [], len(data) if data.strip() else 0
    complete = _decode(data[:cut])
    tail = len(data) - cut if data[cut:].strip() else 0
    documents: list[tuple[int, Any]] = []
    budget = len(complete) + _ALIAS_ALLOWANCE
    try:
        loader = _YamlLoader(complete)
    except yaml.YAMLError as exc:
        raise DecodeError(f"is not valid YAML ({exc})", RE_RECORD) from None
    try:
        while loader.check_node():
            node = loader.get_node()
            budget -= check_nodes(node, budget, json_only=True)
            documents.append((node.start_mark.line + 1, loader.construct_document(node)))
    except YamlError as exc:
        raise DecodeError(f"document {len(documents) + 1}: {exc.message}", RE_RECORD,
                            exc.line) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        if mark is not None:
            line = mark.line + 1
        elif isinstance(position := getattr(exc, "position", None), int):
            line = complete.count("\n", 0, position) + 1
        else:
            line = 0
        problem = " ".join(str(part) for part in (getattr(exc, "context", None), getattr(exc, "problem", None)
                                                  or getattr(exc, "reason", None)) if part) or "a syntax error"
        if "nesting depth" in problem:  # libyaml's own bound (1,000 levels)
            problem = "the YAML is nested too deeply; write it flatter"
        raise DecodeError(f"is not valid YAML ({problem})", RE_RECORD, line) from None
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


__all__ = ["END_MARKER", "RE_RECORD", "DecodeError", "dump_document", "load_own_format", "load_yaml",
           "read_own_format"]
