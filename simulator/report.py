"""Reports of a run: the console summary, JSON data, and JUnit XML (one test case a step).

``run_data`` is the one data form of a run, which the JSON report writes and other reports
can read. Beside the run's figures it holds:

- ``interrupted`` (run and step): Ctrl-C stopped it; a step's figures are what it sent
  until then, and the steps after it are skipped saying so.
- ``untrusted`` (run): it stopped because the server's TLS certificate is not trusted;
  ``stopped`` then says which CA to pass with --cacert.
- ``exchanges`` (step): the requests and responses its checks judged (a request or poll
  step: the last one; a burst: the first response of each status, at most five, each with
  its ``copy`` number), each as ``Exchange.as_data`` gives it: ``method``, ``url``,
  ``request_headers``, ``request_body``, ``status`` (null: no response), ``error``,
  ``response_headers``, ``response_body`` (cut to 2,000 characters), ``response_bytes``,
  ``latency_ms``, ``copy``. Tokens and cookies are already ``REDACTED`` in them.
- ``checks`` (step): each with ``what``, ``ok``, ``expected`` and ``actual``.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, TextIO

from exportjobs.simulator.runner import RunResult, StepResult
from exportjobs.simulator.values import PerRequest, shown_url


def step_data(result: StepResult) -> dict[str, Any]:
    step = result.step
    return {
        "index": step.index + 1,
        "name": step.name,
        "kind": step.kind,
        "line": step.line,
        "ok": result.ok,
        "skipped": result.skipped,
        "interrupted": result.interrupted,
        "duration_s": round(result.duration_s, 4),
        "statuses": {str(k): v for k, v in sorted(result.stats.statuses.items())},
        "no_response": result.stats.no_response,
        "latency_ms": result.stats.latency.summary_ms() if result.stats.latency.count else None,
        "details": result.details,
        "checks": [{"what": c.what, "ok": c.ok, "expected": c.expected, "actual": c.actual}
                   for c in result.checks],
        "exchanges": [e.as_data() for e in result.exchanges],
    }


def run_data(run: RunResult) -> dict[str, Any]:
    return {
        "scenario": run.scenario.name,
        "source": run.scenario.source,
        "target": shown_url(run.target),
        "proxy": shown_url(run.proxy),
        "emulator_control": run.emulator,
        "ok": run.ok,
        "stopped": run.stopped,
        "untrusted": run.untrusted,
        "interrupted": run.interrupted,
        "duration_s": round(run.duration_s, 3),
        # Only generated values: enough to repeat the run with --var, and never a secret
        # a user passed in (a token given with --var, say).
        # A value drawn per request has no one value: its spec stands for it.
        "variables": {k: spec if isinstance(run.variables[k], PerRequest) else run.variables[k]
                      for k, spec in run.scenario.variables.items()
                      if isinstance(spec, dict) and "generate" in spec},
        "steps": [step_data(s) for s in run.steps],
    }


def write_json(run: RunResult, path: str | Path) -> None:
    Path(path).write_text(json.dumps(run_data(run), indent=2) + "\n", encoding="utf-8")


def write_junit(run: RunResult, path: str | Path) -> None:
    failures = sum(1 for s in run.steps if not s.ok and s.skipped is None)
    skipped = sum(1 for s in run.steps if s.skipped is not None)
    suite = ET.Element("testsuite", name=run.scenario.name, tests=str(len(run.steps)),
                       failures=str(failures), skipped=str(skipped), time=f"{run.duration_s:.3f}")
    if run.interrupted:
        properties = ET.SubElement(suite, "properties")
        ET.SubElement(properties, "property", name="interrupted", value="true")
    for result in run.steps:
        case = ET.SubElement(suite, "testcase", classname=run.scenario.name,
                             name=f"{result.step.index + 1:02d} {result.step.name}",
                             time=f"{result.duration_s:.3f}", file=run.scenario.source,
                             line=str(result.step.line))
        if result.skipped is not None:
            ET.SubElement(case, "skipped", message=result.skipped)
        elif not result.ok:
            broken = [str(c) for c in result.checks if not c.ok]
            if result.interrupted:
                broken.insert(0, "interrupted (Ctrl-C) before the step ended")
            failure = ET.SubElement(case, "failure", message=broken[0])
            failure.text = "\n".join(broken + [e.text() for e in result.exchanges])
        ET.SubElement(case, "system-out").text = _summary_line(result)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)


def _statuses(result: StepResult) -> str:
    parts = [f"{status} x{n}" for status, n in sorted(result.stats.statuses.items())]
    if result.stats.no_response:
        parts.append(f"no response x{result.stats.no_response}")
    return ", ".join(parts) or "-"


def _summary_line(result: StepResult) -> str:
    d = result.details
    bits = [_statuses(result)]
    if result.stats.latency.count == 1:
        bits.append(f"{result.stats.latency.max_s * 1000:.1f} ms")
    elif result.stats.latency.count:
        lat = result.stats.latency.summary_ms()
        bits.append(f"p50 {lat['p50_ms']:.1f} / p95 {lat['p95_ms']:.1f} / p99 {lat['p99_ms']:.1f} / "
                    f"max {lat['max_ms']:.1f} ms")
    if result.interrupted:  # its details were never written
        return "; ".join(bits)
    if result.step.kind == "burst":
        spread = f"release {d['release']}, send spread {d['send_spread_ms']:.3f} ms"
        if "arrival_spread_ms" in d:
            spread += f", arrival spread {d['arrival_spread_ms']:.3f} ms"
        bits.append(spread)
    elif result.step.kind == "poll":
        bits.append(f"{d['tries']} tries, waited {d['waited_s']:g} s"
                    + (", honoured Retry-After" if d.get("honoured_retry_after") else ", Retry-After capped"))
    elif result.step.kind == "request" and "tries" in d:
        bits.append(f"{d['tries']} tries, waited {d['waited_s']:g} s")
    elif result.step.kind == "load":
        bits.append(f"{d['requests']:,} requests, {d['rps']:,.0f}/s, error rate {d['error_rate']:.2%}")
        if d.get("engine", "built-in") != "built-in":  # which engine ran the load, and on how many workers
            bits.append(f"on {d['engine'].capitalize()}, {d['workers']} worker{'s' * (d['workers'] != 1)}")
    return "; ".join(bits)


def print_summary(run: RunResult, out: TextIO, *, label: str | None = None) -> None:
    """The console report: a line per step, its checks, and a verdict."""
    via = f" via proxy {shown_url(run.proxy)}" if run.proxy else ""
    print(f"{label or run.scenario.name}  ({run.scenario.source})", file=out)
    print(f"  target {shown_url(run.target)}{via}", file=out)
    for result in run.steps:
        mark = "SKIP" if result.skipped else ("INTR" if result.interrupted else "ok  " if result.ok else "FAIL")
        print(f"  {mark} {result.step.index + 1:>2}. {result.step.name} [{result.step.kind}]", file=out)
        if result.skipped:
            print(f"            skipped: {result.skipped}", file=out)
            continue
        if result.step.kind != "pause":
            print(f"            {_summary_line(result)}", file=out)
        if result.interrupted:
            print("            interrupted (Ctrl-C): figures so far", file=out)
        broken_checks = [c for c in result.checks if not c.ok]
        for check in broken_checks:
            print(f"            BROKEN {check.what}: expected {check.expected}, got {check.actual}",
                  file=out)
        if broken_checks:
            for exchange in result.exchanges:
                print(exchange.text(indent=" " * 14), file=out)
    passed = sum(1 for s in run.steps if s.ok)
    checks = sum(len(s.checks) for s in run.steps)
    broken = sum(1 for s in run.steps for c in s.checks if not c.ok)
    if run.stopped is not None:
        print(f"  STOPPED: {run.stopped}", file=out)
    verdict = "INTERRUPTED" if run.interrupted else "PASSED" if run.ok else "FAILED"
    print(f"  {verdict}: {passed} of {len(run.steps)} steps, {checks - broken} of {checks} checks held, "
          f"in {run.duration_s:.1f} s", file=out)
