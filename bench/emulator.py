"""Section ``emulator``: create throughput of the emulator against a minimal aiohttp handler.

Every server runs in its own process on 127.0.0.1 and gets the same wrk load (1 thread,
``connections`` connections, creates.lua), alternating minimal / reading / emulator /
emulator-409 for ``rounds`` rounds so that drift on a shared machine hits every side alike.
The figures are the medians over rounds. Every run is checked: the 201 figure counts only 201s, the
emulator's job count must match them, and the 409 path must have exactly one winner.
"""

from __future__ import annotations

from typing import Any

from bench.common import (
    BenchError,
    Options,
    SectionResult,
    WrkResult,
    fmt_ms,
    free_port,
    median,
    python_server,
    run_wrk_on,
)
from exportjobs.simulator.emulator.client import SyncEmulatorClient

NAME = "emulator"
TITLE = "Emulator create throughput vs a minimal aiohttp handler"
GOAL_RATIO = 0.8
# Jobs stay pending for the whole run, so the "same pair" load is 409s after one 201.
_PENDING_S = "3600"


def _only(result: WrkResult, status: int, who: str) -> None:
    other = {s: n for s, n in result.statuses.items() if s != status}
    socket_errors = result.socket_errors
    if other or socket_errors or result.statuses.get(status, 0) != result.requests:
        raise BenchError(
            f"{who}: expected only {status}s, got statuses {result.statuses}, "
            f"socket errors {socket_errors}, {result.requests} requests"
        )


def _check_unique(result: WrkResult, jobs: int, opts: Options) -> None:
    _only(result, 201, "emulator, unique pairs")
    # Creates still in flight when wrk stopped were served but not counted by wrk.
    created = result.statuses[201]
    if not created <= jobs <= created + opts.connections:
        raise BenchError(f"emulator holds {jobs} jobs but wrk saw {created} 201s")


def _check_conflicts(result: WrkResult, jobs: int) -> None:
    wins = result.statuses.get(201, 0)
    conflicts = result.statuses.get(409, 0)
    if wins != 1 or jobs != 1 or wins + conflicts != result.requests or result.socket_errors:
        raise BenchError(
            f"emulator, same pair: expected one 201 and only 409s after it, got "
            f"{result.statuses} for {result.requests} requests and {jobs} jobs, "
            f"socket errors {result.socket_errors}"
        )


def _summary(runs: list[WrkResult]) -> dict[str, float]:
    return {
        "rps": round(median([r.rps for r in runs]), 1),
        "cpu_us": round(median([r.cpu_us_per_request for r in runs]), 1),
        "p50_us": median([r.p50_us for r in runs]),
        "p99_us": median([r.p99_us for r in runs]),
    }


