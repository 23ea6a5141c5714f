"""What passes between the runner, the Locust master and its workers, as JSON-able data
(Locust's messages are msgpack, the master's reports to the runner are JSON lines).

Latencies travel as the buckets of ``LatencyHistogram`` (about 1% wide), not as Locust's
own response-time histogram, which rounds to whole milliseconds below 100 ms and to tens
and hundreds above: each worker files every request it sends into the same histogram the
built-in engine fills, and the runner adds the buckets up, so the percentiles a threshold
checks are as exact as the built-in engine's. Mapping keys are text (msgpack refuses
others).
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Mapping
from typing import Any

from exportjobs.simulator.load import MAX_POINTS
from exportjobs.simulator.stats import TrafficStats
from exportjobs.simulator.steps import ABSENT, RequestSpec, build
from exportjobs.simulator.values import PerRequest

_PER_REQUEST = "$per_request"


def stats_data(stats: TrafficStats) -> dict[str, Any]:
    lat = stats.latency
    return {"statuses": {str(k): v for k, v in stats.statuses.items()}, "no_response": stats.no_response,
            "buckets": {str(k): v for k, v in lat.buckets.items()}, "count": lat.count,
            "total_s": lat.total_s, "max_s": lat.max_s}


def merge_stats(into: TrafficStats, data: Mapping[str, Any]) -> None:
    """Add what ``data`` (``stats_data``'s form) counted to ``into``."""
    for status, n in data["statuses"].items():
        into.statuses[int(status)] += int(n)
    into.no_response += int(data["no_response"])
    lat = into.latency
    for bucket, n in data["buckets"].items():
        lat.buckets[int(bucket)] += int(n)
    lat.count += int(data["count"])
    lat.total_s += float(data["total_s"])
    lat.max_s = max(lat.max_s, float(data["max_s"]))


class Tally:
    """A worker's counts since its last report: in all, and per interval of the phase's
    series (by when each response came, counted from the phase's start on this worker).
    Bounded: at most ``MAX_POINTS`` intervals, each a histogram of buckets."""

    def __init__(self, started: float, width: float) -> None:
        self.started, self.width = started, width
        self.total = TrafficStats()
        self.intervals: dict[int, TrafficStats] = {}

    def add(self, status: int | None, latency_s: float) -> None:
        self.total.add(status, latency_s)
        index = min(int((time.monotonic() - self.started) / self.width), MAX_POINTS - 1)
        self.intervals.setdefault(index, TrafficStats()).add(status, latency_s)

    def take(self) -> dict[str, Any]:
        """The counts so far as data, and a fresh start."""
        data = {"total": stats_data(self.total),
                "intervals": {str(k): stats_data(v) for k, v in self.intervals.items()}}
        self.total, self.intervals = TrafficStats(), {}
        return data


def request_data(spec: RequestSpec) -> dict[str, Any]:
    """``spec`` as the YAML mapping it was built from (``${...}`` still in it)."""
    data = {}
    for f in dataclasses.fields(spec):
        value = getattr(spec, f.name)
        if value is not ABSENT:
            data[f.name] = dict(value) if isinstance(value, Mapping) else value
    return data


def request_from(data: Mapping[str, Any]) -> RequestSpec:
    return build(RequestSpec, data)


def variables_data(variables: Mapping[str, Any]) -> dict[str, Any]:
    """The run's variables; a value drawn per request travels as its spec."""
    return {k: {_PER_REQUEST: v.spec} if isinstance(v, PerRequest) else v for k, v in variables.items()}


class _Strided(PerRequest):
    """A counter drawn on one of ``stride`` workers: ``start + offset``, then every
    ``stride``-th number, so no two workers draw the same value."""

    def __init__(self, spec: Mapping[str, Any], offset: int, stride: int) -> None:
        super().__init__(spec)
        numbers = itertools.count(int(spec.get("start", 1)) + offset, stride)
        self._draw = lambda: next(numbers)


def variables_from(data: Mapping[str, Any], *, offset: int = 0, stride: int = 1) -> dict[str, Any]:
    """The variables ``variables_data`` sent, per-request ones drawing again here."""
    out: dict[str, Any] = {}
    for k, v in data.items():
        if isinstance(v, Mapping) and _PER_REQUEST in v:
            spec = v[_PER_REQUEST]
            out[k] = _Strided(spec, offset, stride) if spec["generate"] == "counter" else PerRequest(spec)
        else:
            out[k] = v
    return out
