"""Load phases: keep N requests in flight (closed model) or start R a second (open model)
for a duration, drawing requests from a weighted mix, in constant memory.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import asdict
from typing import Any

from exportjobs.simulator.expectations import Check
from exportjobs.simulator.stats import TrafficStats
from exportjobs.simulator.steps import Load, Thresholds
from exportjobs.simulator.transport import Client, PreparedRequest

# An overwhelmed target must not make the open model exhaust our memory.
_MAX_IN_FLIGHT = 10_000
_UNLIMITED = 1 << 62  # a phase without max_requests
# The series over time: a round interval giving at most SERIES_POINTS over the duration.
SERIES_POINTS = 120
MAX_POINTS = 2 * SERIES_POINTS
_WIDTHS = (0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 15, 20, 30)

# (weight, what builds the request, timeout): a new request each time when it uses
# per-request values, else the same one.
Mix = list[tuple[float, Callable[[], PreparedRequest], float]]


async def run_load(client: Client, phase: Load, mix: Mix, stats: TrafficStats,
                   bar: Any) -> tuple[dict[str, Any], list[Check]]:
    """Run one load phase; returns its details and its threshold checks."""
    weights = [w for w, _, _ in mix]
    rng = random.Random(0)  # the same mix order on every run
    duration = float(phase.duration)
    budget = phase.max_requests if phase.max_requests is not None else _UNLIMITED
    started = time.monotonic()
    deadline = started + duration

    series = Series(started, duration)

    async def one() -> None:
        _, make, timeout = mix[0] if len(mix) == 1 else rng.choices(mix, weights)[0]
        outcome = await client.send(make(), timeout=timeout)
        stats.add(outcome.status, outcome.latency_s)
        series.add(outcome.status, outcome.latency_s)

    ticker = asyncio.create_task(_tick(bar, stats, started, duration))
    try:
        if phase.concurrency is not None:
            await _closed_model(one, phase.concurrency, deadline, budget)
        else:
            assert phase.rate is not None  # the loader lets through exactly one of the two
            await _open_model(one, float(phase.rate), deadline, budget)
    finally:
        ticker.cancel()
    elapsed = time.monotonic() - started
    rps = stats.total / elapsed if elapsed > 0 else 0.0
    limits = {k: v for k, v in asdict(phase.thresholds).items() if v is not None}
    details = {"requests": stats.total, "rps": round(rps, 1),
               "error_rate": round(stats.error_rate, 4), "mix": len(mix),
               "thresholds": limits, "series": series.data()}
    return details, thresholds(phase.thresholds, stats, rps)


class Series:
    """Counts and latency percentiles per interval of a phase, by when each response came,
    for a picture of the phase over time. Bounded: at most ``SERIES_POINTS`` intervals
    over the phase's duration (the interval widens with it), and at most ``MAX_POINTS``
    in all (the last one takes the stragglers a timeout lets finish after the end). Only
    the interval being filled keeps a histogram; a closed one is a few numbers."""

    def __init__(self, started: float, duration: float) -> None:
        self.started = started
        self.width = next((w for w in _WIDTHS if duration / w <= SERIES_POINTS), duration / SERIES_POINTS)
        self.points: list[dict[str, Any]] = []
        self.index = 0
        self.current = TrafficStats()

    def add(self, status: int | None, latency_s: float) -> None:
        index = min(int((time.monotonic() - self.started) / self.width), MAX_POINTS - 1)
        while index > self.index:  # responses come in time order: earlier intervals are done
            self._close()
        self.current.add(status, latency_s)

    def _close(self) -> None:
        stats = self.current
        point: dict[str, Any] = {"t_s": round(self.index * self.width, 3), "requests": stats.total,
                                 "statuses": {str(k): v for k, v in sorted(stats.statuses.items())},
                                 "no_response": stats.no_response}
        point.update(stats.latency.summary_ms() if stats.latency.count else {})
        self.points.append(point)
        self.index += 1
        self.current = TrafficStats()

    def data(self) -> dict[str, Any]:
        """The series so far, the interval being filled included."""
        if self.current.total:
            self._close()
        return {"interval_s": self.width, "points": self.points}


async def _closed_model(one: Callable[[], Awaitable[None]], concurrency: int, deadline: float,
                        budget: int) -> None:
    sent = 0

    async def worker() -> None:
        nonlocal sent
        while time.monotonic() < deadline and sent < budget:
            sent += 1
            await one()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def _open_model(one: Callable[[], Coroutine[Any, Any, None]], rate: float, deadline: float,
                      budget: int) -> int:
    """Start requests at ``rate`` a second whatever the responses do, until ``deadline``."""
    in_flight: set[asyncio.Task[None]] = set()
    sent = 0
    start = time.monotonic()
    while sent < budget:
        due = start + sent / rate
        now = time.monotonic()
        if due >= deadline:
            break
        if due > now:
            await asyncio.sleep(due - now)
        if len(in_flight) >= _MAX_IN_FLIGHT:
            await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
        task = asyncio.create_task(one())
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
        sent += 1
    if in_flight:
        await asyncio.gather(*in_flight)
    return sent


async def _tick(bar: Any, stats: TrafficStats, started: float, duration: float) -> None:
    while True:
        await asyncio.sleep(0.25)
        elapsed = time.monotonic() - started
        rate = stats.total / elapsed if elapsed else 0
        bar.update(f"{min(elapsed, duration):5.1f}/{duration:g} s  {stats.total:,} requests  "
                   f"{rate:,.0f}/s  p95 {stats.latency.percentile(95) * 1000:.1f} ms",
                   fraction=min(1.0, elapsed / duration))


def thresholds(limits: Thresholds, stats: TrafficStats, rps: float) -> list[Check]:
    """A check for every limit a load phase set."""
    checks = []
    for key in ("p50_ms", "p95_ms", "p99_ms"):
        limit = getattr(limits, key)
        if limit is not None:
            got = stats.latency.percentile(float(key[1:3])) * 1000
            checks.append(Check(key, got <= limit, f"<= {limit:g} ms", f"{got:.2f} ms"))
    if limits.max_ms is not None:
        got = stats.latency.max_s * 1000
        checks.append(Check("max_ms", got <= limits.max_ms, f"<= {limits.max_ms:g} ms", f"{got:.2f} ms"))
    if limits.error_rate is not None:
        checks.append(Check("error_rate", stats.error_rate <= limits.error_rate,
                            f"<= {limits.error_rate:g}", f"{stats.error_rate:.4f}"))
    if limits.min_rps is not None:
        checks.append(Check("min_rps", rps >= limits.min_rps, f">= {limits.min_rps:g}/s", f"{rps:.1f}/s"))
    if stats.total == 0:
        checks.append(Check("requests", False, "at least one response", "none sent"))
    return checks
