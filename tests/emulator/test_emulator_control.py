"""The control API under /_emulator/."""

from __future__ import annotations

from tests.support.emulator import (
    COLLECTION,
    every_store,  # noqa: F401 - runs this module against both stores
    new_pair,
)


async def test_info_reports_configuration(http):
    async with http.get("/_emulator") as r:
        info = await r.json()
    assert info["startAfterSeconds"] == 2.0
    assert info["runForSeconds"] == 5.0
    assert info["unsafeRaceWindowMs"] == 0.0
    assert info["jobs"] == 0


async def test_advance_moves_every_job(http):
    async with http.post(COLLECTION, json=new_pair()) as r:
        location = r.headers["Location"]
    async with http.post("/_emulator/clock/advance", json={"seconds": 7}) as r:
        assert r.status == 200
        assert (await r.json())["clockOffsetSeconds"] == 7
    async with http.get(location) as r:
        assert (await r.json())["status"] == "succeeded"


async def test_advance_rejects_bad_input_with_a_clear_message(http):
    for body in ({"seconds": -1}, {"seconds": "7"}, {}, {"seconds": True}, {"seconds": 1e300}):
        async with http.post("/_emulator/clock/advance", json=body) as r:
            assert r.status == 400
            assert "seconds" in (await r.json())["error"]["message"]


async def test_reset_forgets_jobs_and_arrivals(http):
    body = new_pair()
    async with http.post(COLLECTION, json=body) as r:
        assert r.status == 201
    async with http.post("/_emulator/reset") as r:
        assert r.status == 200
    async with http.get("/_emulator/arrivals") as r:
        assert (await r.json())["arrivals"] == []
    async with http.post(COLLECTION, json=body) as r:
        assert r.status == 201  # the pending job was forgotten


async def test_arrivals_record_status_and_job_of_every_create(http):
    async with http.post(COLLECTION, json=new_pair()) as r:
        job_id = (await r.json())["id"]
    async with http.post(COLLECTION, json={"goalsOrganizationId": "x"}) as r:
        assert r.status == 400
    async with http.get("/_emulator/arrivals") as r:
        log = await r.json()
    first, second = log["arrivals"]
    assert (first["status"], first["jobId"]) == (201, job_id)
    assert (second["status"], second["jobId"]) == (400, None)
    assert second["monotonicUs"] >= first["monotonicUs"]
    async with http.delete("/_emulator/arrivals") as r:
        assert r.status == 200
    async with http.get("/_emulator/arrivals") as r:
        assert (await r.json())["arrivals"] == []


async def test_fail_unknown_job_is_404(http):
    async with http.post("/_emulator/jobs/nope/fail") as r:
        assert r.status == 404


async def test_the_clock_cannot_be_pushed_past_what_timestamps_can_show(http):
    async with http.post("/_emulator/clock/advance", data=b'{"seconds": Infinity}',
                         headers={"Content-Type": "application/json"}) as r:
        assert r.status == 400
    for _ in range(2):  # fifty years twice is fine; a third time is refused
        async with http.post("/_emulator/clock/advance", json={"seconds": 50 * 365 * 24 * 3600}) as r:
            assert r.status == 200
    async with http.post("/_emulator/clock/advance", json={"seconds": 50 * 365 * 24 * 3600}) as r:
        assert r.status == 400
    async with http.post(COLLECTION, json=new_pair()) as r:
        assert r.status == 201  # timestamps still format
