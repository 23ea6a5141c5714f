"""Run mitmproxy with the exportJobs addons in-process.

``start_proxy`` is for tests and other commands (port 0 picks a free port);
``exportjobs proxy`` (src/exportjobs/cli/proxy.py) wraps it. Settings are given by their option
names, as the addons declare them (``exportjobs_mode``, ``exportjobs_cassette``, ... and
mitmproxy's own, such as ``confdir``). Bad settings raise ``ProxyError`` with a one-line
message naming the file or option and what to do, and the option apart (``option``) so a
front end can name it as its user spells it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mitmproxy import exceptions, options
from mitmproxy.addons import default_addons
from mitmproxy.master import Master

from exportjobs.addons.faults import Faults
from exportjobs.addons.gate import RaceGate
from exportjobs.addons.options import OptionError
from exportjobs.addons.recordreplay import ExportJobs

CA_CERT_FILE = "mitmproxy-ca-cert.pem"


class ProxyError(Exception):
    """Settings the proxy cannot start with (exit 2) or an address it cannot bind (exit 3).
    ``option`` and ``problem`` are set when one option's value is refused."""

    def __init__(self, message: str, exit_code: int = 2, option: str | None = None,
                 problem: str = "") -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.option = option
        self.problem = problem


def proxy_addons() -> tuple[Faults, RaceGate, ExportJobs]:
    """The addons in the order they must see a flow: faults answer first and the gate holds
    next, so both act before record, replay and the upstream redirect (as the mitmproxy
    script composes them)."""
    return Faults(), RaceGate(), ExportJobs()


@dataclass
class RunningProxy:
    """A proxy serving on a real socket; ``url`` is what clients set as their HTTP(S) proxy."""

    master: Master
    addon: ExportJobs
    task: asyncio.Task[None]
    host: str
    port: int
    confdir: Path
    faults: Faults | None = None
    gate: RaceGate | None = None
    _closed: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ca_cert(self) -> Path:
        """The CA certificate clients must trust for HTTPS interception."""
        return self.confdir / CA_CERT_FILE

    async def close(self) -> None:
        """Stop gracefully: the addons' ``done`` lets every recording in flight reach the
        cassette and closes it; then the listening sockets and the client connections still
        open are closed, so that no connection task is left for the event loop to cancel
        (each of which printed a CancelledError traceback)."""
        if self._closed:
            return
        self._closed = True
        self.master.shutdown()
        await self.task
        await _close_connections(self.master)


async def start_proxy(
    settings: Mapping[str, Any],
    *,
    port: int = 0,
    host: str = "127.0.0.1",
    extra_addons: Iterable[Any] = (),
) -> RunningProxy:
    """Start mitmproxy with the exportJobs addons and return once it listens on host:port.

    ``settings`` maps option names to values (``{"exportjobs_mode": "replay",
    "exportjobs_cassette": "c.yaml", "exportjobs_gate": 2}``); path values may be
    ``PathLike``. Options not named keep their declared defaults.
    """
    opts = options.Options(listen_host=host, listen_port=port)
    master = Master(opts)
    master.addons.add(*default_addons())
    fault_addon, gate_addon, addon = proxy_addons()
    master.addons.add(fault_addon, gate_addon, addon, *extra_addons)
    values = {name: os.fspath(value) if isinstance(value, os.PathLike) else value
              for name, value in settings.items()}
    try:
        opts.update(**values)
    except OptionError as exc:
        await _discard(master)
        raise ProxyError(str(exc), option=exc.option, problem=exc.problem) from None
    except (exceptions.OptionsError, KeyError) as exc:
        await _discard(master)
        raise ProxyError(str(exc).strip("'\"")) from None
    task = asyncio.create_task(master.run(), name="exportjobs proxy")
    proxyserver = master.addons.get("proxyserver")
    while not task.done() and not proxyserver.is_running:
        await asyncio.sleep(0.01)
    addresses = proxyserver.listen_addrs()
    if task.done() or not addresses:
        problems = [s.last_exception for s in proxyserver.servers if s.last_exception]
        master.shutdown()
        await asyncio.gather(task, return_exceptions=True)
        detail = _first_line(problems[0]) if problems else "the proxy stopped while starting"
        raise ProxyError(f"cannot listen on {host}:{port}: {detail}; pick another with --port", 3)
    bound_host, bound_port = addresses[0][:2]
    return RunningProxy(master, addon, task, bound_host, bound_port,
                        Path(os.path.expanduser(opts.confdir)), fault_addon, gate_addon)


async def _close_connections(master: Master, timeout: float = 5.0) -> None:
    proxyserver = master.addons.get("proxyserver")
    if proxyserver is None:
        return
    for server in list(getattr(proxyserver, "servers", ())):
        try:
            await server.stop()
        except Exception:  # noqa: BLE001 - already stopped, or never started
            pass
    connections = getattr(proxyserver, "connections", {})
    for handler in list(connections.values()):
        io = handler.transports.get(handler.client)
        if io is not None and io.handler is not None:
            io.handler.cancel("proxy stopped")  # the handler then finishes without an error
    deadline = asyncio.get_running_loop().time() + timeout
    while connections and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    if "address already in use" in text.lower():
        return "address already in use"
    return text.splitlines()[0] if text else type(exc).__name__


async def _discard(master: Master) -> None:
    """Undo what constructing a master installed, for a master that never ran."""
    legacy = getattr(master, "_legacy_log_events", None)
    if legacy is not None:
        legacy.uninstall()


def quiet_mitmproxy_logs() -> None:
    """Keep the console to one line per exportJobs exchange plus mitmproxy's warnings."""
    logging.getLogger("mitmproxy").setLevel(logging.WARNING)


__all__ = ["ProxyError", "RunningProxy", "proxy_addons", "quiet_mitmproxy_logs", "start_proxy"]
