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


def _host_part(authority: str | None) -> str | None:
    """The host of a Host header or authority (``name``, ``name:port``, ``[v6]:port``)."""
    if not authority:
        return None
    if authority.startswith("["):
        return authority[1:].partition("]")[0]
    name, sep, port = authority.rpartition(":")
    return name if sep and port.isdigit() and ":" not in name else authority


def names(request: http.Request, sni: str | None = None) -> set[str]:
    """Every name a request goes by: the host it is sent to (a CONNECT target, an absolute
    URL's authority, or the mode's destination), its Host header, and the TLS server name.
    They differ when a client tunnels to an address and names the host inside: a request
    is ours when any of them is in scope, so no spelling takes it out of scope."""
    found = {request.host}
    for other in (_host_part(request.host_header), sni):
        if other:
            found.add(other)
    return found


def classify(request: http.Request, scope: Scope, sni: str | None = None) -> Traffic:
    """What ``request`` (whose connection named ``sni``, if TLS) is, under ``scope``."""
    hosts = names(request, sni)
    if not any(scope.covers(host, request.port) for host in hosts):
        return _OUT_OF_SCOPE
    route = match_exportjobs(request.path.partition("?")[0])
    return Traffic(True, any(scope.is_graph(host) for host in hosts),
                   route.kind(request.method) if route is not None else None)


def traffic(flow: http.HTTPFlow, scope: ScopeSource) -> Traffic:
    """The flow's ``Traffic``: classified under ``scope`` by the first addon that asks."""
    found = flow.metadata.get(TRAFFIC_META)
    if type(found) is not Traffic:
        sni = flow.client_conn.sni if flow.client_conn is not None else None
        found = flow.metadata[TRAFFIC_META] = classify(flow.request, scope.current(), sni)
    return found


__all__ = ["TRAFFIC_META", "ScopeSource", "Traffic", "classify", "names", "traffic"]
