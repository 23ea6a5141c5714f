"""``exportjobs demo``: record the duplicate-create race through the proxy, then replay it
with no upstream at all, and show both runs side by side.

The client speaks HTTPS to graph.microsoft.com through the proxy, exactly as a real client
would; the proxy sends that traffic to the embedded emulator while recording, and answers
it from the cassette while replaying. Nothing leaves the machine. Both runs go through
``exportjobs.session``, as ``exportjobs run --record`` and ``--replay`` do, so the command
the demo prints at the end replays its cassette the same way.
"""

from __future__ import annotations

import logging
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import TextIO

from exportjobs import scenarios as shipped
from exportjobs import session
from exportjobs.session import GRAPH
from exportjobs.simulator.emulator.app import EmulatorConfig
from exportjobs.simulator.htmlreport import write_html
from exportjobs.simulator.runner import RunResult, StepResult
from exportjobs.simulator.scenario import load_scenario

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


async def run_demo(cassette: Path | None = None, out: TextIO = sys.stdout, *,
                   report_html: Path | None = None) -> int:
    """Record, then replay, through ``exportjobs.session`` (the code of ``exportjobs run
    --record`` and ``--replay``), and print the command that replays the cassette."""
    from exportjobs.addons.proxy import quiet_mitmproxy_logs

    started = time.perf_counter()
    scenario = load_scenario(_scenario_path())
    cassette = cassette or Path("cassettes") / "demo.yaml"
    quiet_mitmproxy_logs()
    logging.getLogger("exportjobs").setLevel(logging.WARNING)  # the summaries say it all
    with tempfile.TemporaryDirectory(prefix="exportjobs-ca-") as confdir:
        print(f"1. Recording: {scenario.name} over HTTPS to {GRAPH}, through the proxy, "
              "answered by the embedded emulator", file=out, flush=True)
        recorded = await session.record(
            scenario, cassette, confdir=confdir,
            options=session.RunOptions(emulator_config=EmulatorConfig(start_after=0.5, run_for=1.5)))
        print(f"2. Emulator stopped. Replaying the cassette with no upstream at all: {cassette}",
              file=out, flush=True)
        replayed = await session.replay(scenario, cassette, confdir=confdir)
    print_side_by_side(recorded.result, replayed.result, out)
    ok = recorded.result.ok and replayed.result.ok
    print(f"\nCassette: {cassette.resolve()}  ({cassette.stat().st_size:,} bytes, tokens redacted; "
          f"the run's variables in its header: {', '.join(recorded.stored)})", file=out)
    print(f"Replay: {replayed.upstream_connections} connections upstream", file=out)
    if report_html is not None:
        try:
            write_html(recorded.result, report_html)
        except OSError as exc:
            print(f"exportjobs demo: cannot write the HTML report {report_html}: {exc.strerror or exc}",
                  file=sys.stderr)
            return 2
        print(f"HTML report of the recorded run: {report_html.resolve()}", file=out)
    print(f"Demo {'finished' if ok else 'FAILED'} in {time.perf_counter() - started:.1f} s: "
          + ("one 201 and 49 409s naming the winner, recorded and replayed alike."
             if ok else "see the broken checks above."), file=out)
    print(f"Replay it yourself: {replay_command(cassette)}", file=out)
    return 0 if ok else 1


def replay_command(cassette: Path) -> str:
    """The command that replays the demo's cassette, as typed in the folder the demo ran in."""
    return f"exportjobs run {scenario_name()} --replay {shlex.quote(str(cassette))}"


def scenario_name() -> str:
    return SCENARIO.removesuffix(".yaml")
