"""Streaming statistics: latency percentiles and status counts in constant memory.

A load phase of any length keeps only bucket counts, never a list per request, so its
memory stays flat however many requests it sends.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

_GROWTH = 1.01  # bucket width: each bucket is 1% wider than the one before
_LOG_GROWTH = math.log(_GROWTH)


@dataclass
class LatencyHistogram:
    """Latencies in log-spaced buckets of microseconds (about 1% resolution)."""

    buckets: Counter[int] = field(default_factory=Counter)
    count: int = 0
    total_s: float = 0.0
    max_s: float = 0.0

    def add(self, seconds: float) -> None:
        us = seconds * 1e6
        self.buckets[int(math.log(us) / _LOG_GROWTH) if us > 1 else 0] += 1
        self.count += 1
        self.total_s += seconds
        if seconds > self.max_s:
            self.max_s = seconds

    def percentile(self, p: float) -> float:
        """The ``p``-th percentile (0 to 100) in seconds; 0 when empty."""
        if not self.count:
            return 0.0
        rank = max(1, math.ceil(self.count * p / 100))
        seen = 0
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if seen >= rank:
                return min(self.max_s, _GROWTH ** (index + 0.5) / 1e6)
        return self.max_s

    def summary_ms(self) -> dict[str, float]:
        return {
            "p50_ms": round(self.percentile(50) * 1000, 3),
            "p95_ms": round(self.percentile(95) * 1000, 3),
            "p99_ms": round(self.percentile(99) * 1000, 3),
            "max_ms": round(self.max_s * 1000, 3),
        }


@dataclass
class TrafficStats:
    """What a step sent and got back: counts per status, failures, latencies."""

    statuses: Counter[int] = field(default_factory=Counter)
    no_response: int = 0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)

    def add(self, status: int | None, latency_s: float) -> None:
        if status is None:
            self.no_response += 1
        else:
            self.statuses[status] += 1
            self.latency.add(latency_s)

    @property
    def total(self) -> int:
        return sum(self.statuses.values()) + self.no_response

    @property
    def error_rate(self) -> float:
        """Share of requests with no response or a status of 500 or more."""
        if not self.total:
            return 0.0
        errors = self.no_response + sum(n for s, n in self.statuses.items() if s >= 500)
        return errors / self.total
