"""Section ``workers``: ``exportjobs serve --workers 2`` against one worker, both on Redis.

``--workers`` needs a shared store, so both sides use ``--store redis://...`` on one
throwaway redis-server. On a 2-core machine there is no core to spare for the load
generator: nothing is pinned, and wrk, redis-server and the workers share both cores as the
kernel schedules them. Next to requests/s the section reports how many cores each party
used (CPU seconds over wall seconds), which says what the load generator's own share does
to the figure: two workers can use at most 2 minus (wrk + redis-server) cores.
"""

from __future__ import annotations

import dataclasses
import os
import resource
import time
from typing import Any

from bench.common import (
    BenchError,
    Options,
    RedisServer,
    SectionResult,
    Server,
    WrkResult,
    median,
    run_wrk,
    tree_cpu_seconds,
)
from bench.stores import check_creates, emulator_server
from exportjobs.simulator.emulator.client import SyncEmulatorClient

NAME = "workers"
TITLE = "serve --workers 2 vs one worker (Redis store), on this machine's cores"
WORKERS = (1, 2)


def _children_cpu() -> float:
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


def _measure(wrk: str, server: Server, redis: RedisServer, mode: str,
             opts: Options) -> tuple[WrkResult, dict[str, float]]:
    """One unpinned wrk run; the cores (CPU s / wall s) the emulator, Redis and wrk used."""
    assert server.process is not None
    emulator_before = tree_cpu_seconds(server.process.pid)
    redis_before = redis.server.cpu_seconds()
    wrk_before = _children_cpu()  # wrk is the only child reaped meanwhile
    started = time.monotonic()
    result = run_wrk(wrk, server.url, mode, opts)
    wall = time.monotonic() - started
    cores = {"emulator": (tree_cpu_seconds(server.process.pid) - emulator_before) / wall,
             "redis": (redis.server.cpu_seconds() - redis_before) / wall,
             "wrk": (_children_cpu() - wrk_before) / wall}
    result.server_cpu_s = cores["emulator"] * wall
    return result, cores


def run(wrk: str, opts: Options) -> SectionResult:
    cpus = os.cpu_count() or 1
    free = dataclasses.replace(opts, pin=False)  # no spare core: everything shares them all
    lines: list[str] = []
    runs: dict[int, list[dict[str, Any]]] = {n: [] for n in WORKERS}
    with RedisServer(None) as redis:
        servers = {n: emulator_server(free, redis.url(n - 1), workers=n, cpus=None)
                   for n in WORKERS}
        with servers[1], servers[2]:
            controls = {n: SyncEmulatorClient(s.url) for n, s in servers.items()}
            for server in servers.values():
                run_wrk(wrk, server.url, "unique", free, opts.warmup_s)
            for r in range(1, opts.rounds + 1):
                parts = []
                for n in WORKERS:
                    controls[n].reset()
                    result, cores = _measure(wrk, servers[n], redis, "unique", free)
                    check_creates(f"{n} worker(s)", "unique", result, controls[n].info().jobs,
                                  opts)
                    controls[n].reset()
                    runs[n].append({"rps": result.rps, "p50_us": result.p50_us,
                                    "p99_us": result.p99_us,
                                    "emulator_cpu_us": result.cpu_us_per_request,
                                    **{f"{k}_cores": v for k, v in cores.items()}})
                    parts.append(f"{n} worker(s) {result.rps:5.0f} req/s, cores: emulator "
                                 f"{cores['emulator']:.2f} redis {cores['redis']:.2f} wrk "
                                 f"{cores['wrk']:.2f}")
                lines.append(f"  round {r}: " + " | ".join(parts))
                print(lines[-1], flush=True)
    if not all(runs.values()):
        raise BenchError("no rounds ran")
    s = {n: {f: round(median([x[f] for x in rs]), 2) for f in rs[0]} for n, rs in runs.items()}
    ratio = s[2]["rps"] / s[1]["rps"]
    lines.append(f"  --workers 2 / 1: {ratio:.2f}x req/s ({s[1]['rps']:.0f} -> {s[2]['rps']:.0f}); "
                 f"the emulator used {s[1]['emulator_cores']:.2f} -> {s[2]['emulator_cores']:.2f} "
                 f"cores while wrk used {s[2]['wrk_cores']:.2f} and redis-server "
                 f"{s[2]['redis_cores']:.2f} of the {cpus}")
    data = {"summary": {str(n): v for n, v in s.items()}, "ratio": round(ratio, 3), "cpus": cpus,
            "rounds": {str(n): v for n, v in runs.items()}}
    return SectionResult(data, lines, _markdown(s, ratio, cpus, opts), summary=1)


def _markdown(s: dict[int, dict[str, float]], ratio: float, cpus: int, opts: Options) -> str:
    rows = ["| `serve` | requests/s | p50 latency | p99 latency | emulator CPU per create | "
            "cores used: emulator / redis-server / wrk |", "|---|---:|---:|---:|---:|---:|"]
    for n in WORKERS:
        r = s[n]
        rows.append(f"| `--workers {n}` | {r['rps']:.0f} | {r['p50_us'] / 1000:.2f} ms | "
                    f"{r['p99_us'] / 1000:.2f} ms | {r['emulator_cpu_us']:.0f} µs | "
                    f"{r['emulator_cores']:.2f} / {r['redis_cores']:.2f} / {r['wrk_cores']:.2f} |")
    left = cpus - s[2]["wrk_cores"] - s[2]["redis_cores"]
    return "\n".join([
        *rows, "",
        f"**`--workers 2` / one worker: {ratio:.2f}x** in requests/s (creates with a fresh pair "
        "each, the Redis store for both).",
        "",
        f"On this {cpus}-core machine nothing is pinned: wrk, redis-server and the workers share "
        f"every core. With two workers, wrk used {s[2]['wrk_cores']:.2f} of a core and "
        f"redis-server {s[2]['redis_cores']:.2f}, which left the workers about {left:.2f} "
        f"cores; they used {s[2]['emulator_cores']:.2f} (one worker: "
        f"{s[1]['emulator_cores']:.2f}, at most one core; anything else running on the "
        "machine takes its share too). A second worker can add at most what the load "
        "generator and Redis leave over, so this ratio is a floor: on a machine with cores to "
        "spare for the load generator, or with the load sent from another host, the second "
        "worker has a whole core.",
        "",
        f"Load: wrk, 1 thread, {opts.connections} connections, {opts.duration_s} s per "
        f"measurement, {opts.rounds} alternating rounds (medians); a throwaway redis-server "
        "with no persistence, one database per side.",
        "",
        "Command: `make bench BENCH_ARGS=\"--only workers\"`.",
    ])
