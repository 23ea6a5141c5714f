"""JSON as Graph bodies need it: compact when written, depth-bounded when read."""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

# Graph's own JSON reader refuses documents nested deeper than a limit; any exportJobs or
# control body is one or two levels deep. Checking the depth before parsing keeps
# ``json.loads`` from meeting Python's recursion limit (a RecursionError, not a ValueError).
MAX_JSON_DEPTH = 64
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_BRACKET_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


class JsonTooDeep(ValueError):
    """A JSON document nests deeper than ``MAX_JSON_DEPTH``."""


def json_depth(raw: bytes) -> int:
    """How deep ``raw`` nests arrays and objects (brackets inside strings do not count).

    Bounded by the input's length, in C-speed passes: a body with few brackets (every
    real one) returns after two ``count`` calls.
    """
    opened = raw.count(b"[") + raw.count(b"{")
    if opened <= MAX_JSON_DEPTH:
        return opened
    brackets = _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    depth = deepest = 0
    for depth in itertools.accumulate(map(_BRACKET_STEP.__getitem__, brackets)):
        if depth > deepest:
            deepest = depth
            if deepest > MAX_JSON_DEPTH:
                break
    return deepest


def load_json(raw: bytes | str) -> Any:
    """``json.loads`` that refuses nesting past ``MAX_JSON_DEPTH`` with ``JsonTooDeep``.

    Every failure is a ``ValueError`` (bad syntax, bad UTF-8, too deep, an integer past
    Python's digit limit), so callers map one exception to one Graph error.
    """
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if json_depth(data) > MAX_JSON_DEPTH:
        raise JsonTooDeep(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(raw)
    except RecursionError:  # unreachable after the depth check; kept as a ValueError
        raise JsonTooDeep(f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None


_COMPACT = json.JSONEncoder(separators=(",", ":"))
# json.dumps builds an encoder, and the encoder a C encoder, on every call; every response
# body goes through here, so build the C one once. Our payloads never hold cycles, so it
# skips the circular check (markers=None); the text is the same either way.
_MAKE_ENCODER = getattr(json.encoder, "c_make_encoder", None)  # private: absent from the stubs
_C_COMPACT = (
    None
    if _MAKE_ENCODER is None
    else _MAKE_ENCODER(
        None, _COMPACT.default, json.encoder.encode_basestring_ascii, None, ":", ",",
        False, False, True,
    )
)


def compact_json(payload: object) -> bytes:
    """``payload`` as compact JSON bytes, the same as ``json.dumps(payload, separators=(",", ":"))``."""
    if _C_COMPACT is None or not isinstance(payload, (dict, list)):
        return _COMPACT.encode(payload).encode()
    return "".join(_C_COMPACT(payload, 0)).encode()
