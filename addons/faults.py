"""Inject Graph-shaped throttling and failures into exportJobs traffic, and enforce Retry-After.

Options: ``exportjobs_faults`` (a plan file or short rules, see ``addons.faultplan`` and
docs/faults.md), ``exportjobs_fault_seed`` and ``exportjobs_fault_client_header``. Runs
before the gate and the record/replay addon, so it works the same in every mode: an
injected answer never reaches the upstream or the cassette's replayable interactions.

A ``lost`` rule lets the request go on to the service and takes the answer away on the way
back: ``lose`` (called by the record/replay addon once it has recorded the real response)
gives the client a Graph 504 or closes its connection instead. That is how duplicates happen
for real: the job exists, the client never heard, and its retry meets a 409.

Retry-After is enforced as Graph does: once a client has been told to wait, every request
of the same kind it sends before the wait is over gets another 429. A client is its IP
address (clients open new connections, so ports change), or the value of the header named
by ``exportjobs_fault_client_header`` when the request carries it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable
from typing import Any, Optional

from mitmproxy import ctx, http

from exportjobs.addons import annotate
from exportjobs.addons.faultplan import Decision, FaultPlan, FaultPlanError, FaultRule, load_plan, new_seed
from exportjobs.addons.guard import FailClosed
from exportjobs.addons.options import OptionError
from exportjobs.addons.replay import graph_error
from exportjobs.addons.scope import OptionScope
from exportjobs.addons.traffic import traffic
from exportjobs.graph import HTTP_ERRORS

log = logging.getLogger("exportjobs.proxy")

INJECTED_META = "exportjobs_fault"  # flow.metadata: what this addon did to the flow (plain values)
FAULT_HEADER = "x-exportjobs-fault"
ENFORCED = "retry-after-window"

# The codes and messages Graph sends with these statuses.
def fault_response(status: int, retry_after: int | None, request: http.Request, label: str) -> http.Response:
    """A Graph error response for ``status``, with ``Retry-After`` when given."""
    code, message = HTTP_ERRORS[status]
    extra = [("Retry-After", str(retry_after))] if retry_after is not None else []
    return graph_error(request, status, code, message, str(status), *extra, (FAULT_HEADER, label))


def injected_note(meta: dict[str, Any]) -> str:
    """The console note for a flow this addon touched."""
    if "lost" in meta:
        what = "a 504" if meta["lost"] == "504" else "a reset connection"
        return f"response lost by rule {meta['rule']} {meta['text']}: the client gets {what}"
    if "status" in meta:
        if meta.get("rule") == ENFORCED:
            return f"injected {meta['status']}: Retry-After not yet passed"
        return f"injected {meta['status']} by rule {meta['rule']} {meta['text']}"
    return f"+{meta['latency_ms']:g}ms latency injected"


class Faults(FailClosed):
    def __init__(self) -> None:
        self.plan: FaultPlan | None = None
        self.client_header: str | None = None
        # (client, kind) -> monotonic time before which that client must not come back
        self.windows: dict[tuple[str, str], float] = {}
        self.injected = 0
        self._scope = OptionScope()
        self.take_part(False)  # until a plan is configured

    def load(self, loader) -> None:
        loader.add_option("exportjobs_faults", Optional[str], None,
                          "Fault plan for exportJobs requests: a YAML file, or rules such as "
                          "'create:429(2s)@0.3, get:503#2, *:latency(200ms)@0.5' (docs/faults.md).")
        loader.add_option("exportjobs_fault_seed", Optional[int], None,
                          "Seed for the plan's rates; the same seed and the same requests give the "
                          "same faults. Default: the plan's seed, else a fresh one (logged).")
        loader.add_option("exportjobs_fault_client_header", Optional[str], None,
                          "Retry-After is enforced per client: its IP address, or this request "
                          "header's value when present (several clients on one host).")

    def configure(self, updated: set[str]) -> None:
        if not {"exportjobs_faults", "exportjobs_fault_seed", "exportjobs_fault_client_header"} & updated:
            return
        opts = ctx.options
        self.client_header = opts.exportjobs_fault_client_header or None
        if not opts.exportjobs_faults:
            self.plan = None
            self.take_part(False)
            return
        try:
            plan = load_plan(opts.exportjobs_faults)
        except FaultPlanError as exc:
            raise OptionError("exportjobs_faults", str(exc)) from None
        seed = opts.exportjobs_fault_seed
        seed = seed if seed is not None else plan.seed if plan.seed is not None else new_seed()
        plan.start(seed)
        self.plan, self.windows = plan, {}
        self.take_part(True)
        if "connection_strategy" in opts and opts.connection_strategy != "lazy":
            # mitmproxy connects upstream on CONNECT by default; a request answered here
            # must not cost the service even a connection.
            opts.connection_strategy = "lazy"
        log.info("exportjobs: fault plan %s: %s (seed %d)", plan.source,
                 ", ".join(r.text for r in plan.rules), seed)

    def client_key(self, flow: http.HTTPFlow) -> str:
        if self.client_header:
            value = flow.request.headers.get(self.client_header)
            if value:
                return f"{self.client_header}={value}"
        peer = flow.client_conn.peername
        return str(peer[0]) if peer else "?"

    def request(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        # Sync unless there is latency to add: mitmproxy awaits only what a hook returns, so
        # flows without a fault cost no coroutine.
        if self.plan is None or flow.response is not None:
            return None
        req = flow.request
        kind = traffic(flow, self._scope).kind
        if kind is None:
            return None
        client = self.client_key(flow)
        now = time.monotonic()
        until = self.windows.get((client, kind))
        if until is not None and now < until:
            # Back before Retry-After passed: throttled again, for what is left of the wait.
            self._answer(flow, 429, math.ceil(until - now), ENFORCED, "", client, kind)
            return None
        decision: Decision = self.plan.decide(kind, req.method.upper())
        if decision.latency_s:
            flow.metadata[INJECTED_META] = {
                "latency_ms": round(decision.latency_s * 1000, 3),
                "rules": [r.number for r in decision.latency_rules]}
            annotate.slowed(flow, flow.metadata[INJECTED_META]["latency_ms"])
            return self._delayed(flow, decision, client, kind)
        self._error(flow, decision.error, client, kind)
        return None

    async def _delayed(self, flow: http.HTTPFlow, decision: Decision, client: str, kind: str) -> None:
        await asyncio.sleep(decision.latency_s)
        self._error(flow, decision.error, client, kind)

    def _error(self, flow: http.HTTPFlow, rule: FaultRule | None, client: str, kind: str) -> None:
        if rule is not None and rule.lost is not None:
            # Forwarded as usual; the answer is taken away in ``lose``.
            meta: dict[str, Any] = dict(flow.metadata.get(INJECTED_META) or {})
            meta.update(lost=rule.lost, rule=rule.number, text=rule.text, kind=kind)
            flow.metadata[INJECTED_META] = meta
            self.injected += 1
            annotate.fault(flow, f"response to be lost ({rule.lost}) by rule {rule.number} {rule.text}")
        elif rule is not None and rule.status is not None:
            self._answer(flow, rule.status, rule.retry_after, rule.number, rule.text, client, kind)

    def _answer(self, flow: http.HTTPFlow, status: int, retry_after: int | None, rule: int | str,
                text: str, client: str, kind: str) -> None:
        label = f"{status} rule {rule}" if rule != ENFORCED else f"{status} {ENFORCED}"
        flow.response = fault_response(status, retry_after, flow.request, label)
        annotate.fault(flow, label)
        meta: dict[str, Any] = dict(flow.metadata.get(INJECTED_META) or {})
        meta.update(status=status, rule=rule, kind=kind)
        if text:
            meta["text"] = text
        if retry_after is not None:
            meta["retry_after"] = retry_after
            # The window starts when the answer leaves, which is now.
            self.windows[(client, kind)] = max(self.windows.get((client, kind), 0.0),
                                               time.monotonic() + retry_after)
        flow.metadata[INJECTED_META] = meta
        self.injected += 1


def lost_mark(flow: http.HTTPFlow) -> dict[str, Any] | None:
    """The lost-response mark on ``flow`` (``lost``, ``rule``, ``text``, ``kind``), or None."""
    meta = flow.metadata.get(INJECTED_META)
    return meta if meta and "lost" in meta else None


def lost_answer(flow: http.HTTPFlow, mark: dict[str, Any]) -> http.Response | None:
    """What the client gets instead of the real response: a Graph 504 (fresh ids, like any
    answer), or None when its connection is to be closed (``reset``)."""
    if mark["lost"] != "504":
        return None
    return fault_response(504, None, flow.request, f"504 lost rule {mark['rule']}")


def lose(flow: http.HTTPFlow, answer: http.Response | None) -> None:
    """Deliver the lost answer: replace the response, or close the client's connection
    (mitmproxy sends nothing for a flow killed in its response hook)."""
    if answer is not None:
        flow.response = answer
    elif flow.killable:
        flow.kill()


__all__ = ["FAULT_HEADER", "INJECTED_META", "Faults", "fault_response", "injected_note", "lose",
           "lost_answer", "lost_mark"]
