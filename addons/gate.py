"""The race gate: hold identical creates until N have arrived, then release them together.

Options: ``exportjobs_gate`` (N; 0 turns the gate off) and ``exportjobs_gate_timeout``
(seconds; a gate that has not filled by then releases what it holds). Creates are identical
when they name the same goalsOrganizationId and explorerViewId (compared case-insensitively,
as Graph compares GUIDs). So copies of a user's own client, each creating once with no
synchronisation of their own, reach the service as one burst.

When a gate's requests have all been answered it logs one ``GATE`` line and appends a
``GateReport``: how many were held, for how long, the spread of their release in the proxy,
the spread of their arrival at the upstream when the upstream is our emulator (its control
API), and the outcome (one 201, the rest 409, when the service is right).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass, field

from mitmproxy import ctx, http

from exportjobs.addons import annotate
from exportjobs.addons.guard import FailClosed
from exportjobs.addons.options import OptionError
from exportjobs.addons.scope import OptionScope
from exportjobs.addons.traffic import traffic
from exportjobs.graph import create_key
from exportjobs.simulator.emulator.client import EmulatorClient, EmulatorError

log = logging.getLogger("exportjobs.proxy")

GATE_META = "exportjobs_gate"
MAX_GATE_TIMEOUT = 86_400.0  # a day: a gate is for a burst, not a schedule

Pair = tuple[str, str]


@dataclass
class GateReport:
    organization: str
    view: str
    held: int
    reason: str  # "count" (N arrived) or "timeout"
    held_ms: float  # first arrival at the proxy to the release
    arrival_spread_ms: float  # first to last arrival at the proxy
    release_spread_ms: float  # first to last held request resuming after the release
    statuses: dict[str, int]  # status (or "error") -> how many
    upstream_arrival_spread_ms: float | None = None  # at the emulator, when it is the upstream

    def line(self) -> str:
        outcome = " ".join(f"{s}x{n}" for s, n in sorted(self.statuses.items()))
        upstream = ("" if self.upstream_arrival_spread_ms is None
                    else f"; upstream arrival spread {self.upstream_arrival_spread_ms:.3f}ms")
        return (f"GATE   create org={self.organization} view={self.view}: released {self.held} "
                f"({'count reached' if self.reason == 'count' else 'timeout'}) after holding "
                f"{self.held_ms:.1f}ms; release spread {self.release_spread_ms:.3f}ms{upstream}; "
                f"outcome {outcome}")


@dataclass
class _Hold:
    pair: Pair
    first_arrival: float
    waiters: list[asyncio.Future[None]] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    resumed: list[float] = field(default_factory=list)
    statuses: list[int | str] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None
    reason: str = ""
    released_at: float = 0.0
    released_ns: int = 0  # monotonic, comparable with the emulator's arrival stamps
    job_id: str | None = None


def create_pair(request: http.Request) -> Pair | None:
    """The pair Graph deduplicates a create on (``graph.create_key``); None when Graph would
    refuse the body, so it is no create to race."""
    return create_key(request.get_content(strict=False) or b"")


class RaceGate(FailClosed):
    def __init__(self) -> None:
        self.count = 0
        self.timeout = 5.0
        self.reports: list[GateReport] = []
        self._open: dict[Pair, _Hold] = {}
        self._by_flow: dict[str, _Hold] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._scope = OptionScope()
        self.take_part(False)  # until a count is configured

    def load(self, loader) -> None:
        loader.add_option("exportjobs_gate", int, 0,
                          "Hold identical exportJobs creates (same goalsOrganizationId and "
                          "explorerViewId) until this many have arrived, then release them together "
                          "(0: off).")
        loader.add_option("exportjobs_gate_timeout", float, 5.0,
                          "Seconds a gate waits for its count; then it releases what it holds.")

    def configure(self, updated: set[str]) -> None:
        if not {"exportjobs_gate", "exportjobs_gate_timeout"} & updated:
            return
        count, timeout = ctx.options.exportjobs_gate, ctx.options.exportjobs_gate_timeout
        if count < 0 or count == 1:
            raise OptionError("exportjobs_gate",
                              f"expected 2 or more requests to race (0: off), got {count}")
        if not 0 < timeout <= MAX_GATE_TIMEOUT:  # also refuses nan and inf
            raise OptionError("exportjobs_gate_timeout", f"must be more than 0 and at most "
                              f"{MAX_GATE_TIMEOUT:g} seconds, got {timeout:g}")
        self.count, self.timeout = count, timeout
        # Off, the gate takes no part in flows; creates it still holds keep their answers.
        self.take_part(bool(count), ("request",))
        self.take_part(bool(count or self._by_flow), ("response", "error"))
        if count:
            log.info("exportjobs: race gate holds identical creates until %d arrive (timeout %gs)",
                     count, timeout)

    # --- hooks ---------------------------------------------------------------------------

    def request(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        # Sync unless the flow is held: mitmproxy awaits only what a hook returns.
        if not self.count or flow.response is not None:
            return None
        if traffic(flow, self._scope).kind != "create":
            return None
        req = flow.request
        pair = create_pair(req)
        if pair is None:
            return None  # the service will answer 400; nothing to race
        loop = asyncio.get_running_loop()
        now = time.perf_counter()
        hold = self._open.get(pair)
        if hold is None:
            hold = self._open[pair] = _Hold(pair, now)
            hold.timer = loop.call_later(self.timeout, self._release, hold, "timeout")
        waiter: asyncio.Future[None] = loop.create_future()
        hold.waiters.append(waiter)
        hold.arrivals.append(now)
        self._by_flow[flow.id] = hold
        flow.metadata[GATE_META] = len(hold.waiters)
        annotate.held(flow, len(hold.waiters), self.count)
        if len(hold.waiters) >= self.count:
            self._release(hold, "count")
        return self._held(flow, hold, waiter)

    @staticmethod
    async def _held(flow: http.HTTPFlow, hold: _Hold, waiter: asyncio.Future[None]) -> None:
        await waiter
        hold.resumed.append(time.perf_counter())
        annotate.released(flow, hold.reason)

    def _release(self, hold: _Hold, reason: str) -> None:
        if hold.reason:
            return
        if self._open.get(hold.pair) is hold:
            del self._open[hold.pair]
        if hold.timer is not None:
            hold.timer.cancel()
        hold.reason = reason
        hold.released_ns = time.monotonic_ns()
        hold.released_at = time.perf_counter()
        # Nothing awaits between these: every held request resumes on the next loop turns.
        for waiter in hold.waiters:
            if not waiter.done():
                waiter.set_result(None)

    def response(self, flow: http.HTTPFlow) -> None:
        hold = self._by_flow.pop(flow.id, None)
        if hold is None or flow.response is None:
            return
        status = flow.response.status_code
        if status == 201 and hold.job_id is None:
            try:
                hold.job_id = json.loads(flow.response.get_content(strict=False) or b"").get("id")
            except (ValueError, AttributeError):
                pass
        self._answered(hold, status)

    def error(self, flow: http.HTTPFlow) -> None:
        hold = self._by_flow.pop(flow.id, None)
        if hold is not None:
            self._answered(hold, "error")

    forget = error  # a flow the guard ended counts as an error in its gate's report

    def _answered(self, hold: _Hold, status: int | str) -> None:
        hold.statuses.append(status)
        if len(hold.statuses) == len(hold.waiters) and hold.reason:
            task = asyncio.create_task(self._report(hold))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _report(self, hold: _Hold) -> None:
        ms = 1000.0
        resumed = hold.resumed or [hold.released_at]
        report = GateReport(
            organization=hold.pair[0], view=hold.pair[1], held=len(hold.waiters), reason=hold.reason,
            held_ms=(hold.released_at - hold.first_arrival) * ms,
            arrival_spread_ms=(max(hold.arrivals) - min(hold.arrivals)) * ms,
            release_spread_ms=(max(resumed) - min(resumed)) * ms,
            statuses={str(s): n for s, n in Counter(hold.statuses).items()},
            upstream_arrival_spread_ms=await self._upstream_spread(hold),
        )
        self.reports.append(report)
        log.info("%s", report.line())

    async def _upstream_spread(self, hold: _Hold) -> float | None:
        """Arrival spread of the held creates at the emulator, from its control API: the
        first ``held`` creates it stamped after the release (both clocks are this machine's
        monotonic clock). None when the upstream is not our emulator."""
        upstream = getattr(ctx.options, "exportjobs_upstream", None)
        if not upstream:
            return None
        try:
            async with EmulatorClient(upstream, timeout=2) as emulator:
                seen = await emulator.arrivals()
        except EmulatorError:
            return None
        after = hold.released_ns // 1000
        stamps = sorted(a.monotonic_us for a in seen.arrivals
                        if a.monotonic_us >= after)[:len(hold.waiters)]
        if len(stamps) < 2:
            return None
        return (stamps[-1] - stamps[0]) / 1000

    async def done(self) -> None:
        for hold in list(self._open.values()):
            self._release(hold, "timeout")
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


__all__ = ["GateReport", "RaceGate", "create_pair"]
