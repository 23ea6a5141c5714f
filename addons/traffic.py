"""What a flow is to the addons, decided once per flow and read by all of them.

The fault injector, the race gate and the record/replay addon each need to know whether a
request is exportJobs traffic and what it does. The first of them to see a flow classifies
it (``traffic``) and stores the answer on the flow; the others read it: one scope check and
one path match per request, from the request as the client sent it (before any upstream
redirect).

Stored in ``flow.metadata`` under one key as a small named tuple of plain values, which
mitmproxy can save with the flow (it writes a tuple as a list). A flow loaded from a file
holds a list there, not a ``Traffic``: it is classified again, as a new request is.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

from mitmproxy import http

from exportjobs.addons.scope import Scope
from exportjobs.graph import match_exportjobs

TRAFFIC_META = "exportjobs_traffic"


class ScopeSource(Protocol):
    """A scope, or something that gives the current one (``OptionScope``)."""

    def current(self) -> Scope: ...


class Traffic(NamedTuple):
    """``covered``: the host is in scope; ``graph``: it is Graph itself (what an upstream
    replaces); ``kind``: what an exportJobs request does (create, list, get, content or
    other), None when the request is not exportJobs traffic."""

    covered: bool
    graph: bool
    kind: str | None


_OUT_OF_SCOPE = Traffic(False, False, None)


def classify(request: http.Request, scope: Scope) -> Traffic:
    """What ``request`` is, under ``scope``."""
    host = request.host
    if not scope.covers(host, request.port):
        return _OUT_OF_SCOPE
    route = match_exportjobs(request.path.partition("?")[0])
    return Traffic(True, scope.is_graph(host),
                   route.kind(request.method) if route is not None else None)


def traffic(flow: http.HTTPFlow, scope: ScopeSource) -> Traffic:
    """The flow's ``Traffic``: classified under ``scope`` by the first addon that asks."""
    found = flow.metadata.get(TRAFFIC_META)
    if type(found) is not Traffic:
        found = flow.metadata[TRAFFIC_META] = classify(flow.request, scope.current())
    return found


__all__ = ["TRAFFIC_META", "ScopeSource", "Traffic", "classify", "traffic"]
