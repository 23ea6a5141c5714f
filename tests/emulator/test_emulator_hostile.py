"""Hostile and careless input, sent byte for byte over a real socket: always a Graph 4xx.

Each case once gave a 500, a plain-text aiohttp answer, a traceback in the log or a
``Location: http:///...``. Nothing here may log at WARNING or above.
"""

from __future__ import annotations

import base64
import gzip
import json
import socket
import time
import uuid
import zlib
from urllib.parse import urlsplit

import brotlicffi
import pytest

from exportjobs.graph import MAX_JSON_DEPTH, is_guid
from exportjobs.simulator.emulator.auth import fake_token
from tests.support.wire import (
    COLLECTION,
    assert_graph_error,
    background_emulator,
    exchange,
    parse_reply,
    request,
    valid_create,
)

JSON = ("Content-Type", "application/json")
AUTH = ("Authorization", "Bearer opaque")


@pytest.fixture(scope="module")
def served():
    with background_emulator() as running:
        yield running


@pytest.fixture(autouse=True)
def nothing_logged(served):
    """Every test here ends with no WARNING/ERROR record (no traceback) from the server."""
    served.errors.records.clear()
    yield
    assert not served.errors.records, served.errors.text()


def pair() -> bytes:
    return json.dumps({"goalsOrganizationId": str(uuid.uuid4()),
                       "explorerViewId": str(uuid.uuid4())}).encode()


def deep(depth: int, kind: str = "array") -> bytes:
    if kind == "array":
        return b"[" * depth + b"]" * depth
    return b'{"seconds":' * depth + b"1" + b"}" * depth


