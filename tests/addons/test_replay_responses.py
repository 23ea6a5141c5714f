"""Replayed responses: built fresh for each request, volatile headers refreshed, hop-by-hop
headers dropped."""

from __future__ import annotations

from mitmproxy import http

import exportjobs.addons.replay
from exportjobs.addons.matching import ReplayIndex
from exportjobs.addons.replay import REPLAY_HEADER, recorded_response

URL = "https://graph.microsoft.com/beta/employeeExperience/goals/exportJobs"
REQUEST = {"method": "POST", "url": URL, "json": {"a": 1}}
STORED = {
    "status": 201,
    "headers": [["Content-Type", "application/json"], ["request-id", "recorded-id"],
                ["Location", "http://x/1"], ["Connection", "close"], ["Keep-Alive", "timeout=5"]],
    "json": {"id": "1"},
}


def _index() -> ReplayIndex:
    return ReplayIndex([{"interaction": 1, "request": REQUEST, "response": STORED}])


def _live() -> http.Request:
    return http.Request.make("POST", URL, b'{"a":1}', {"client-request-id": "mine"})


def test_each_replay_is_its_own_response_with_fresh_headers():
    index, live = _index(), _live()
    first = recorded_response(index.take(REQUEST), live)
    first_id = first.headers["request-id"]
    first.headers["Location"] = "changed"
    first.content = b"changed"
    second = recorded_response(index.take(REQUEST), live)
    assert first is not second and first.headers["request-id"] == first_id
    assert second.status_code == 201 and second.reason == "Created"
    assert second.content == b'{"id":"1"}'
    assert second.headers["Location"] == "http://x/1"
    assert second.headers["content-length"] == str(len(second.content))
    assert second.headers["client-request-id"] == "mine"
    assert second.headers["request-id"] not in ("recorded-id", first_id)
    assert first.headers[REPLAY_HEADER] == "hit 1/1"
    assert second.headers[REPLAY_HEADER] == "repeat 2/1"
    assert second.http_version == live.http_version and second.timestamp_end is None


def test_hop_by_hop_headers_describe_the_recorded_connection_and_are_not_replayed():
    response = recorded_response(_index().take(REQUEST), _live())
    assert "Connection" not in response.headers and "Keep-Alive" not in response.headers


def test_date_is_the_time_of_the_replay(monkeypatch):
    index, live = _index(), _live()
    monkeypatch.setattr(exportjobs.addons.replay.time, "time", lambda: 1_800_000_000.0)
    first = recorded_response(index.take(REQUEST), live)
    monkeypatch.setattr(exportjobs.addons.replay.time, "time", lambda: 1_800_000_061.0)
    second = recorded_response(index.take(REQUEST), live)
    assert first.headers["Date"] == "Fri, 15 Jan 2027 08:00:00 GMT"
    assert second.headers["Date"] == "Fri, 15 Jan 2027 08:01:01 GMT"


def test_answers_made_from_what_the_index_prepared_once_are_each_fresh():
    """Replay keeps what is the same in every answer (``ReplayIndex.answers``): each answer
    still has its own headers and ids, and an error body naming ids names the answer's own."""
    error = {"status": 409, "headers": [["Content-Type", "application/json"]],
             "json": {"error": {"code": "conflict", "innerError": {"request-id": "old",
                                                                    "client-request-id": "old"}}}}
    index = ReplayIndex([{"interaction": 1, "request": REQUEST, "response": STORED},
                         {"interaction": 2, "request": {**REQUEST, "json": {"a": 2}},
                          "response": error}])
    live = _live()
    first = recorded_response(index.take(REQUEST), live, index.answers)
    first.headers["Location"] = "changed"
    second = recorded_response(index.take(REQUEST), live, index.answers)
    assert len(index.answers) == 1
    assert second.headers["Location"] == "http://x/1" and second.content == b'{"id":"1"}'
    assert second.headers["request-id"] != first.headers["request-id"]
    assert second.headers[REPLAY_HEADER] == "repeat 2/1"
    errors = [recorded_response(index.take({**REQUEST, "json": {"a": 2}}), live, index.answers)
              for _ in range(2)]
    inner = [r.json()["error"]["innerError"] for r in errors]
    assert [i["request-id"] for i in inner] == [r.headers["request-id"] for r in errors]
    assert inner[0]["request-id"] != inner[1]["request-id"]
    assert [i["client-request-id"] for i in inner] == ["mine", "mine"]
