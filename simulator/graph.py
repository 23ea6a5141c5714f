"""Microsoft Graph conventions shared by the emulator, the proxy addon and the simulator.

The one place that knows what a Graph error body looks like, which headers every Graph
response carries, and what the exportJobs resource calls its properties.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import random
import re
import time
from datetime import datetime, timezone
from typing import Any

ODATA_TYPE = "#microsoft.graph.goalsExportJob"

# Properties of goalsExportJob, in the order Graph documents them.
JOB_PROPERTIES = (
    "id",
    "status",
    "createdDateTime",
    "expirationDateTime",
    "goalsOrganizationId",
    "explorerViewId",
    "resourceLocation",
)

PENDING_STATUSES = frozenset({"notStarted", "running"})

_GUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)

JSON_CONTENT_TYPE = "application/json; charset=utf-8"

# Graph's error code and message for statuses that are not particular to exportJobs.
HTTP_ERRORS: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "The request could not be read."),
    405: ("BadRequest", "The HTTP method is not allowed for the request URI."),
    413: ("RequestEntityTooLarge", "The request body is larger than the service accepts."),
    415: ("unsupportedMediaType", "The request body's media type or content encoding is not supported."),
    417: ("BadRequest", "Only 'Expect: 100-continue' is supported."),
    431: ("BadRequest", "The request's headers are larger than the service accepts."),
    429: ("TooManyRequests", "Please retry again later."),
    503: ("ServiceUnavailable", "The service is temporarily unavailable. Please retry later."),
    504: ("GatewayTimeout", "The service did not respond in time. Please retry later."),
}


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


def is_guid(value: object) -> bool:
    """True for a GUID string in Graph's 8-4-4-4-12 form (braces are not accepted)."""
    return isinstance(value, str) and _GUID_RE.match(value) is not None


# Request ids need to be unique, not secret: a generator seeded once from the OS draws
# them without a system call per response (``os.urandom`` costs a create about 10 µs).
_request_ids = random.Random()
os.register_at_fork(after_in_child=_request_ids.seed)  # a forked child must not repeat ours
_VERSION_4 = (0x4000 << 64) | (0x8000 << 48)  # the version nibble and the RFC 4122 variant
_NOT_VERSION_BITS = ~((0xF000 << 64) | (0xC000 << 48))


def new_request_id() -> str:
    """A random version-4 GUID in ``str(uuid.uuid4())`` form (every response needs one)."""
    h = f"{_request_ids.getrandbits(128) & _NOT_VERSION_BITS | _VERSION_4:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def graph_date(moment: datetime | None = None) -> str:
    """ISO 8601 UTC with a Z, as Graph writes timestamps (``2023-06-19T12:06:03.0024Z``)."""
    if moment is None:  # now: every error body has one, so take graph_time's cheaper path
        return graph_time(time.time())
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-2] + "Z"


# The last whole second graph_time formatted: consecutive creates mostly share it.
_last_second: tuple[int, str] = (0, "1970-01-01T00:00:00")


def graph_time(epoch_s: float) -> str:
    """``graph_date`` of a Unix timestamp, without building a datetime (a create hot path).

    Rounds to the microsecond exactly as ``datetime.fromtimestamp`` does (half to even),
    so the text is the same as ``graph_date(datetime.fromtimestamp(epoch_s, utc))``.
    """
    global _last_second
    frac, whole = math.modf(epoch_s)
    second, us = int(whole), round(frac * 1e6)
    if us >= 1_000_000:
        second, us = second + 1, us - 1_000_000
    elif us < 0:
        second, us = second - 1, us + 1_000_000
    if _last_second[0] != second:
        _last_second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{_last_second[1]}.{us // 100:04d}Z"


_COMPACT = json.JSONEncoder(separators=(",", ":"))
# json.dumps builds an encoder, and the encoder a C encoder, on every call; every response
# body goes through here, so build the C one once. Our payloads never hold cycles, so it
# skips the circular check (markers=None); the text is the same either way.
_C_COMPACT = (
    None
    if json.encoder.c_make_encoder is None
    else json.encoder.c_make_encoder(
        None, _COMPACT.default, json.encoder.encode_basestring_ascii, None, ":", ",",
        False, False, True,
    )
)


def compact_json(payload: object) -> bytes:
    """``payload`` as compact JSON bytes, the same as ``json.dumps(payload, separators=(",", ":"))``."""
    if _C_COMPACT is None or not isinstance(payload, (dict, list)):
        return _COMPACT.encode(payload).encode()
    return "".join(_C_COMPACT(payload, 0)).encode()


def error_body(
    code: str,
    message: str,
    *,
    inner_code: str | None = None,
    target: str | None = None,
    request_id: str | None = None,
    client_request_id: str | None = None,
    inner_key: str = "innerError",
) -> dict[str, Any]:
    """A Graph error body: ``{"error": {code, message, target?, innerError: {...}}}``.

    ``inner_key`` exists because Graph's own 409 example spells it ``innererror``.
    """
    inner: dict[str, Any] = {}
    if inner_code is not None:
        inner["code"] = inner_code
    inner["date"] = graph_date()[:19]
    inner["request-id"] = request_id or new_request_id()
    inner["client-request-id"] = client_request_id or inner["request-id"]
    error: dict[str, Any] = {"code": code, "message": message}
    if target is not None:
        error["target"] = target
    error[inner_key] = inner
    return {"error": error}


def error_json(*args: Any, **kwargs: Any) -> bytes:
    """``error_body`` encoded as compact UTF-8 JSON bytes."""
    return compact_json(error_body(*args, **kwargs))


class GraphError(Exception):
    """A Graph error response waiting to be rendered: raise it, let the server render it."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        inner_code: str | None = None,
        target: str | None = None,
        headers: dict[str, str] | None = None,
        inner_key: str = "innerError",
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.inner_code = inner_code
        self.target = target
        self.headers = headers or {}
        self.inner_key = inner_key

    def body(self, request_id: str | None = None, client_request_id: str | None = None) -> bytes:
        return error_json(
            self.code,
            self.message,
            inner_code=self.inner_code,
            target=self.target,
            request_id=request_id,
            client_request_id=client_request_id,
            inner_key=self.inner_key,
        )
