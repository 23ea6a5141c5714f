"""Scope: which hosts are ours.

graph.microsoft.com plus any hosts the user adds. Whether a request on them is exportJobs
traffic is decided once per flow in ``addons.traffic``, with ``match_exportjobs`` (the one
path check, shared with the emulator).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

from mitmproxy import ctx

GRAPH_HOST = "graph.microsoft.com"


@functools.lru_cache(maxsize=4096)  # a handful of hosts, asked per request
def _canonical(host: str) -> str:
    """A host name as compared: lower case, no trailing dot or brackets, an IP address in
    its one short form (``0:0:0:0:0:0:0:1`` and ``::1`` are the same host)."""
    host = host.strip("[]").lower().rstrip(".")
    try:
        return ipaddress.ip_address(host).compressed
    except ValueError:
        return host


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
            # host:port or [v6]:port; an unbracketed name with more colons is an IPv6 address
            if sep and port.isdigit() and (":" not in name or name.endswith("]")):
                self.host_ports.add((_canonical(name), int(port)))
            else:
                self.hosts.add(_canonical(entry))

    @staticmethod
    def is_graph(host: str) -> bool:
        """True for Graph itself (the traffic an upstream replaces), not for added hosts."""
        return host.lower().rstrip(".") == GRAPH_HOST

    def covers(self, host: str, port: int) -> bool:
        host = _canonical(host)
        return host in self.hosts or (host, port) in self.host_ports

    def current(self) -> Scope:
        """This scope (``addons.traffic`` takes a scope or an ``OptionScope`` alike)."""
        return self


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
