"""Copy this file into your test suite: exportjobs' pytest plugin in use (docs/pytest.md).

The plugin comes with the package (``pip install exportjobs``); nothing to import or enable.

- ``exportjobs_emulator``: a fresh emulator per test; talk to its ``url`` and move its
  clock or fail a job through ``control``.
- ``exportjobs_proxy``: a proxy per test that records your client's Graph calls to a
  cassette, or replays them. Record once, from the emulator (offline) or from Graph::

      pytest test_exportjobs_example.py --exportjobs-record-mode=once
      pytest test_exportjobs_example.py --exportjobs-record-mode=once --exportjobs-upstream=graph

  then every run replays (record mode ``none``, the default) with no network at all.

Your code keeps calling https://graph.microsoft.com: ``apply_env()`` points requests, httpx
and the Graph SDK at the proxy and makes them trust its CA until the test ends.
"""

from __future__ import annotations

import time

import httpx
import pytest
import requests

from exportjobs.simulator.emulator.app import EmulatorConfig

GRAPH = "https://graph.microsoft.com/beta/employeeExperience/goals/exportJobs"
# Your real token when recording from Graph; the cassette never keeps it (redacted).
HEADERS = {"Authorization": "Bearer example-token"}
# Fixed ids: a replayed request must be the one recorded.
PAIR = {"goalsOrganizationId": "11111111-1111-4111-8111-111111111111",
        "explorerViewId": "22222222-2222-4222-8222-222222222222"}


@pytest.fixture
def exportjobs_emulator_config() -> EmulatorConfig:
    """Jobs that finish in a moment (the default: notStarted 2 s, then running 5 s)."""
    return EmulatorConfig(start_after=0.1, run_for=0.2)


def wait_until_done(get_job, deadline_s: float = 10.0) -> dict:
    """Poll the job as a client would, until it succeeds or fails."""
    end = time.monotonic() + deadline_s
    while True:
        job = get_job()
        if job["status"] in ("succeeded", "failed") or time.monotonic() > end:
            return job
        time.sleep(0.1)


# --- against the emulator directly -------------------------------------------------------------


def test_the_emulator_directly(exportjobs_emulator):
    base = exportjobs_emulator.url + "/beta/employeeExperience/goals/exportJobs"
    created = requests.post(base, json=PAIR, headers=HEADERS, timeout=10)
    assert created.status_code == 201
    again = requests.post(base, json=PAIR, headers=HEADERS, timeout=10)
    assert again.status_code == 409  # one job per organization and view at a time

    exportjobs_emulator.control.fail_job(created.json()["id"])
    job = requests.get(created.headers["Location"], headers=HEADERS, timeout=10).json()
    assert job["status"] == "failed"
    assert len(exportjobs_emulator.control.arrivals().arrivals) == 2


def test_the_emulator_clock(exportjobs_emulator):
    exportjobs_emulator.control.advance_clock(3600)  # an hour later, at once
    assert exportjobs_emulator.control.info().clock_offset_s == 3600


# --- your client through the proxy: recorded once, replayed after ------------------------------


def test_requests_through_the_proxy(exportjobs_proxy):
    exportjobs_proxy.apply_env()
    created = requests.post(GRAPH, json=PAIR, headers=HEADERS, timeout=10)
    assert created.status_code == 201
    location = created.headers["Location"]
    job = wait_until_done(lambda: requests.get(location, headers=HEADERS, timeout=10).json())
    assert job["status"] == "succeeded"
    content = requests.get(location + "/content", headers=HEADERS, timeout=10)
    assert content.status_code == 200 and content.headers["Content-Type"].startswith("text/csv")


@pytest.mark.exportjobs_cassette("cassettes/duplicate-create.yaml")
def test_httpx_through_the_proxy(exportjobs_proxy):
    exportjobs_proxy.apply_env()
    with httpx.Client(timeout=10) as client:  # made after apply_env: it reads the variables now
        first = client.post(GRAPH, json=PAIR, headers=HEADERS)
        second = client.post(GRAPH, json=PAIR, headers=HEADERS)
    assert (first.status_code, second.status_code) == (201, 409)
    assert second.json()["error"]["target"] == first.json()["id"]  # the job already running
