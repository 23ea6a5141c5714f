"""``--report-html``: one self-contained page drawn from the JSON report's data, opened in a
real headless Chromium (Debian's ``chromium`` package) to check what it shows."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from exportjobs.simulator.emulator.auth import fake_token
from exportjobs.simulator.htmlreport import MAX_ROWS, render
from exportjobs.simulator.load import MAX_POINTS, SERIES_POINTS, Series

EXPORTJOBS = [sys.executable, "-m", "exportjobs"]
BURST = 12
HOSTILE = "<script>alert('step')</script> & \"quotes\""

SCENARIO = f"""\
name: html <report> & race
auth: {{token_env: HTMLREPORT_TOKEN}}
variables:
  org: {{generate: guid}}
  view: {{generate: guid}}
  jobs: /beta/employeeExperience/goals/exportJobs
steps:
  - name: {json.dumps(HOSTILE)}
    burst:
      count: {BURST}
      release: last-byte
      request:
        method: POST
        path: ${{jobs}}
        json: {{goalsOrganizationId: "${{org}}", explorerViewId: "${{view}}"}}
    expect: {{counts: {{201: 1, 409: {BURST - 1}}}}}
  - name: a broken expectation
    request:
      method: POST
      path: ${{jobs}}
      json: {{goalsOrganizationId: "${{org}}", explorerViewId: "${{view}}"}}
    expect: {{status: 418}}
  - name: one second of reads
    load:
      duration: 1
      concurrency: 4
      mix:
        - request: {{path: "${{jobs}}"}}
      thresholds: {{p95_ms: 400, max_ms: 900, min_rps: 5, error_rate: 0.5}}
"""


class Elements(HTMLParser):
    """Every element of a page as (tag, classes, attributes)."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.found: list[tuple[str, set[str], dict[str, str | None]]] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.found.append((tag, set((attributes.get("class") or "").split()), attributes))

    def having(self, cls: str, tag: str | None = None) -> list[dict[str, str | None]]:
        return [a for t, c, a in self.found if cls in c and (tag is None or t == tag)]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("chromium is not installed (Debian: apt-get install -y chromium; .ci/run installs it)")
    return found