def run(wrk: str, opts: Options) -> SectionResult:
    """Run the section; raises BenchError when a figure could not be trusted."""
    port = free_port()
    minimal = python_server("minimal server", ["-m", "bench.minimal_server", "--port", str(port)],
                            port, opts)
    port = free_port()
    floor = python_server(
        "reading server", ["-m", "bench.minimal_server", "--read-body", "--port", str(port)],
        port, opts,
    )
    port = free_port()
    emulator = python_server(
        "emulator",
        ["-m", "exportjobs", "serve", "--quiet", "--port", str(port),
         "--start-after", _PENDING_S, "--run-for", _PENDING_S],
        port, opts,
    )
    rounds: list[dict[str, Any]] = []
    lines: list[str] = []
    with minimal, floor, emulator:
        control = SyncEmulatorClient(emulator.url)
        if control.info().unsafe_race_window_ms:
            raise BenchError("the emulator under test must keep its atomic check")

        def reset() -> None:
            control.reset()

        def jobs() -> int:
            return control.info().jobs

        # Warm each (imports, first allocations, connection setup) outside the figures.
        run_wrk_on(minimal, wrk, "unique", opts, opts.warmup_s)
        run_wrk_on(floor, wrk, "unique", opts, opts.warmup_s)
        run_wrk_on(emulator, wrk, "unique", opts, opts.warmup_s)
        for n in range(1, opts.rounds + 1):
            base = run_wrk_on(minimal, wrk, "unique", opts)
            _only(base, 201, "minimal server")
            reading = run_wrk_on(floor, wrk, "unique", opts)
            _only(reading, 201, "reading server")
            reset()  # each round starts from an empty store, so rounds are alike
            created = run_wrk_on(emulator, wrk, "unique", opts)
            _check_unique(created, jobs(), opts)
            reset()
            conflict = run_wrk_on(emulator, wrk, "same", opts)
            _check_conflicts(conflict, jobs())
            reset()
            rounds.append({"minimal": base, "reading": reading, "emulator": created,
                           "emulator_409": conflict})
            lines.append(
                f"  round {n}: minimal {base.rps:6.0f} req/s {base.cpu_us_per_request:4.0f} us CPU"
                f" | reading {reading.rps:6.0f} req/s {reading.cpu_us_per_request:4.0f} us CPU"
                f" | emulator 201 {created.rps:6.0f} req/s {created.cpu_us_per_request:4.0f} us CPU"
                f" ({created.rps / base.rps:.2f}x) | emulator 409 {conflict.rps:6.0f} req/s"
                f" {conflict.cpu_us_per_request:4.0f} us CPU"
            )
            print(lines[-1], flush=True)

    minimal_s = _summary([r["minimal"] for r in rounds])
    reading_s = _summary([r["reading"] for r in rounds])
    created_s = _summary([r["emulator"] for r in rounds])
    conflict_s = _summary([r["emulator_409"] for r in rounds])
    ratio = created_s["rps"] / minimal_s["rps"]
    cpu_ratio = minimal_s["cpu_us"] / created_s["cpu_us"]
    floor_ratio = reading_s["rps"] / minimal_s["rps"]
    over_floor = created_s["rps"] / reading_s["rps"]
    verdict = "meets" if ratio >= GOAL_RATIO else "misses"
    lines += [
        f"  median minimal:      {minimal_s['rps']:8.0f} req/s  p50 {fmt_ms(minimal_s['p50_us'])}"
        f"  p99 {fmt_ms(minimal_s['p99_us'])}",
        f"  median reading:      {reading_s['rps']:8.0f} req/s  p50 {fmt_ms(reading_s['p50_us'])}"
        f"  p99 {fmt_ms(reading_s['p99_us'])}",
        f"  median emulator 201: {created_s['rps']:8.0f} req/s  p50 {fmt_ms(created_s['p50_us'])}"
        f"  p99 {fmt_ms(created_s['p99_us'])}",
        f"  median emulator 409: {conflict_s['rps']:8.0f} req/s  p50 {fmt_ms(conflict_s['p50_us'])}"
        f"  p99 {fmt_ms(conflict_s['p99_us'])}",
        f"  server CPU per request: minimal {minimal_s['cpu_us']:.0f} us, reading "
        f"{reading_s['cpu_us']:.0f} us, emulator 201 "
        f"{created_s['cpu_us']:.0f} us, emulator 409 {conflict_s['cpu_us']:.0f} us "
        f"(CPU-based ratio {cpu_ratio:.2f}x)",
        f"  ratio reading/minimal: {floor_ratio:.2f}x (the most any create handler can reach)",
        f"  ratio emulator/reading: {over_floor:.2f}x",
        f"  ratio emulator/minimal (201s): {ratio:.2f}x, {verdict} the {GOAL_RATIO}x goal",
    ]
    data = {
        "minimal": minimal_s,
        "reading": reading_s,
        "emulator_201": created_s,
        "emulator_409": conflict_s,
        "ratio": round(ratio, 3),
        "cpu_ratio": round(cpu_ratio, 3),
        "reading_ratio": round(floor_ratio, 3),
        "emulator_over_reading": round(over_floor, 3),
        "goal_ratio": GOAL_RATIO,
        "rounds": [{k: v.as_dict() for k, v in r.items()} for r in rounds],
    }
    return SectionResult(data, lines, _markdown(data, rounds, verdict, opts), summary=5)


def _markdown(data: dict[str, Any], rounds: list[dict[str, WrkResult]], verdict: str,
              opts: Options) -> str:
    rows = [
        "| | requests/s | p50 latency | p99 latency | server CPU per request |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, key in (("minimal handler, 201", "minimal"),
                       ("reading handler, 201 (reads, decodes, checks the body)", "reading"),
                       ("emulator, 201 (unique pairs)", "emulator_201"),
                       ("emulator, 409 (same pair)", "emulator_409")):
        s = data[key]
        rows.append(f"| {label} | {s['rps']:.0f} | {fmt_ms(s['p50_us'])} | "
                    f"{fmt_ms(s['p99_us'])} | {s['cpu_us']:.0f} µs |")
    per_round = ", ".join(
        f"{r['minimal'].rps:.0f} / {r['reading'].rps:.0f} / {r['emulator'].rps:.0f} / "
        f"{r['emulator_409'].rps:.0f}"
        for r in rounds
    )
    return "\n".join([
        *rows,
        "",
        f"**Ratio emulator / minimal (201s): {data['ratio']:.2f}x** in requests/s, which "
        f"{verdict} the {GOAL_RATIO}x goal; {data['cpu_ratio']:.2f}x by server CPU per "
        "request. All figures are medians over the rounds.",
        "",
        f"The reading handler, which does only what no create can skip, reaches "
        f"{data['reading_ratio']:.2f}x the minimal one: that is the ceiling for any emulator "
        f"measured against this baseline. The emulator runs at "
        f"{data['emulator_over_reading']:.2f}x the reading handler.",
        "",
        f"Per round (minimal / reading / emulator 201 / emulator 409, req/s): {per_round}.",
        f"Load: wrk, 1 thread, {opts.connections} connections, {opts.duration_s} s per "
        f"measurement, {opts.rounds} rounds.",
    ])
