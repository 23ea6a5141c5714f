"""Section ``engines``: requests/s per core of the load engines: Locust, built-in, wrk.

The same load (the list of a one-job emulator store, ``connections`` in flight) from wrk,
``exportjobs run`` on its built-in engine, and ``exportjobs run --engine locust
--locust-workers N`` (a Locust master in the run's process and N local worker processes).
Each load generator is pinned to the load core and the emulator to the other; rounds
alternate. The figure is requests/s per core of the load generator: its requests/s divided
by the cores it used (CPU seconds of the process and every child it waited for, over wall
seconds), so a generator that cannot saturate the emulator is still compared fairly.

The Locust engine is optional: when ``exportjobs run`` has no ``--engine`` option or the
``locust`` package is missing, the section says so and skips (docs left as they are).
``BENCH_EXPORTJOBS_PYTHON`` names another interpreter whose ``-m exportjobs run`` to measure
(an install with the engine), while the emulator stays this checkout's.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    CREATE_PATH,
    ROOT,
    BenchError,
    Options,
    SectionResult,
    free_port,
    load_cpu,
    median,
    pinned,
    python_server,
    run_wrk,
    tree_cpu_seconds,
)
from bench.simulator import LOAD_SCENARIO, ORG

NAME = "engines"
TITLE = "Load engines: Locust vs built-in vs wrk, requests/s per core"
LOCUST_WORKERS = (1, 2)

# Runs the command given as its arguments and prints the CPU seconds it and every
# descendant it waited for used (user + system), then the command's exit status.
_CPU_WRAPPER = (
    "import resource, subprocess, sys\n"
    "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
    "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "print(u.ru_utime + u.ru_stime)\n"
    "sys.stderr.write(p.stdout[-3000:] + p.stderr[-3000:]); sys.exit(p.returncode)\n"
)


def engine_python() -> str:
    return os.environ.get("BENCH_EXPORTJOBS_PYTHON") or sys.executable


def locust_missing(python: str) -> str | None:
    """Why the Locust engine cannot run here, or None when it can."""
    done = subprocess.run([python, "-m", "exportjobs", "run", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    if "--engine" not in done.stdout or "locust" not in done.stdout:
        return (f"`{python} -m exportjobs run` has no `--engine locust` option (the Locust "
                "engine is not in this checkout)")
    probe = subprocess.run([python, "-c", "import locust"], capture_output=True, text=True,
                           timeout=60)
    if probe.returncode != 0:
        return f"the locust package is not installed for {python}"
    return None


def _engine_load(python: str, url: str, opts: Options, engine_args: list[str]) -> dict[str, Any]:
    """One ``exportjobs run`` of the load scenario: requests/s and the cores it used."""
    with tempfile.TemporaryDirectory(prefix="bench-engines-") as tmp:
        scenario = Path(tmp) / "load.yaml"
        scenario.write_text(LOAD_SCENARIO.format(connections=opts.connections,
                                                 duration=opts.duration_s,
                                                 max_requests=10**9, path=CREATE_PATH))
        report = Path(tmp) / "report.json"
        argv = [python, "-m", "exportjobs", "run", str(scenario), "--target", url,
                "--report-json", str(report), "--no-progress", *engine_args]
        started = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-c", _CPU_WRAPPER, *argv], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=pinned(load_cpu(opts)))
        # Also sampled while it runs: a worker process its parent never waits for would be
        # missing from the wrapper's RUSAGE_CHILDREN, but not from the live process tree.
        sampled = 0.0
        deadline = started + opts.duration_s + 180
        while proc.poll() is None and time.monotonic() < deadline:
            sampled = max(sampled, tree_cpu_seconds(proc.pid))
            time.sleep(0.1)
        try:
            out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise BenchError(f"exportjobs run {' '.join(engine_args)} did not finish in time") from None
        wall = time.monotonic() - started
        if proc.returncode != 0:
            raise BenchError(f"exportjobs run {' '.join(engine_args)} failed "
                             f"({proc.returncode}):\n{err[-3000:]}")
        cpu_s = max(float(out.strip().splitlines()[-1]), sampled)
        data = json.loads(report.read_text())
    step = data["steps"][0]
    if set(step["statuses"]) != {"200"} or step["no_response"]:
        raise BenchError(f"exportjobs run {' '.join(engine_args)} saw {step['statuses']}, "
                         f"{step['no_response']} without a response")
    rps = float(step["details"]["rps"])
    requests = int(step["details"]["requests"])
    # Over the whole run: its wall time also holds start-up (and, for Locust, its workers
    # joining), which a user pays for as well.
    return {"rps": rps, "requests": requests, "cpu_s": cpu_s, "wall_s": wall,
            "cores": cpu_s / wall, "rps_per_core": requests / cpu_s if cpu_s else 0.0,
            "p99_ms": step["latency_ms"]["p99_ms"]}


def _wrk_load(wrk: str, url: str, opts: Options) -> dict[str, Any]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    result = run_wrk(wrk, url, "list", opts)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    if set(result.statuses) != {200}:
        raise BenchError(f"wrk saw statuses {result.statuses}")
    return {"rps": result.rps, "requests": result.requests, "cpu_s": cpu_s, "wall_s": wall,
            "cores": cpu_s / wall, "rps_per_core": result.requests / cpu_s if cpu_s else 0.0,
            "p99_ms": result.p99_us / 1000}


def _seed(url: str) -> None:
    """One job in the store, so every engine loads the same small list."""
    import asyncio
    import uuid

    from exportjobs.simulator.emulator.auth import fake_token
    from exportjobs.simulator.transport import Client, prepare_request

    async def seed() -> None:
        client = Client()
        body = {"goalsOrganizationId": ORG, "explorerViewId": str(uuid.uuid4())}
        await client.send(prepare_request({"method": "POST", "path": CREATE_PATH, "json": body},
                                          {}, target=url, token=fake_token()))
        await client.close()

    asyncio.run(seed())


def run(wrk: str, opts: Options) -> SectionResult:
    python = engine_python()
    missing = locust_missing(python)
    if missing:
        line = f"  skipped: {missing}; the built-in engine and wrk are measured in `simulator`"
        return SectionResult({"skipped": missing}, [line], "", summary=1, skipped=missing)
    sides: dict[str, list[str] | None] = {"wrk": None, "built-in engine": []}
    for n in LOCUST_WORKERS:
        sides[f"Locust, {n} worker(s)"] = ["--engine", "locust", "--locust-workers", str(n)]
    port = free_port()
    emulator = python_server("emulator", ["-m", "exportjobs", "serve", "--quiet", "--port",
                                          str(port), "--start-after", "3600", "--run-for",
                                          "3600"], port, opts)
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in sides}
    lines: list[str] = []
    with emulator:
        _seed(emulator.url)
        for r in range(1, opts.rounds + 1):
            parts = []
            for label, args in sides.items():
                got = (_wrk_load(wrk, emulator.url, opts) if args is None
                       else _engine_load(python, emulator.url, opts, args))
                runs[label].append(got)
                parts.append(f"{label} {got['rps']:6.0f} req/s on {got['cores']:.2f} cores")
            lines.append(f"  round {r}: " + " | ".join(parts))
            print(lines[-1], flush=True)
    s = {k: {f: round(median([x[f] for x in v]), 2) for f in v[0]} for k, v in runs.items()}
    base = s["built-in engine"]["rps_per_core"]
    for label, v in s.items():
        lines.append(f"  {label}: {v['rps']:.0f} req/s, {v['rps_per_core']:.0f} req/s per core "
                     f"({v['rps_per_core'] / base:.2f}x the built-in engine)")
    data = {"summary": s, "rounds": runs, "python": python}
    return SectionResult(data, lines, _markdown(s, opts), summary=len(s))


def _markdown(s: dict[str, dict[str, float]], opts: Options) -> str:
    base = s["built-in engine"]["rps_per_core"]
    rows = ["| load generator | requests/s | cores it used | requests/s per core | "
            "vs built-in, per core | p99 latency |", "|---|---:|---:|---:|---:|---:|"]
    rows += [f"| {label} | {v['rps']:.0f} | {v['cores']:.2f} | {v['rps_per_core']:.0f} | "
             f"{v['rps_per_core'] / base:.2f}x | {v['p99_ms']:.2f} ms |" for label, v in s.items()]
    return "\n".join([
        *rows, "",
        f"Load: the list of a one-job emulator store, {opts.connections} in flight, "
        f"{opts.duration_s} s per measurement, {opts.rounds} alternating rounds (medians). "
        "Every load generator (with all its processes) pinned to one core, the emulator to "
        "the other. Cores used: CPU seconds of the generator and its children over the wall "
        "time of the whole run (start-up included, so engines that start workers pay for it).",
        "",
        "Command: `make bench BENCH_ARGS=\"--only engines\"`.",
    ])
