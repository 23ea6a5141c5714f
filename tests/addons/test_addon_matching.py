"""The request matcher: what counts as the same request, order, exhaustion, concurrency, cost."""

from __future__ import annotations

import threading

import pytest

from exportjobs.addons.matching import ERROR, Outcome, ReplayIndex, request_key

BASE = "https://graph.microsoft.com/beta/employeeExperience/goals/exportJobs"


def _req(method="GET", url=BASE, **body):
    return {"method": method, "url": url, "headers": [["Authorization", "REDACTED"]], **body}


def _item(n, request, status=200):
    return {"interaction": n, "request": request, "response": {"status": status}}


def test_same_request_despite_case_query_order_json_layout_and_headers():
    a = _req("POST", BASE + "?b=2&a=1", json={"x": 1, "y": [1, {"k": "v"}]})
    b = {**_req("post", "http://GRAPH.microsoft.com/BETA/employeeexperience/GOALS/exportjobs/?a=1&b=2",
                json={"y": [1, {"k": "v"}], "x": 1}), "headers": [["X-Other", "1"]]}
    assert request_key(a) == request_key(b)


@pytest.mark.parametrize("other", [
    _req("POST", BASE + "?b=2&a=1", json={"x": 2, "y": [1, {"k": "v"}]}),  # body value
    _req("GET", BASE + "?b=2&a=1", json={"x": 1, "y": [1, {"k": "v"}]}),  # method
    _req("POST", BASE + "?b=2&a=3", json={"x": 1, "y": [1, {"k": "v"}]}),  # query value
    _req("POST", BASE.replace("beta", "v1.0") + "?b=2&a=1", json={"x": 1, "y": [1, {"k": "v"}]}),
])
def test_different_requests_differ(other):
    assert request_key(_req("POST", BASE + "?b=2&a=1", json={"x": 1, "y": [1, {"k": "v"}]})) != request_key(other)


def test_job_ids_stay_case_sensitive():
    assert request_key(_req(url=BASE + "/AbC")) != request_key(_req(url=BASE + "/abc"))
    assert request_key(_req(url=BASE + "/AbC/Content")) == request_key(_req(url=BASE + "/AbC/content"))


def test_sequences_follow_arrival_order_not_file_order_then_repeat_last():
    req = _req("POST", json={"a": 1})
    items = [_item(3, req, 409), _item(1, req, 201), _item(2, req, 409)]  # file order = completion
    index = ReplayIndex(items)
    taken = [index.take(req) for _ in range(4)]
    assert [t.interaction["response"]["status"] for t in taken] == [201, 409, 409, 409]
    assert [t.outcome for t in taken] == [Outcome.HIT] * 3 + [Outcome.REPEAT]
    assert (taken[3].position, taken[3].recorded) == (4, 3)
    assert index.take(_req("DELETE")).outcome is Outcome.MISS


def test_error_policy_answers_nothing_once_used_up():
    req = _req()
    index = ReplayIndex([_item(1, req)], exhausted=ERROR)
    assert index.take(req).outcome is Outcome.HIT
    used_up = index.take(req)
    assert (used_up.outcome, used_up.interaction, used_up.position, used_up.recorded) == (
        Outcome.EXHAUSTED, None, 2, 1)
    with pytest.raises(ValueError):
        ReplayIndex([], exhausted="forward")


def test_each_recording_is_served_once_under_concurrency():
    req = _req("POST", json={"a": 1})
    index = ReplayIndex([_item(n, req, 201 if n == 5 else 409) for n in range(1, 2001)], exhausted=ERROR)
    served: list[int] = []
    lock = threading.Lock()

    def worker():
        for _ in range(250):
            take = index.take(req)
            with lock:
                served.append(take.interaction["interaction"] if take.interaction else 0)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(served) == list(range(1, 2001))



# --- near misses: a miss names the nearest recordings and what differs ---------------------

def test_a_miss_names_the_differing_query_parameter_and_body_field():
    from exportjobs.addons.matching import explain_miss

    index = ReplayIndex([
        _item(1, _req("GET", BASE + "?$filter=goalsOrganizationId eq 'a'&$top=5")),
        _item(2, _req("POST", BASE, json={"goalsOrganizationId": "o", "explorerViewId": "v1"})),
        _item(3, _req("GET", BASE + "/job-1")),
    ])
    query = explain_miss(index, _req("GET", BASE + "?$filter=goalsOrganizationId eq 'b'&$top=5"))
    assert "nearest recording #1 GET" in query
    assert "query parameter $filter differs: recorded \"goalsOrganizationId eq 'a'\", " \
           "got \"goalsOrganizationId eq 'b'\"" in query
    assert "$top" not in query  # only what differs is named
    body = explain_miss(index, _req("POST", BASE, json={"goalsOrganizationId": "o",
                                                        "explorerViewId": "v2"}))
    assert "nearest recording #2 POST" in body
    assert "body field explorerViewId differs: recorded 'v1', got 'v2'" in body
    assert "goalsOrganizationId" not in body
    method = explain_miss(index, _req("DELETE", BASE + "/job-1"))
    assert "method differs: recorded GET, got DELETE" in method
    assert explain_miss(ReplayIndex([]), _req()) == "no recording with the same method or path"


def test_the_nearest_recording_comes_first_and_the_work_is_bounded():
    from exportjobs.addons import matching

    far = [_item(n, _req("GET", BASE + f"?a={n}&b={n}&c={n}")) for n in range(1, 200)]
    near = _item(500, _req("GET", BASE + "?a=x&b=1&c=1"))
    index = ReplayIndex([*far, near])
    nearest = matching.near_misses(index, _req("GET", BASE + "?a=y&b=1&c=1"))
    # the near one is past the first NEAR_COMPARE candidates: bounded, it is not seen ...
    assert nearest and nearest[0].interaction["interaction"] != 500
    assert all(len(n.differences) <= 3 for n in nearest)
    index = ReplayIndex([near, *far])
    nearest = matching.near_misses(index, _req("GET", BASE + "?a=y&b=1&c=1"))
    # ... and among those compared, the fewest differences come first
    assert nearest[0].interaction["interaction"] == 500
    assert nearest[0].differences == ["query parameter a differs: recorded 'x', got 'y'"]