def browse(page: Path, tmp: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium on ``page``, nothing but the file: no network, no profile of its own."""
    return subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         f"--user-data-dir={tmp / 'profile'}", "--window-size=1280,2000", *extra, page.as_uri()],
        capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """One run of the scenario above by ``exportjobs run`` (embedded emulator), with both reports."""
    tmp = tmp_path_factory.mktemp("html")
    scenario = tmp / "html.yaml"
    scenario.write_text(SCENARIO)
    token = fake_token()
    env = {**os.environ, "HTMLREPORT_TOKEN": token}
    proc = subprocess.run([*EXPORTJOBS, "run", "--no-progress", str(scenario), "--report-json",
                           str(tmp / "r.json"), "--report-html", str(tmp / "r.html")],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # the broken expectation
    return {"tmp": tmp, "token": token, "json": json.loads((tmp / "r.json").read_text()),
            "html": (tmp / "r.html").read_text(encoding="utf-8")}


def test_the_page_is_drawn_from_the_json_report(reports):
    data, page = reports["json"], reports["html"]
    assert page == render(data)  # the same data, so the two reports cannot disagree
    burst = data["steps"][0]["details"]["timeline"]
    assert burst["total"] == BURST and len(burst["rows"]) == BURST
    for row in burst["rows"]:
        assert row["first_byte_ms"] <= row["last_byte_ms"] <= row["response_ms"]
        # each request's own arrival, matched by the client-request-id its copy carried
        assert row["arrival_ms"] <= row["response_ms"]
    assert [r["status"] for r in burst["rows"]].count(201) == 1
    assert burst["rows"][burst["winner"]]["status"] == 201
    assert len(burst["arrivals"]) == BURST  # the embedded emulator's arrival log
    series = data["steps"][2]["details"]["series"]
    assert 0 < len(series["points"]) <= MAX_POINTS
    assert sum(p["requests"] for p in series["points"]) == data["steps"][2]["details"]["requests"]


def test_the_page_is_self_contained_and_escaped(reports):
    page = reports["html"]
    for outside in ("<script", "src=", "<link", "@import", "url("):
        assert outside not in page.lower(), outside
    assert "&lt;script&gt;alert(&#x27;step&#x27;)&lt;/script&gt; &amp; &quot;quotes&quot;" in page
    assert "html &lt;report&gt; &amp; race" in page


def test_the_token_never_appears(reports):
    token, page = reports["token"], reports["html"]
    assert page.count(token) == 0
    for segment in token.split("."):  # nor any part of it
        if len(segment) > 8:
            assert segment not in page


def test_chromium_shows_every_element_and_takes_a_screenshot(reports):
    tmp: Path = reports["tmp"]
    page = tmp / "r.html"
    dom = browse(page, tmp, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    seen = Elements(dom.stdout)
    assert seen.having("burst-timeline", "svg"), "no burst timeline"
    rows = seen.having("request-row", "g")
    assert sorted(int(r["data-index"] or -1) for r in rows) == list(range(BURST))
    winners = seen.having("winner", "g")
    assert len(winners) == 1 and winners[0]["data-status"] == "201"
    assert len(seen.having("arrival", "line")) == BURST
    assert len(seen.having("arrival-mark", "rect")) == BURST  # one per row
    assert len(seen.having("response", "path")) == BURST
    thresholds = {a["data-name"] for a in seen.having("threshold", "g")}
    assert thresholds == {"p95_ms", "max_ms", "min_rps", "error_rate"}
    assert [a.get("id") for t, _, a in seen.found if a.get("id") == "summary"] == ["summary"]
    assert len(seen.having("broken-check", "li")) == 1
    assert "arrival spread" in dom.stdout
    shot = tmp / "report.png"
    taken = browse(page, tmp, f"--screenshot={shot}")
    assert taken.returncode == 0 and shot.stat().st_size > 10_000, taken.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_exchanges_are_shown_as_request_and_response_escaped():
    exchange = {"request": {"method": "POST", "url": "http://127.0.0.1/x?a=<b>",
                            "headers": {"Content-Type": "application/json"}, "body": "{\"a\": \"</pre>\"}"},
                "response": {"status": 400, "headers": {"request-id": "r-1"},
                             "body": {"error": {"code": "badRequest", "message": "<i>no</i>"}}}}
    data = {"scenario": "x", "ok": False, "steps": [
        {"index": 1, "name": "s", "kind": "request", "ok": False, "skipped": None, "details": {},
         "checks": [{"what": "status", "ok": False, "expected": "201", "actual": "400",
                     "exchange": exchange}]}]}
    seen = Elements(page := render(data))
    assert len(seen.having("exchange-request", "pre")) == 1
    assert len(seen.having("exchange-response", "pre")) == 1
    assert "POST http://127.0.0.1/x?a=&lt;b&gt;" in page and "&lt;/pre&gt;" in page
    assert "badRequest" in page and "&lt;i&gt;no&lt;/i&gt;" in page and "<i>" not in page


def test_a_huge_burst_draws_at_most_the_bound_and_says_so():
    rows = [{"first_byte_ms": 0.0, "last_byte_ms": i / 1000, "response_ms": 1 + i / 1000,
             "status": 409} for i in range(MAX_ROWS + 500)]
    data = {"scenario": "big", "ok": True, "steps": [
        {"index": 1, "name": "b", "kind": "burst", "ok": True, "skipped": None, "checks": [],
         "details": {"release": "barrier", "send_spread_ms": 1.5,
                     "timeline": {"rows": rows, "total": 5000, "winner": None}}}]}
    page = render(data)
    assert len(Elements(page).having("request-row", "g")) == MAX_ROWS
    assert f"the first {MAX_ROWS:,} of 5,000 requests are drawn" in page


def test_a_load_series_stays_bounded():
    hour = Series(time.monotonic(), 3600)
    assert hour.width * SERIES_POINTS >= 3600
    late = Series(time.monotonic() - 10 * 3600, 3600)  # every response long after the end
    for _ in range(3):
        late.add(200, 0.01)
    points = late.data()["points"]
    assert len(points) == MAX_POINTS and points[-1]["requests"] == 3
    short = Series(time.monotonic(), 5)
    short.add(200, 0.002)
    short.add(None, 0.0)
    (only,) = short.data()["points"]
    assert only["requests"] == 2 and only["no_response"] == 1 and only["statuses"] == {"200": 1}


def test_the_demo_writes_the_report_when_asked_and_says_where(tmp_path):
    page = tmp_path / "demo.html"
    proc = subprocess.run([*EXPORTJOBS, "demo", "--cassette", str(tmp_path / "demo.yaml"),
                           "--report-html", str(page)], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"HTML report of the recorded run: {page.resolve()}" in proc.stdout
    seen = Elements(page.read_text(encoding="utf-8"))
    assert len(seen.having("request-row", "g")) == 50 and len(seen.having("winner", "g")) == 1
