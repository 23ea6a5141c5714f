"""A replayed error body names the answer's own ids: ``innerError``'s ``request-id``,
``client-request-id`` and ``date`` match the fresh ``request-id``, ``client-request-id`` and
``Date`` headers, as a live Graph error's do (recorded through the real proxy, replayed by it)."""

from __future__ import annotations

from email.utils import parsedate_to_datetime

import aiohttp

from exportjobs.addons.cassette import load_cassette
from tests.support.proxy import COLLECTION, ProxiedClient, auth_headers

PAIR = {"goalsOrganizationId": "99999999-9999-4999-8999-999999999999",
        "explorerViewId": "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"}


async def calls(proxy, client_request_id: str):
    async with aiohttp.ClientSession() as session:
        c = ProxiedClient(session, proxy.url, "http://graph.microsoft.com", None)
        headers = {**auth_headers(), "client-request-id": client_request_id}
        created = await c.call("POST", COLLECTION, json=PAIR, headers=headers)
        conflict = await c.call("POST", COLLECTION, json=PAIR, headers=headers)
        listed = await c.call("GET", COLLECTION, headers=headers)
        return created, conflict, listed


def assert_consistent(result) -> None:
    inner = result.json["error"]["innerError"]
    assert inner["request-id"] == result.headers["request-id"]
    assert inner["client-request-id"] == result.headers["client-request-id"]
    date = parsedate_to_datetime(result.headers["Date"]).strftime("%Y-%m-%dT%H:%M:%S")
    assert inner["date"] == date


async def test_replayed_error_bodies_repeat_the_fresh_ids_and_date(emulator, proxies, tmp_path):
    cassette = tmp_path / "errors.yaml"
    recorder = await proxies("record", str(cassette), emulator.url)
    _, recorded, _ = await calls(recorder, "recorded-client-id")
    assert_consistent(recorded)  # the emulator's own: the guarantee replay must keep
    await recorder.close()
    stored = load_cassette(str(cassette)).interactions[1]["response"]

    replayer = await proxies("replay", str(cassette))
    created, conflict, listed = await calls(replayer, "replayed-client-id")
    assert conflict.status == 409 and conflict.headers["client-request-id"] == "replayed-client-id"
    assert conflict.headers["request-id"] != stored["json"]["error"]["innerError"]["request-id"]
    assert_consistent(conflict)
    # Everything else in the body is as recorded; bodies that are not errors are untouched.
    error = conflict.json["error"]
    inner = error.pop("innerError")
    recorded_error = dict(stored["json"]["error"])
    recorded_inner = recorded_error.pop("innerError")
    assert error == recorded_error
    assert list(inner) == list(recorded_inner) and inner["code"] == recorded_inner["code"]
    assert created.status == 201 and listed.status == 200
    assert created.json == load_cassette(str(cassette)).interactions[0]["response"]["json"]
