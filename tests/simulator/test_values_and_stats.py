"""Interpolation, JSON paths, streaming statistics and burst invariants."""

from __future__ import annotations

import json
import random

import pytest

from exportjobs.simulator.expectations import check_burst, check_response
from exportjobs.simulator.stats import LatencyHistogram, TrafficStats
from exportjobs.simulator.steps import Expect, build
from exportjobs.simulator.transport import Outcome
from exportjobs.simulator.values import MISSING, get_path, interpolate, parse_path, references


def test_interpolation_keeps_types_for_whole_references():
    values = {"n": 5, "id": "abc"}
    assert interpolate({"count": "${n}", "url": "/jobs/${id}?n=${n}"}, values) == {
        "count": 5, "url": "/jobs/abc?n=5"}
    assert references(["${a}", {"k": "${b} ${a}"}]) == {"a", "b"}


@pytest.mark.parametrize(
    "path, segments",
    [("error.code", ["error", "code"]), ("value.0.id", ["value", 0, "id"]),
     ("value['@odata.type']", ["value", "@odata.type"]), ('a["x.y"].b', ["a", "x.y", "b"])],
)
def test_json_paths(path, segments):
    assert parse_path(path) == segments


def test_get_path_reports_missing_rather_than_raising():
    doc = {"value": [{"id": "a"}], "error": None}
    assert get_path(doc, "value.0.id") == "a"
    assert get_path(doc, "value.3.id") is MISSING
    assert get_path(doc, "error.code") is MISSING
    assert get_path(doc, "error") is None


def test_histogram_percentiles_are_within_about_one_percent():
    rng = random.Random(1)
    samples = [rng.lognormvariate(-6, 1) for _ in range(50_000)]
    hist = LatencyHistogram()
    for s in samples:
        hist.add(s)
    ordered = sorted(samples)
    for p in (50, 95, 99):
        exact = ordered[int(len(ordered) * p / 100) - 1]
        assert abs(hist.percentile(p) - exact) / exact < 0.015, p
    assert hist.max_s == max(samples)


def test_statistics_memory_does_not_grow_with_request_count():
    stats = TrafficStats()
    rng = random.Random(2)
    for _ in range(200_000):
        stats.add(rng.choice([200, 409, 503]), rng.uniform(0.0001, 2.0))
    assert stats.total == 200_000
    assert len(stats.latency.buckets) < 1000  # buckets, never a list of requests
    assert 0.3 < stats.error_rate < 0.37


def outcome(status, body=None, **headers):
    return Outcome(status, {k.lower().replace("_", "-"): v for k, v in headers.items()},
                   json.dumps(body).encode() if body is not None else b"", 0.001)


def race(winner_id="W", loc="L", bad_target=None, n=5):
    out = [outcome(201, {"id": winner_id}, Location=loc)]
    for i in range(n - 1):
        target = bad_target if (bad_target and i == 2) else winner_id
        out.append(outcome(409, {"error": {"target": target}}, Location=loc))
    return out


INVARIANTS = {"invariants": ["exactly-one-201", "every-409-targets-the-201", "every-409-locates-the-201"],
              "counts": {"201": 1, "409": 4}}


def test_burst_invariants_hold_for_a_correct_race():
    assert all(c.ok for c in check_burst(build(Expect, INVARIANTS), race(), {}))


def test_a_409_naming_another_job_is_caught_and_located():
    checks = {c.what: c for c in check_burst(build(Expect, INVARIANTS), race(bad_target="X"), {})}
    bad = checks["every-409-targets-the-201"]
    assert not bad.ok and bad.actual == "1 of 4 differ (first, response #4: 'X')"


def test_two_winners_break_every_invariant():
    two = [*race(), outcome(201, {"id": "V"}, Location="L2")]
    checks = {c.what: c for c in check_burst(build(Expect, INVARIANTS), two, {})}
    assert not checks["exactly-one-201"].ok and checks["exactly-one-201"].actual == "2 201s"
    assert not checks["every-409-targets-the-201"].ok
    assert not checks["count of 201"].ok


def test_no_response_is_a_broken_check_not_a_crash():
    checks = check_response(build(Expect, {"status": 200}), Outcome(None, {}, b"", 0.0, "timed out"), {})
    assert [(c.ok, c.actual) for c in checks] == [(False, "none (timed out)")]


def test_the_409_invariant_fails_when_the_201_has_no_id():
    no_id = [outcome(201, {}, Location="L")] + [outcome(409, {"error": {}}, Location="L")] * 3
    checks = {c.what: c for c in check_burst(build(Expect, {"invariants": ["every-409-targets-the-201"]}), no_id, {})}
    assert not checks["every-409-targets-the-201"].ok


def test_credentials_in_urls_are_never_shown():
    from exportjobs.simulator.values import shown_url

    assert shown_url("http://user:s3cret@127.0.0.1:3128") == "http://REDACTED@127.0.0.1:3128"
    assert shown_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080"
    assert shown_url(None) is None
