"""The runner's side of the Locust engine: runs one load phase through a Locust master
in a child process and fills the step's stats as the built-in engine does.

Plain asyncio, no locust import (see the package's docstring for why). The master is
started in a session of its own, so it and the local workers it starts are one process
group, killed together when the phase ends, fails or is interrupted (Ctrl-C). Every wait
is bounded: the master's own (workers joining, the phase ending) and, should the master
itself hang, the runner's, a little longer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from exportjobs.simulator.expectations import Check
from exportjobs.simulator.load import _UNLIMITED, Series, thresholds
from exportjobs.simulator.locust.wire import merge_stats, request_data, variables_data
from exportjobs.simulator.stats import TrafficStats
from exportjobs.simulator.steps import Load

GRACE_S = 5.0  # beyond the phase's duration and its slowest timeout
_LINE_LIMIT = 1 << 24


class _MergedSeries(Series):
    """The phase's series from the intervals the workers counted."""

    def __init__(self, duration: float) -> None:
        super().__init__(0.0, duration)
        self.parts: dict[int, TrafficStats] = {}

    def merge(self, intervals: dict[str, Any]) -> None:
        for index, data in intervals.items():
            merge_stats(self.parts.setdefault(int(index), TrafficStats()), data)

    def data(self) -> dict[str, Any]:
        for index in sorted(self.parts):
            while self.index < index:
                self._close()
            self.current = self.parts[index]
        return super().data()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LocustEngine:
    """Load phases on Locust: ``workers`` local worker processes, and ``remote_workers``
    more that join from elsewhere (``exportjobs locust-worker --master HOST:PORT``)."""

    workers: int = 2
    remote_workers: int = 0
    bind: str = "127.0.0.1"
    port: int | None = None  # None: a free port (local workers only)
    web_port: int | None = None  # Locust's web UI on 127.0.0.1, when given
    wait: float = 30.0  # for the workers to connect
    cacert: str | None = None

    name = "locust"

    async def run_load(self, phase: Load, *, target: str, token: str, variables: dict[str, Any],
                       timeouts: list[float], connect_timeout: float, stats: TrafficStats,
                       bar: Any) -> tuple[dict[str, Any], list[Check]]:
        """Run ``phase`` on Locust; its details and checks, as ``load.run_load`` gives them."""
        grace = max(timeouts) + GRACE_S
        duration = float(phase.duration)
        series = _MergedSeries(duration)
        spec = {
            "target": target, "bind": self.bind, "port": self.port or _free_port(),
            "workers": self.workers, "remote_workers": self.remote_workers, "wait": self.wait,
            "web": self.web_port is not None, "web_port": self.web_port, "grace": grace,
            "phase": {
                "target": target, "token": token, "variables": variables_data(variables),
                "mix": [{"weight": item.weight, "timeout": t, "request": request_data(item.request)}
                        for item, t in zip(phase.mix, timeouts)],
                "concurrency": phase.concurrency, "rate": None if phase.rate is None else float(phase.rate),
                "max_requests": phase.max_requests if phase.max_requests is not None else _UNLIMITED,
                "duration": duration, "width": series.width, "connect_timeout": connect_timeout,
                "cadata": Path(self.cacert).read_text(encoding="utf-8") if self.cacert else None,
            },
        }
        engine: dict[str, Any] = {"engine": self.name, "workers": self.workers + self.remote_workers}
        with tempfile.TemporaryFile() as log:
            master = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "exportjobs.simulator.locust.master", stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=log, start_new_session=True, limit=_LINE_LIMIT)
            try:
                assert master.stdin is not None and master.stdout is not None
                master.stdin.write(json.dumps(spec).encode())
                master.stdin.close()
                # The master gives up on its own first; this only catches a master that hangs.
                limit = 2 * self.wait + duration + grace + 10
                outcome = await asyncio.wait_for(self._follow(master.stdout, stats, series, bar, duration), limit)
            except TimeoutError:
                outcome = {"error": f"the Locust master did not answer within {limit:g} s"}
            finally:
                await _end(master)
            if "error" in outcome:
                log.seek(0)
                tail = [ln for ln in log.read().decode(errors="replace").splitlines() if ln.strip()][-3:]
                why = outcome["error"] + (f" (its log: {' | '.join(tail)})" if tail else "")
                engine["error"] = why
        if "error" in engine:
            elapsed = 0.0
        else:
            elapsed = float(outcome["done"]["elapsed_s"])
            engine["workers"] = int(outcome["done"]["workers"])
        rps = stats.total / elapsed if elapsed > 0 else 0.0
        limits = {k: v for k, v in asdict(phase.thresholds).items() if v is not None}
        details = {"requests": stats.total, "rps": round(rps, 1), "error_rate": round(stats.error_rate, 4),
                   "mix": len(phase.mix), "thresholds": limits, "series": series.data(), **engine}
        if "error" in engine:
            return details, [Check("locust", False, "the phase to run on Locust", engine["error"])]
        return details, thresholds(phase.thresholds, stats, rps)

    async def _follow(self, lines: asyncio.StreamReader, stats: TrafficStats, series: _MergedSeries,
                      bar: Any, duration: float) -> dict[str, Any]:
        """Fold the master's reports into ``stats`` until it says done or what went wrong."""
        started = time.monotonic()
        async for raw in lines:
            try:
                line = json.loads(raw)
            except ValueError:
                continue  # not a report (a library printing to stdout)
            if "stats" in line:
                merge_stats(stats, line["stats"]["total"])
                series.merge(line["stats"]["intervals"])
            elif "started" in line:
                started = time.monotonic()
            elif "web" in line:
                print(f"exportjobs run: Locust's web UI: {line['web']}", file=sys.stderr)
            elif "done" in line or "error" in line:
                return dict(line)
            elapsed = time.monotonic() - started
            bar.update(f"{min(elapsed, duration):5.1f}/{duration:g} s  {stats.total:,} requests  "
                       f"on Locust  p95 {stats.latency.percentile(95) * 1000:.1f} ms",
                       fraction=min(1.0, elapsed / duration))
        return {"error": "the Locust master ended without a result"}


async def _end(master: asyncio.subprocess.Process) -> None:
    """The master and its local workers (its process group) ended: asked, then killed."""
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(master.pid, sig)
        try:
            await asyncio.wait_for(asyncio.shield(master.wait()), wait)
            return
        except TimeoutError:
            continue
