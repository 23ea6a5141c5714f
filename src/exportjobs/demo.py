"""``exportjobs demo``: record the duplicate-create race through the proxy, then replay it
with no upstream at all, and show both runs side by side.

The client speaks HTTPS to graph.microsoft.com through the proxy, exactly as a real client
would; the proxy sends that traffic to the embedded emulator while recording, and answers
it from the cassette while replaying. Nothing leaves the machine.
"""

from __future__ import annotations

import logging
import ssl
import sys
import tempfile
import time
from pathlib import Path
from typing import TextIO

from exportjobs import scenarios as shipped
from exportjobs.simulator.emulator.app import EmulatorConfig
from exportjobs.simulator.emulator.embedded import EmbeddedEmulator
from exportjobs.simulator.htmlreport import write_html
from exportjobs.simulator.runner import RunResult, StepResult, run_scenario
from exportjobs.simulator.scenario import Scenario, load_scenario

GRAPH = "https://graph.microsoft.com"
SCENARIO = "duplicate-create-race.yaml"


def _scenario_path() -> Path:
    found = shipped.path(SCENARIO)
    assert found is not None, "the duplicate-create-race scenario ships with the package"
    return found


def _cell(result: StepResult) -> str:
    if result.skipped:
        return "SKIPPED"
    statuses = ", ".join(f"{s} x{n}" for s, n in sorted(result.stats.statuses.items()))
    return f"{'ok  ' if result.ok else 'FAIL'} {statuses}"


def print_side_by_side(recorded: RunResult, replayed: RunResult, out: TextIO) -> None:
    width = max(len(s.step.name) for s in recorded.steps) + 4
    print(f"\n  {'step':<{width}}{'recorded (via proxy to emulator)':<36}replayed (no upstream)", file=out)
    for rec, rep in zip(recorded.steps, replayed.steps):
        print(f"  {rec.step.name:<{width}}{_cell(rec):<36}{_cell(rep)}", file=out)
    for label, run in (("recorded", recorded), ("replayed", replayed)):
        burst = run.steps[0].details
        arrival = (f", arrival spread {burst['arrival_spread_ms']:.3f} ms"
                   if "arrival_spread_ms" in burst else "")
        verdict = "PASSED" if run.ok else "FAILED"
        print(f"  {label}: {verdict} in {run.duration_s:.1f} s; burst send spread "
              f"{burst.get('send_spread_ms', 0):.3f} ms{arrival}", file=out)
        for step in run.steps:
            for check in step.checks:
                if not check.ok:
                    print(f"    BROKEN {step.step.name}: {check.what}: expected {check.expected}, "
                          f"got {check.actual}", file=out)


def _declared(scenario: Scenario, run: RunResult) -> dict[str, str]:
    """The run's own values for the scenario's variables, so the replay sends the same requests."""
    return {name: str(run.variables[name]) for name in scenario.variables}


async def run_demo(cassette: Path | None = None, out: TextIO = sys.stdout, *,
                   report_html: Path | None = None) -> int:
    from exportjobs.addons.proxy import quiet_mitmproxy_logs, start_proxy

    started = time.perf_counter()
    scenario = load_scenario(_scenario_path())
    cassette = cassette or Path("cassettes") / "demo.yaml"
    cassette.parent.mkdir(parents=True, exist_ok=True)
    quiet_mitmproxy_logs()
    logging.getLogger("exportjobs").setLevel(logging.WARNING)  # the summaries say it all
    with tempfile.TemporaryDirectory(prefix="exportjobs-ca-") as confdir:
        print(f"1. Recording: {scenario.name} over HTTPS to {GRAPH}, through the proxy, "
              "answered by the embedded emulator", file=out, flush=True)
        with EmbeddedEmulator(EmulatorConfig(start_after=0.5, run_for=1.5)) as emulator:
            proxy = await start_proxy({"exportjobs_mode": "record", "exportjobs_cassette": cassette,
                                       "exportjobs_upstream": emulator.url, "confdir": confdir})
            tls = ssl.create_default_context(cafile=str(proxy.ca_cert))
            try:
                recorded = await run_scenario(scenario, target=GRAPH, proxy=proxy.url, ssl_context=tls)
            finally:
                await proxy.close()
        print(f"2. Emulator stopped. Replaying the cassette with no upstream at all: {cassette}",
              file=out, flush=True)
        proxy = await start_proxy({"exportjobs_mode": "replay", "exportjobs_cassette": cassette,
                                   "confdir": confdir})
        try:
            replayed = await run_scenario(scenario, target=GRAPH, proxy=proxy.url, ssl_context=tls,
                                          overrides=_declared(scenario, recorded))
        finally:
            await proxy.close()
    print_side_by_side(recorded, replayed, out)
    ok = recorded.ok and replayed.ok
    print(f"\nCassette: {cassette.resolve()}  ({cassette.stat().st_size:,} bytes, tokens redacted)",
          file=out)
    if report_html is not None:
        try:
            write_html(recorded, report_html)
        except OSError as exc:
            print(f"exportjobs demo: cannot write the HTML report {report_html}: {exc.strerror or exc}",
                  file=sys.stderr)
            return 2
        print(f"HTML report of the recorded run: {report_html.resolve()}", file=out)
    print(f"Demo {'finished' if ok else 'FAILED'} in {time.perf_counter() - started:.1f} s: "
          + ("one 201 and 49 409s naming the winner, recorded and replayed alike."
             if ok else "see the broken checks above."), file=out)
    return 0 if ok else 1
