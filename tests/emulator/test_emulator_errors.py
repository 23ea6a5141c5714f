"""Auth, malformed input and unknown routes: always a Graph error, never a 500."""

from __future__ import annotations

import asyncio
import re

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exportjobs.graph import compact_json, error_body, error_json, is_guid
from exportjobs.simulator.emulator.auth import READ, READ_WRITE, fake_token
from tests.support.emulator import COLLECTION, new_pair


async def call(emulator, method, path, *, token="opaque", **kwargs):
    headers = kwargs.pop("headers", {})
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with aiohttp.ClientSession() as s:
        async with s.request(method, f"{emulator.url}{path}", headers=headers, **kwargs) as r:
            return r.status, r.headers, await r.read()


def assert_graph_error(status, headers, raw, expected_status, code):
    import json

    assert status == expected_status, raw
    assert headers["Content-Type"].startswith("application/json")
    assert is_guid(headers["request-id"]) and headers["client-request-id"]
    body = json.loads(raw)
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert is_guid(body["error"]["innerError"]["request-id"])
    return body


class TestAuth:
    async def test_no_token_is_401(self, emulator):
        for method, path in (("POST", COLLECTION), ("GET", COLLECTION)):
            r = await call(emulator, method, path, token=None, json=new_pair())
            assert_graph_error(*r, 401, "InvalidAuthenticationToken")

    async def test_non_bearer_scheme_is_401(self, emulator):
        r = await call(emulator, "GET", COLLECTION, token=None,
                       headers={"Authorization": "Basic dXNlcjpwYXNz"})
        assert_graph_error(*r, 401, "InvalidAuthenticationToken")

    async def test_opaque_token_passes(self, emulator):
        r = await call(emulator, "POST", COLLECTION, token="EwBwA8l6BAAU-opaque", json=new_pair())
        assert r[0] == 201

    async def test_read_scope_cannot_create(self, emulator):
        r = await call(emulator, "POST", COLLECTION, token=fake_token(READ), json=new_pair())
        assert_graph_error(*r, 403, "Authorization_RequestDenied")

    async def test_read_scope_can_list_and_readwrite_can_do_both(self, emulator):
        assert (await call(emulator, "GET", COLLECTION, token=fake_token(READ)))[0] == 200
        assert (await call(emulator, "GET", COLLECTION, token=fake_token(READ_WRITE)))[0] == 200
        r = await call(emulator, "POST", COLLECTION, token=fake_token(READ_WRITE), json=new_pair())
        assert r[0] == 201

    async def test_app_only_token_without_scp_is_403(self, emulator):
        token = fake_token("", roles=["Goals-Export.ReadWrite.All"])
        r = await call(emulator, "GET", COLLECTION, token=token)
        assert_graph_error(*r, 403, "Authorization_RequestDenied")

    async def test_expired_jwt_is_401(self, emulator):
        r = await call(emulator, "GET", COLLECTION, token=fake_token(lifetime_s=-60))
        body = assert_graph_error(*r, 401, "InvalidAuthenticationToken")
        assert "expired" in body["error"]["message"]

    async def test_unreadable_jwt_claims_are_401(self, emulator):
        header = fake_token().split(".")[0]
        r = await call(emulator, "GET", COLLECTION, token=f"{header}.!!!.sig")
        assert_graph_error(*r, 401, "InvalidAuthenticationToken")


