"""Load steps on Locust (``exportjobs run --engine locust``): real Locust masters and
workers (child processes) against the embedded emulator, through the command line, so
verdicts, exit statuses and reports are the ones a user gets. Each load is small and ends
by its request count or a duration of a few seconds."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path

import pytest

from exportjobs.cli import main

# Found, never imported here: importing locust would patch this process with gevent.
needs_locust = pytest.mark.skipif(importlib.util.find_spec("locust") is None, reason="the locust extra")

JOBS = "/beta/employeeExperience/goals/exportJobs"


def _scenario(tmp_path: Path, *, max_requests: int = 200, thresholds: str = "{p99_ms: 2000, error_rate: 0}",
              duration: float = 8, model: str = "concurrency: 4") -> Path:
    path = tmp_path / "load.yaml"
    path.write_text(f"""\
name: locust-load
variables:
  jobs: {JOBS}
  id: {{generate: counter, per: request}}
steps:
  - name: load
    load:
      duration: {duration}
      {model}
      max_requests: {max_requests}
      mix:
        - weight: 3
          request: {{path: "${{jobs}}"}}
        - weight: 1
          request: {{path: "${{jobs}}", query: {{$top: "${{id}}"}}}}
      thresholds: {thresholds}
""", encoding="utf-8")
    return path


def _run(path: Path, tmp_path: Path, *flags: str) -> tuple[int, dict, float]:
    report = tmp_path / "report.json"
    started = time.monotonic()
    code = main(["run", str(path), "--no-progress", "--report-json", str(report), *flags])
    return code, json.loads(report.read_text()), time.monotonic() - started


LOCUST = ("--engine", "locust", "--locust-workers", "2")


@needs_locust
def test_load_on_two_locust_workers_meets_its_thresholds_and_says_so(tmp_path, capsys):
    code, data, _ = _run(_scenario(tmp_path), tmp_path, *LOCUST)
    out = capsys.readouterr().out
    assert code == 0, out
    details = data["steps"][0]["details"]
    assert (details["engine"], details["workers"], details["requests"]) == ("locust", 2, 200)
    assert sum(data["steps"][0]["statuses"].values()) == 200
    latency = data["steps"][0]["latency_ms"]  # from every response's bucket: a spread, not one figure
    assert 0 < latency["p50_ms"] <= latency["p99_ms"] <= latency["max_ms"] and latency["p50_ms"] < latency["max_ms"]
    assert {c["what"] for c in data["steps"][0]["checks"]} == {"p99_ms", "error_rate"}
    assert sum(p["requests"] for p in details["series"]["points"]) == 200
    assert "on Locust, 2 workers" in out and "PASSED" in out


@needs_locust
@pytest.mark.parametrize("thresholds, what", [("{p99_ms: 0.001}", "p99_ms"), ("{min_rps: 1000000000}", "min_rps")])
def test_a_threshold_it_cannot_meet_fails_with_the_built_in_engines_verdict(tmp_path, capsys, thresholds, what):
    path = _scenario(tmp_path, max_requests=100, thresholds=thresholds)
    verdicts = {}
    for engine in (LOCUST, ("--engine", "built-in")):
        code, _data, _ = _run(path, tmp_path, *engine)
        out = capsys.readouterr().out
        assert code == 1, out
        broken = [line.strip() for line in out.splitlines() if "BROKEN" in line]
        assert len(broken) == 1 and broken[0].startswith(f"BROKEN {what}: expected "), out
        verdicts[engine[1]] = broken[0].partition(", got")[0], out.splitlines()[-1].partition(" in ")[0]
    assert verdicts["locust"] == verdicts["built-in"]


@needs_locust
def test_both_engines_send_the_same_count_in_a_fixed_count_phase(tmp_path, capsys):
    for model in ("concurrency: 3", "rate: 150"):
        path = _scenario(tmp_path, max_requests=137, model=model)
        counts = {}
        for engine in (LOCUST, ("--engine", "built-in")):
            code, data, _ = _run(path, tmp_path, *engine)
            assert code == 0, capsys.readouterr().out
            step = data["steps"][0]
            counts[engine[1]] = (step["details"]["requests"], sum(step["statuses"].values()))
        assert counts["locust"] == counts["built-in"] == (137, 137), model


@needs_locust
def test_workers_that_never_connect_end_the_run_in_bounded_time(tmp_path, capsys):
    code, _data, took = _run(_scenario(tmp_path), tmp_path, *LOCUST, "--locust-remote-workers", "1",
                            "--locust-wait", "2")
    out = capsys.readouterr().out
    assert code == 1
    assert "waiting for 3 Locust worker(s) to connect: not within 2 s" in out
    assert took < 30  # the wait, the processes' start and their end; not the 60 s Locust would wait


def test_without_locust_the_engine_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "locust", None)  # what the import system says when it is absent
    assert main(["run", str(_scenario(tmp_path)), "--engine", "locust"]) == 2
    assert "pip install 'exportjobs[locust]'" in capsys.readouterr().err
    assert main(["locust-worker", "--master", "127.0.0.1"]) == 2
    assert "pip install 'exportjobs[locust]'" in capsys.readouterr().err


@needs_locust
@pytest.mark.parametrize("through", [["--proxy", "http://127.0.0.1:9"], ["--record", "c.yaml"],
                                     ["--replay", "c.yaml"]], ids=["proxy", "record", "replay"])
def test_locust_refuses_to_go_around_a_proxy(tmp_path, capsys, through):
    """Load on Locust goes straight to the target: a run that asked for a proxy (its own, or
    the recording or replaying one) is refused rather than sent past it unrecorded."""
    (tmp_path / "c.yaml").write_text("")
    args = [a.replace("c.yaml", str(tmp_path / "c.yaml")) for a in through]
    assert main(["run", str(_scenario(tmp_path)), *LOCUST, *args]) == 2
    err = capsys.readouterr().err
    assert "--engine locust sends load straight to the target" in err
    assert not (tmp_path / "c.yaml").read_text()