def segment(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# --- JSON nesting ----------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 950, 50_000])
@pytest.mark.parametrize("kind", ["array", "object"])
def test_deeply_nested_create_body_is_400(served, depth, kind):
    reply = request(served.port, "POST", COLLECTION, [AUTH, JSON], deep(depth, kind))
    assert reply.status == 400, reply
    assert "deeper than" in assert_graph_error(reply)["message"]


def test_nesting_within_the_limit_is_judged_on_its_content(served):
    body = json.dumps({"goalsOrganizationId": [[[1]]], "explorerViewId": "x"}).encode()
    reply = request(served.port, "POST", COLLECTION, [AUTH, JSON], body)
    assert reply.status == 400
    assert assert_graph_error(reply)["code"] == "badRequest"  # the field check, not depth


@pytest.mark.parametrize("depth", [950, 50_000])
@pytest.mark.parametrize("path, method", [("/_emulator/clock/advance", "POST"),
                                          ("/_emulator/organizations", "PUT"),
                                          (f"/_emulator/jobs/{'x'}/fail", "POST")])
def test_deeply_nested_control_body_is_400(served, depth, path, method):
    if "jobs" in path:  # the body is read once the job exists
        created = valid_create(served.port, str(uuid.uuid4()), str(uuid.uuid4()))
        path = f"/_emulator/jobs/{created.json()['id']}/fail"
    reply = request(served.port, method, path, [JSON], deep(depth, "object"))
    assert reply.status == 400, reply
    assert "nest at most" in assert_graph_error(reply)["message"]


# A header line holds at most 8 KiB, so 2,000 levels is about the deepest a JWT can carry.
@pytest.mark.parametrize("depth", [950, 2000])
def test_deeply_nested_jwt_claims_are_401(served, depth):
    header = segment(b'{"typ":"JWT","alg":"none"}')
    token = f"{header}.{segment(deep(depth))}.sig"
    reply = request(served.port, "GET", COLLECTION, [("Authorization", f"Bearer {token}")])
    assert reply.status == 401, reply
    assert assert_graph_error(reply)["code"] == "InvalidAuthenticationToken"


@pytest.mark.parametrize("depth", [950, 1200])
def test_deeply_nested_jwt_header_is_not_a_jwt(served, depth):
    """A first segment that is not a JWT header makes the token opaque, as before."""
    token = f"{segment(deep(depth))}.{segment(deep(depth))}.sig"
    reply = request(served.port, "GET", COLLECTION, [("Authorization", f"Bearer {token}")])
    assert reply.status == 200, reply


# --- Content-Encoding ------------------------------------------------------------------------


@pytest.mark.parametrize("encoding, compress", [
    ("br", brotlicffi.compress), ("gzip", gzip.compress), ("deflate", zlib.compress),
])
def test_a_body_in_a_supported_coding_is_decoded(served, encoding, compress):
    reply = request(served.port, "POST", COLLECTION,
                    [AUTH, JSON, ("Content-Encoding", encoding)], compress(pair()))
    assert reply.status == 201, reply


@pytest.mark.parametrize("encoding, body", [
    ("br", b"\xa6\x1d\x8c\xf2\xaf\x7f\xc2"),  # not brotli
    ("gzip", b"definitely not gzip"),
    ("deflate", b"\xff\xff not deflate"),
])
@pytest.mark.parametrize("method, path", [("POST", COLLECTION), ("GET", COLLECTION),
                                          ("PATCH", COLLECTION), ("POST", "/_emulator/clock/advance")])
def test_an_undecodable_body_is_400(served, encoding, body, method, path):
    reply = request(served.port, method, path, [AUTH, JSON, ("Content-Encoding", encoding)], body)
    assert 400 <= reply.status < 500, reply
    error = assert_graph_error(reply)
    if method != "PATCH":  # PATCH is refused (405) before its body matters
        assert reply.status == 400 and encoding in error["message"], error
    assert reply.headers.get("connection") == "close"


@pytest.mark.parametrize("encoding, body", [
    ("br", brotlicffi.compress(pair())[:-3]), ("gzip", gzip.compress(pair())[:-10]),
])
def test_a_body_cut_short_in_its_coding_is_400(served, encoding, body):
    """The decoders hand over what they could decode: the JSON check finds it incomplete."""
    reply = request(served.port, "POST", COLLECTION, [AUTH, JSON, ("Content-Encoding", encoding)], body)
    assert reply.status == 400, reply
    assert_graph_error(reply)


@pytest.mark.parametrize("encoding", ["zstd", "compress"])
def test_an_unsupported_coding_is_415(served, encoding):
    """Whether or not aiohttp could decode it (zstd: where backports.zstd is installed)."""
    reply = request(served.port, "POST", COLLECTION, [AUTH, JSON, ("Content-Encoding", encoding)],
                    b"(\xb5/\xfd")
    assert reply.status == 415, reply
    assert assert_graph_error(reply)["code"] == "unsupportedMediaType"


def test_a_gzip_bomb_is_413(served):
    body = gzip.compress(b'{"goalsOrganizationId":"' + b" " * (8 * 1024 * 1024) + b'"}')
    reply = request(served.port, "POST", COLLECTION, [AUTH, JSON, ("Content-Encoding", "gzip")], body)
    assert reply.status == 413, reply
    assert assert_graph_error(reply)["code"] == "RequestEntityTooLarge"


# --- headers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [b"\xff\xfe", b"100-continue\xc3", b"x", b"\xc3\xa9"])
def test_an_unknown_expectation_is_a_graph_417(served, value):
    reply = request(served.port, "POST", COLLECTION, [AUTH, JSON, ("Expect", value)], pair())
    assert reply.status == 417, reply
    assert_graph_error(reply)


def test_expect_100_continue_still_works(served):
    reply = request(served.port, "POST", COLLECTION, [AUTH, JSON, ("Expect", "100-Continue")], pair())
    assert reply.status == 201, reply


@pytest.mark.parametrize("value", [b"\xff\xfe", b"x" * 500, b"a\tb"])
def test_an_unechoable_client_request_id_gets_a_fresh_one(served, value):
    reply = request(served.port, "GET", COLLECTION, [AUTH, ("client-request-id", value)])
    assert reply.status == 200, reply
    assert is_guid(reply.headers["client-request-id"])


@pytest.mark.parametrize("forwarded", [
    b"", b" ", b"a b", b"evil/path", b"user@host", b"\xc3\xa9.example", b"[::1",
    b"host:99999999", b"?", b"#frag", b"h\tx",
])
def test_an_invalid_forwarded_host_is_ignored(served, forwarded):
    reply = request(served.port, "POST", COLLECTION,
                    [AUTH, JSON, ("X-Forwarded-Host", forwarded)], pair())
    assert reply.status == 201, reply
    location = urlsplit(reply.headers["location"])
    assert (location.scheme, location.netloc) == ("http", "127.0.0.1"), location
    assert reply.json()["id"] in location.path


@pytest.mark.parametrize("forwarded, netloc", [
    (b"proxy.example:8443", "proxy.example:8443"), (b"[::1]:9000", "[::1]:9000"),
    (b"a.example, b.example", "a.example"),
])
def test_a_valid_forwarded_host_is_used(served, forwarded, netloc):
    reply = request(served.port, "POST", COLLECTION,
                    [AUTH, JSON, ("X-Forwarded-Host", forwarded), ("X-Forwarded-Proto", "https")],
                    pair())
    assert reply.status == 201
    assert urlsplit(reply.headers["location"]).netloc == netloc


@pytest.mark.parametrize("path", [
    COLLECTION + "/%0A", "/%0A", "/_emulator/%0A", "/_emulator/jobs/%0A/fail",
])
def test_a_path_no_route_pattern_matches_still_gets_a_graph_error(served, path):
    """A decoded newline slips past the catch-all routes' patterns: aiohttp's router finds
    no route and raises its own 404, which must still be answered in Graph's shape."""
    reply = request(served.port, "GET", path, [AUTH])
    assert 400 <= reply.status < 500, reply
    assert_graph_error(reply)


def test_each_request_gets_the_base_url_of_its_own_headers(served):
    """The scheme and host are worked out once per set of header values and remembered:
    requests alternating between sets each get their own, never a neighbour's."""
    cases = [
        ([("X-Forwarded-Host", b"a.example"), ("X-Forwarded-Proto", b"https")], "https://a.example"),
        ([("X-Forwarded-Host", b"a.example")], "http://a.example"),
        ([("X-Forwarded-Host", b"b.example:8443"), ("X-Forwarded-Proto", b"https")],
         "https://b.example:8443"),
        ([("X-Forwarded-Proto", b"https")], "https://127.0.0.1"),
        ([("X-Forwarded-Host", b"evil/path")], "http://127.0.0.1"),
    ]
    for headers, base in cases * 2:
        reply = request(served.port, "POST", COLLECTION, [AUTH, JSON, *headers], pair())
        assert reply.status == 201, reply
        assert reply.headers["location"].startswith(f"{base}{COLLECTION}/"), (headers, reply)
        assert reply.json()["@odata.context"].startswith(f"{base}/beta/$metadata#"), headers


# --- what aiohttp answers itself ------------------------------------------------------------


@pytest.mark.parametrize("raw", [
    b"GARBAGE\r\n\r\n",
    b"GET / HTTP/9.9\r\n\r\n",
    b"GET " + COLLECTION.encode() + b" HTTP/1.1\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",
    b"GET " + COLLECTION.encode() + b" HTTP/1.1\r\n" + b"".join(
        b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n",
    b"GET /\x00 HTTP/1.1\r\n\r\n",
    b"POST " + COLLECTION.encode() + b" HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
])
def test_protocol_errors_are_graph_shaped(served, raw):
    reply = parse_reply(exchange(served.port, raw))
    assert 400 <= reply.status < 500, reply
    assert_graph_error(reply)


# --- a client that hangs up --------------------------------------------------------------------


@pytest.mark.parametrize("path", [COLLECTION, "/_emulator/clock/advance"])
def test_a_client_hanging_up_mid_body_is_one_quiet_line(served, path):
    served.errors.infos.clear()
    head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer opaque\r\n"
            "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", served.port)) as sock:
        sock.sendall(head + b'{"goalsOrganizationId": "')
        time.sleep(0.05)  # the handler is waiting for the rest of the body
    deadline = time.monotonic() + 5
    while not served.errors.infos and time.monotonic() < deadline:
        time.sleep(0.01)
    assert any("closed the connection" in r.getMessage() for r in served.errors.infos)
    assert valid_create(served.port, str(uuid.uuid4()), str(uuid.uuid4())).status == 201


# --- the last resort -------------------------------------------------------------------------


def test_a_bug_in_a_handler_is_a_logged_graph_error(served, monkeypatch):
    """No input is known to reach it; should a bug, it is Graph-shaped and logged once."""
    from exportjobs.simulator.emulator import handlers

    async def broken(request, route):
        raise KeyError("a bug")

    monkeypatch.setitem(handlers._HANDLERS, ("collection", "GET"), broken)
    reply = request(served.port, "GET", COLLECTION, [AUTH])
    assert reply.status == 500
    assert assert_graph_error(reply)["code"] == "generalException"
    logged = list(served.errors.records)
    served.errors.records.clear()  # expected here, and only here
    assert len(logged) == 1 and logged[0].exc_info, logged
    assert "unhandled error for GET" in logged[0].getMessage()


def test_still_serving(served):
    token = fake_token()
    reply = request(served.port, "GET", COLLECTION, [("Authorization", f"Bearer {token}")])
    assert reply.status == 200 and isinstance(reply.json()["value"], list)
