"""Generated requests against a real emulator over a real socket: never a 5xx.

Methods, paths under and around the exportJobs collection, query strings, headers
(Content-Type, Content-Encoding with bodies that do or do not decode, JWT-ish
Authorization values whose segments hold random or deeply nested JSON, Expect,
X-Forwarded-Host, client-request-id, all with arbitrary bytes) and bodies (random bytes,
JSON, JSON nested far past any limit). Every answer is below 500; every 4xx has Graph's
error shape; nothing is logged at WARNING or above; a normal create works afterwards.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import uuid
import zlib
from urllib.parse import quote, urlsplit

import brotlicffi
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.wire import (
    COLLECTION,
    assert_graph_error,
    background_emulator,
    build_request,
    exchange,
    parse_reply,
    valid_create,
)

URL_HOST = re.compile(r"[A-Za-z0-9._-]+(?::[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?")
JOB_ID = "eyJfdHlwZSI6IkV4cG9ydEpvYiIsImlkIjoiMSJ9"
SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=False,
)


@pytest.fixture(scope="module")
def served():
    with background_emulator() as running:
        yield running


# --- strategies -----------------------------------------------------------------------------

# Bytes a header value can carry on the wire (no CR, LF or NUL; anything else goes).
header_bytes = st.binary(max_size=60).map(
    lambda b: b.replace(b"\r", b"").replace(b"\n", b"").replace(b"\0", b"").strip())


def deep_json(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth if depth % 2 else b"[" * depth + b"]" * depth


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                 max_size=4),
    max_leaves=12,
)
create_like = st.fixed_dictionaries(
    {},
    optional={
        "goalsOrganizationId": st.sampled_from([str(uuid.uuid4()), "x", ""]) | json_values,
        "explorerViewId": st.sampled_from([str(uuid.uuid4())]) | json_values,
        "@odata.type": st.just("#microsoft.graph.goalsExportJob"),
    },
)
json_bytes = (json_values | create_like).map(lambda v: json.dumps(v).encode())
# Depths around the limit (64) and around and far past Python's recursion limit (1,000).
deep_bodies = (st.sampled_from([65, 950, 1100, 5000, 40_000]) | st.integers(60, 5000)).map(deep_json)
bodies = st.one_of(st.none(), st.binary(max_size=300), json_bytes, deep_bodies)


def segment(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


jwt_segment = st.one_of(
    json_bytes.map(segment),
    # A header line holds 8 KiB: past ~1,500 levels the line, not the JSON, is refused.
    (st.sampled_from([65, 950, 1100, 1500]) | st.integers(60, 1500)).map(deep_json).map(segment),
    st.binary(max_size=40).map(segment),
    st.text(alphabet="ABCDEFabc012-_=!.%", max_size=20),
)
authorization = st.one_of(
    st.just(b"Bearer opaque"),
    st.tuples(jwt_segment, jwt_segment, jwt_segment).map(lambda t: ("Bearer " + ".".join(t)).encode()),
    header_bytes.map(lambda b: b"Bearer " + b),
    header_bytes,
)
path_words = st.sampled_from([
    COLLECTION, COLLECTION.lower(), COLLECTION + "/", f"{COLLECTION}/{JOB_ID}",
    f"{COLLECTION}/{JOB_ID}/content", f"{COLLECTION}/j!{JOB_ID}", "/v1.0/employeeExperience/goals/exportJobs",
    "/beta", "/", "/_emulator", "/_emulator/reset", "/_emulator/clock/advance",
    f"/_emulator/jobs/{JOB_ID}/fail", "/_emulator/arrivals", "/_emulator/organizations",
])
paths = st.one_of(
    path_words.map(str.encode),
    st.tuples(path_words, st.text(max_size=20)).map(
        lambda t: (t[0] + "/" + quote(t[1], safe="")).encode()),
    st.tuples(path_words, st.binary(max_size=12)).map(
        lambda t: t[0].encode() + b"/" + bytes(c for c in t[1] if c > 0x20 and c != 0x7f)),
)
query_values = st.text(max_size=40).map(lambda s: quote(s, safe=""))
queries = st.one_of(
    st.just(""),
    st.tuples(st.sampled_from(["$filter", "$select", "$top", "x"]), query_values).map(
        lambda t: f"?{t[0]}={t[1]}"),
    st.sampled_from(["?$filter=goalsOrganizationId eq 'x'".replace(" ", "%20"),
                     "?$select=id,status", "?%zz", "?a=%ff%fe", "?$filter="]),
)
methods = st.one_of(
    st.sampled_from([b"GET", b"POST", b"PUT", b"PATCH", b"DELETE", b"HEAD", b"OPTIONS"]),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=8).map(str.encode),
)
content_types = st.one_of(
    st.sampled_from([b"application/json", b"application/json; charset=utf-8", b"text/plain",
                     b"application/x-www-form-urlencoded", b"multipart/form-data; boundary=x"]),
    header_bytes,
)
encodings = st.sampled_from(["gzip", "deflate", "br", "zstd", "identity", "compress", "x"])


def encode(body: bytes, encoding: str) -> bytes:
    return {"gzip": gzip.compress, "deflate": zlib.compress, "br": brotlicffi.compress}.get(
        encoding, lambda b: b)(body)


ANCHORS = {
    "create": (b"POST", COLLECTION, None),  # body: a fresh pair, drawn below
    "list": (b"GET", COLLECTION, None),
    "get": (b"GET", f"{COLLECTION}/{JOB_ID}", None),
    "content": (b"GET", f"{COLLECTION}/{JOB_ID}/content", None),
    "advance": (b"POST", "/_emulator/clock/advance", b'{"seconds": 0}'),
    "organizations": (b"PUT", "/_emulator/organizations", b'{"known": null}'),
}
MUTATIONS = ["body", "encoding", "auth", "forwarded", "expect", "client-id", "query",
             "content-type"]


@st.composite
def anchored_requests(draw) -> tuple[bytes, bytes]:
    """A request the emulator would accept, with one or two parts made hostile: so the
    generated input reaches the handlers (body decoding, JSON, tokens, Location), not only
    the router."""
    kind = draw(st.sampled_from(sorted(ANCHORS)))
    method, path, body = ANCHORS[kind]
    if kind == "create":
        body = json.dumps({"goalsOrganizationId": str(draw(st.uuids())),
                           "explorerViewId": str(draw(st.uuids()))}).encode()
    headers = {b"Authorization": b"Bearer opaque", b"Content-Type": b"application/json"}
    target = path.encode()
    for mutation in sorted(draw(st.sets(st.sampled_from(MUTATIONS), min_size=1, max_size=2))):
        if mutation == "body":
            body = draw(st.one_of(bodies, deep_bodies))
        elif mutation == "encoding":
            encoding = draw(encodings)
            raw = body if body is not None else b"{}"
            body = encode(raw, encoding) if draw(st.booleans()) else draw(st.binary(max_size=40))
            headers[b"Content-Encoding"] = encoding.encode()
        elif mutation == "auth":
            headers[b"Authorization"] = draw(authorization)
        elif mutation == "forwarded":
            headers[b"X-Forwarded-Host"] = draw(header_bytes | st.sampled_from(
                [b"", b" ", b"a b", b"a/b", b"u@h", b"\xc3\xa9", b"[::1", b"h:123456", b"?x"]))
            if draw(st.booleans()):
                headers[b"X-Forwarded-Proto"] = draw(header_bytes)
        elif mutation == "expect":
            headers[b"Expect"] = draw(header_bytes)
        elif mutation == "client-id":
            headers[b"client-request-id"] = draw(header_bytes)
        elif mutation == "query":
            target += draw(queries).encode()
        elif mutation == "content-type":
            headers[b"Content-Type"] = draw(content_types)
    return method, build_request(method, target, headers.items(), body)


@st.composite
def requests(draw) -> tuple[bytes, bytes]:
    if draw(st.booleans()):
        return draw(anchored_requests())
    method = draw(methods)
    target = draw(paths) + draw(queries).encode()
    headers: list[tuple[bytes, bytes]] = []
    if draw(st.booleans()):
        headers.append((b"Authorization", draw(authorization)))
    if draw(st.booleans()):
        headers.append((b"Content-Type", draw(content_types)))
    body = draw(bodies)
    if body is not None and draw(st.booleans()):
        encoding = draw(encodings)
        if draw(st.booleans()):
            body = encode(body, encoding)  # a body that decodes (when the coding is known)
        headers.append((b"Content-Encoding", encoding.encode()))
    for name in (b"Expect", b"X-Forwarded-Host", b"X-Forwarded-Proto", b"client-request-id"):
        if draw(st.integers(0, 3)) == 0:
            headers.append((name, draw(header_bytes)))
    return method, build_request(method, target, headers, body)


# --- properties -----------------------------------------------------------------------------


@SETTINGS
@given(req=requests())
def test_generated_requests_never_get_a_5xx(served, req):
    method, data = req
    reply = parse_reply(exchange(served.port, data), head=method == b"HEAD")
    assert reply.status < 500, (reply, data[:500])
    if reply.status >= 400 and method != b"HEAD":
        assert_graph_error(reply)
    location = reply.headers.get("location")
    if location is not None:  # an absolute URL of a job under the collection the client named
        parts = urlsplit(location)
        assert parts.scheme in ("http", "https") and URL_HOST.fullmatch(parts.netloc), location
        assert parts.path.lower().startswith(COLLECTION.lower() + "/"), location
    assert not served.errors.records, served.errors.text()


def test_the_server_still_serves_a_normal_create_afterwards(served):
    reply = valid_create(served.port, str(uuid.uuid4()), str(uuid.uuid4()))
    assert reply.status == 201, reply
    assert reply.json()["status"] == "notStarted"
    assert not served.errors.records, served.errors.text()
