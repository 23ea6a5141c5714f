"""Section ``stores``: what the Redis store costs per create against the in-memory store.

Two ``exportjobs serve`` processes, one with the in-memory store and one with
``--store redis://...`` on a throwaway ``redis-server`` (free port, temporary directory, no
persistence). Both emulators and redis-server share the server core, so the CPU per create
of emulator plus Redis is the whole cost of one create on that core; wrk (1 thread,
``connections`` connections) runs on the other. Rounds alternate memory / Redis, for the
201 path (a fresh pair per create: an insert) and the 409 path (one pair: the check finds
the pending job), each store reset first.
"""

from __future__ import annotations

from typing import Any

from bench.common import (
    BenchError,
    Options,
    RedisServer,
    SectionResult,
    Server,
    WrkResult,
    fmt_ms,
    free_port,
    median,
    python_server,
    run_wrk,
    server_cpus,
)
from exportjobs.simulator.emulator.client import SyncEmulatorClient

NAME = "stores"
TITLE = "Redis store vs in-memory store: cost per create"
_PENDING_S = "3600"
PATHS = (("unique", "201 (a fresh pair per create)"), ("same", "409 (one pair)"))


def emulator_server(opts: Options, store: str | None, workers: int = 1,
                    cpus: list[int] | bool | None = True) -> Server:
    """``exportjobs serve`` with jobs pending for an hour, on ``store`` (None: in memory).

    ``cpus``: True for the bench's server cores, None to leave it free, or a list.
    """
    port = free_port()
    argv = ["-m", "exportjobs", "serve", "--quiet", "--port", str(port), "--start-after",
            _PENDING_S, "--run-for", _PENDING_S]
    if store:
        argv += ["--store", store]
    if workers > 1:
        argv += ["--workers", str(workers)]
    server = python_server(f"emulator ({store or 'memory'}, {workers} worker(s))", argv, port, opts)
    server.cpus = server_cpus(opts) if cpus is True else (cpus or None)
    return server


def measure(wrk: str, target: Server, mode: str, opts: Options,
            also: dict[str, Server] | None = None) -> tuple[WrkResult, dict[str, float]]:
    """One wrk run against ``target``; CPU seconds each of ``target`` and ``also`` spent."""
    servers = {"emulator": target, **(also or {})}
    before = {k: s.cpu_seconds() for k, s in servers.items()}
    result = run_wrk(wrk, target.url, mode, opts)
    cpu = {k: s.cpu_seconds() - before[k] for k, s in servers.items()}
    result.server_cpu_s = cpu["emulator"]
    return result, cpu


def check_creates(who: str, mode: str, result: WrkResult, jobs: int, opts: Options) -> None:
    """201 path: only 201s, one job per 201 (plus those in flight); 409 path: one winner."""
    errors = result.socket_errors
    if mode == "unique":
        created = result.statuses.get(201, 0)
        if (set(result.statuses) != {201} or errors
                or not created <= jobs <= created + opts.connections):
            raise BenchError(f"{who}: expected only 201s, one job each; got {result.statuses}, "
                             f"{jobs} jobs, socket errors {errors}")
    elif (result.statuses.get(201) != 1 or jobs != 1 or errors
          or result.statuses.get(409, 0) + 1 != result.requests):
        raise BenchError(f"{who}: expected one 201 then only 409s; got {result.statuses} for "
                         f"{result.requests} requests, {jobs} jobs, socket errors {errors}")


