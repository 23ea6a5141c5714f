"""Timestamps as Graph writes them (ISO 8601, UTC, a Z)."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime


def graph_date(moment: datetime | None = None) -> str:
    """ISO 8601 UTC with a Z, as Graph writes timestamps (``2023-06-19T12:06:03.0024Z``)."""
    if moment is None:  # now: every error body has one, so take graph_time's cheaper path
        return graph_time(time.time())
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-2] + "Z"


# The last whole second graph_time formatted: consecutive creates mostly share it.
_last_second: tuple[int, str] = (0, "1970-01-01T00:00:00")


def graph_time(epoch_s: float) -> str:
    """``graph_date`` of a Unix timestamp, without building a datetime (a create hot path).

    Rounds to the microsecond exactly as ``datetime.fromtimestamp`` does (half to even),
    so the text is the same as ``graph_date(datetime.fromtimestamp(epoch_s, utc))``.
    """
    global _last_second
    frac, whole = math.modf(epoch_s)
    second, us = int(whole), round(frac * 1e6)
    if us >= 1_000_000:
        second, us = second + 1, us - 1_000_000
    elif us < 0:
        second, us = second - 1, us + 1_000_000
    if _last_second[0] != second:
        _last_second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{_last_second[1]}.{us // 100:04d}Z"