class TestMalformedRequests:
    async def test_malformed_json_is_400(self, emulator):
        r = await call(emulator, "POST", COLLECTION, data=b"{not json",
                       headers={"Content-Type": "application/json"})
        body = assert_graph_error(*r, 400, "BadRequest")
        assert "valid JSON" in body["error"]["message"]

    @pytest.mark.parametrize("payload", [b"[1, 2]", b'"text"', b"", b"\xff\xfe"])
    async def test_json_that_is_not_an_object_is_400(self, emulator, payload):
        r = await call(emulator, "POST", COLLECTION, data=payload,
                       headers={"Content-Type": "application/json"})
        assert_graph_error(*r, 400, "BadRequest")

    async def test_wrong_content_type_is_415(self, emulator):
        r = await call(emulator, "POST", COLLECTION, data=b"goalsOrganizationId=x",
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
        body = assert_graph_error(*r, 415, "unsupportedMediaType")
        assert "application/json" in body["error"]["message"]

    async def test_oversized_body_is_413(self, emulator):
        r = await call(emulator, "POST", COLLECTION, data=b"{" + b" " * (2 * 1024 * 1024) + b"}",
                       headers={"Content-Type": "application/json"})
        assert_graph_error(*r, 413, "RequestEntityTooLarge")

    async def test_oversized_chunked_body_is_413(self, emulator):
        async def chunks():
            for _ in range(40):
                yield b" " * 65536

        r = await call(emulator, "POST", COLLECTION, data=chunks(),
                       headers={"Content-Type": "application/json"})
        assert_graph_error(*r, 413, "RequestEntityTooLarge")


class TestRoutes:
    @pytest.mark.parametrize(
        "path, message",
        [
            ("/beta/employeeExperience/goals/exportJobz", "segment 'exportJobz'"),
            ("/beta/me", "segment 'me'"),
            ("/v1.0/employeeExperience/goals/exportJobs", "segment 'goals'"),
            ("/", "Invalid version"),
            ("/favicon.ico", "Invalid version: favicon.ico"),
            (f"{COLLECTION}/a/b/c", "segment"),
        ],
    )
    async def test_unknown_routes_are_graph_errors(self, emulator, path, message):
        r = await call(emulator, "GET", path)
        body = assert_graph_error(*r, 400, "BadRequest")
        assert message in body["error"]["message"]

    @pytest.mark.parametrize(
        "method, path, allow",
        [("DELETE", COLLECTION, "POST, GET"), ("PATCH", f"{COLLECTION}/x", "GET"),
         ("POST", f"{COLLECTION}/x/content", "GET")],
    )
    async def test_wrong_method_is_405_with_allow(self, emulator, method, path, allow):
        status, headers, raw = await call(emulator, method, path)
        assert_graph_error(status, headers, raw, 405, "BadRequest")
        assert headers["Allow"] == allow


async def test_a_barrage_of_odd_requests_never_gets_a_500(emulator):
    """Raw sockets, so nothing in a client library tidies the requests up first."""
    odd = [
        b"POST /beta/employeeExperience/goals/exportJobs HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer t\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\n{\"a\":",
        b"GET /beta/employeeExperience/goals/exportJobs?$filter=%27 HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer t\r\n\r\n",
        b"GET /beta/employeeExperience/goals/exportJobs?$select= HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer t\r\n\r\n",
        b"GET /beta/employeeExperience/goals/exportJobs/%00%ff HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer t\r\n\r\n",
        b"GET /beta/employeeExperience/goals/exportJobs/j! HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer a.b.c\r\n\r\n",
        b"POST /beta/employeeExperience/goals/exportJobs HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer t\r\nContent-Type: application/json\r\nContent-Length: 4\r\n\r\nnull",
        b"GET /_emulator/nothing-here HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /_emulator/clock/advance HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n[1]",
    ]
    for raw in odd:
        reader, writer = await asyncio.open_connection(emulator.host, emulator.port)
        writer.write(raw)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 5)
        writer.close()
        await writer.wait_closed()
        status = int(status_line.split()[1])
        assert status < 500, (raw, status_line)


_DATE = re.compile(rb'"date":"[0-9T:-]{19}"')
_TEXT = st.text(max_size=40)  # any code point: quotes, backslashes, control characters, non-ASCII


@settings(max_examples=300, deadline=None)
@given(code=_TEXT, message=_TEXT, inner_code=st.none() | _TEXT, target=st.none() | _TEXT,
       request_id=st.none() | _TEXT, client_request_id=st.none() | _TEXT,
       inner_key=st.sampled_from(["innerError", "innererror"]) | _TEXT)
def test_error_json_writes_the_bytes_compact_json_writes_for_error_body(
        code, message, inner_code, target, request_id, client_request_id, inner_key):
    """error_json writes the text directly; it must be byte for byte the encoded dict."""
    request_id = request_id or "fixed-request-id"  # a fresh one would differ between the two
    kwargs = {"inner_code": inner_code, "target": target, "request_id": request_id,
              "client_request_id": client_request_id, "inner_key": inner_key}
    direct = error_json(code, message, **kwargs)
    encoded = compact_json(error_body(code, message, **kwargs))
    assert _DATE.search(direct) and _DATE.search(encoded)
    # The date is read inside each call: equal except across a second boundary.
    assert _DATE.sub(b"", direct) == _DATE.sub(b"", encoded)