def run(wrk: str, opts: Options) -> SectionResult:
    lines: list[str] = []
    runs: dict[str, list[dict[str, Any]]] = {f"{s}_{m}": [] for s in ("memory", "redis")
                                             for m, _ in PATHS}
    with RedisServer(server_cpus(opts)) as redis:
        memory_emulator = emulator_server(opts, None)
        redis_emulator = emulator_server(opts, redis.url())
        with memory_emulator, redis_emulator:
            controls = {"memory": SyncEmulatorClient(memory_emulator.url),
                        "redis": SyncEmulatorClient(redis_emulator.url)}
            servers = {"memory": memory_emulator, "redis": redis_emulator}
            for server in servers.values():
                run_wrk(wrk, server.url, "unique", opts, opts.warmup_s)
            for n in range(1, opts.rounds + 1):
                parts = []
                for mode, _ in PATHS:
                    for store in ("memory", "redis"):
                        controls[store].reset()
                        also = {"redis": redis.server} if store == "redis" else {}
                        result, cpu = measure(wrk, servers[store], mode, opts, also)
                        check_creates(f"{store} store, {mode}", mode, result,
                                      controls[store].info().jobs, opts)
                        controls[store].reset()
                        total = sum(cpu.values())
                        runs[f"{store}_{mode}"].append({
                            "rps": result.rps, "p50_us": result.p50_us, "p99_us": result.p99_us,
                            "emulator_cpu_us": cpu["emulator"] * 1e6 / result.requests,
                            "redis_cpu_us": cpu.get("redis", 0.0) * 1e6 / result.requests,
                            "cpu_us": total * 1e6 / result.requests})
                        parts.append(f"{store} {mode} {result.rps:5.0f} req/s "
                                     f"{total * 1e6 / result.requests:4.0f} us")
                lines.append(f"  round {n}: " + " | ".join(parts))
                print(lines[-1], flush=True)
    summary = {key: {f: round(median([r[f] for r in rs]), 1) for f in rs[0]}
               for key, rs in runs.items()}
    for mode, label in PATHS:
        m, r = summary[f"memory_{mode}"], summary[f"redis_{mode}"]
        lines.append(
            f"  {label}: memory {m['rps']:.0f} req/s {m['cpu_us']:.0f} us CPU p99 "
            f"{fmt_ms(m['p99_us'])} | redis {r['rps']:.0f} req/s {r['cpu_us']:.0f} us CPU "
            f"(emulator {r['emulator_cpu_us']:.0f} + redis-server {r['redis_cpu_us']:.0f}) p99 "
            f"{fmt_ms(r['p99_us'])} | +{r['cpu_us'] - m['cpu_us']:.0f} us per create, "
            f"{r['rps'] / m['rps']:.2f}x the rate")
    data = {"summary": summary, "rounds": runs}
    return SectionResult(data, lines, _markdown(summary, opts), summary=len(PATHS))


def _markdown(s: dict[str, dict[str, float]], opts: Options) -> str:
    rows = ["| path | store | requests/s | p50 latency | p99 latency | CPU per create "
            "(emulator + redis-server) |", "|---|---|---:|---:|---:|---:|"]
    notes = []
    for mode, label in PATHS:
        for store in ("memory", "redis"):
            r = s[f"{store}_{mode}"]
            split = (f" ({r['emulator_cpu_us']:.0f} + {r['redis_cpu_us']:.0f})"
                     if store == "redis" else "")
            rows.append(f"| {label} | {store} | {r['rps']:.0f} | {fmt_ms(r['p50_us'])} | "
                        f"{fmt_ms(r['p99_us'])} | {r['cpu_us']:.0f} µs{split} |")
        m, r = s[f"memory_{mode}"], s[f"redis_{mode}"]
        notes.append(f"{label}: Redis adds **{r['cpu_us'] - m['cpu_us']:.0f} µs of CPU per "
                     f"create** ({r['cpu_us'] / m['cpu_us']:.2f}x), of which the emulator's "
                     f"own share (client, script call, decoding) is "
                     f"{r['emulator_cpu_us'] - m['emulator_cpu_us']:.0f} µs; it runs at "
                     f"**{r['rps'] / m['rps']:.2f}x** the in-memory rate, p99 "
                     f"{fmt_ms(r['p99_us'])} against {fmt_ms(m['p99_us'])}.")
    return "\n".join([
        *rows, "", *(f"- {n}" for n in notes), "",
        f"Load: wrk, 1 thread, {opts.connections} connections, {opts.duration_s} s per "
        f"measurement, {opts.rounds} alternating rounds (medians). Both emulators and a "
        "throwaway redis-server (no persistence) share one core, wrk runs on the other, so "
        "the CPU per create is the whole cost on the server core.",
        "",
        "Command: `make bench BENCH_ARGS=\"--only stores\"`.",
    ])
