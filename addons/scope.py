"""Scope: which requests are exportJobs traffic.

graph.microsoft.com plus any hosts the user adds, and a path that ``match_exportjobs``
(the one path check, shared with the emulator) accepts. Everything else is not ours.
"""

from __future__ import annotations

from collections.abc import Iterable

from mitmproxy import ctx

from exportjobs.graph import ExportJobsRoute, match_exportjobs

GRAPH_HOST = "graph.microsoft.com"


class Scope:
    """Hosts are ``name`` (any port) or ``name:port``; names compare case-insensitively."""

    def __init__(self, extra_hosts: Iterable[str] = ()) -> None:
        self.hosts: set[str] = {GRAPH_HOST}
        self.host_ports: set[tuple[str, int]] = set()
        for entry in extra_hosts:
            entry = entry.strip().lower()
            if not entry:
                continue
            name, sep, port = entry.rpartition(":")
            if sep and port.isdigit() and not name.endswith(":"):  # host:port, not bare IPv6
                self.host_ports.add((name.strip("[]"), int(port)))
            else:
                self.hosts.add(entry.strip("[]"))

    @staticmethod
    def is_graph(host: str) -> bool:
        """True for Graph itself (the traffic an upstream replaces), not for added hosts."""
        return host.lower().rstrip(".") == GRAPH_HOST

    def covers(self, host: str, port: int) -> bool:
        host = host.lower().rstrip(".")
        return host in self.hosts or (host, port) in self.host_ports

    def current(self) -> Scope:
        """This scope (``addons.traffic`` takes a scope or an ``OptionScope`` alike)."""
        return self

    def route(self, host: str, port: int, path: str) -> ExportJobsRoute | None:
        """The exportJobs route of a request, or None when it is not exportJobs traffic."""
        if not self.covers(host, port):
            return None
        return match_exportjobs(path.partition("?")[0])


class OptionScope:
    """The scope the running proxy's ``exportjobs_hosts`` option describes, rebuilt only when
    the option changes; for addons loaded beside ExportJobs, which declares that option."""

    def __init__(self) -> None:
        self._hosts: tuple[str, ...] | None = None
        self._scope = Scope()

    def current(self) -> Scope:
        hosts = tuple(getattr(ctx.options, "exportjobs_hosts", ()) or ())
        if hosts != self._hosts:
            self._hosts, self._scope = hosts, Scope(hosts)
        return self._scope
