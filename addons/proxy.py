"""Run mitmproxy with the exportJobs addons in-process.

``start_proxy`` is for tests and other commands (port 0 picks a free port);
``exportjobs proxy`` (src/exportjobs/cli/proxy.py) wraps it. With ``web_port`` it serves
mitmproxy's web UI (mitmweb's ``WebMaster``) instead of running headless: the same addons,
options and checks either way (docs/web-ui.md). Settings are given by their option
names, as the addons declare them (``exportjobs_mode``, ``exportjobs_cassette``, ... and
mitmproxy's own, such as ``confdir``). Bad settings raise ``ProxyError`` with a one-line
message naming the file or option and what to do, and the option apart (``option``) so a
front end can name it as its user spells it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mitmproxy import exceptions, options
from mitmproxy.addons import default_addons
from mitmproxy.master import Master

from exportjobs.addons.compose import Composed
from exportjobs.addons.faults import Faults
from exportjobs.addons.gate import RaceGate
from exportjobs.addons.hookplan import plan_hooks
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
    script composes them). mitmproxy gets them as one ``addons.compose.Composed``."""
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
    web_url: str | None = None  # the web UI's address, with its login token when it has one
    _closed: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

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
    specs: Sequence[str] = (),
    web_port: int | None = None,
) -> RunningProxy:
    """Start mitmproxy with the exportJobs addons and return once it listens on host:port.

    ``settings`` maps option names to values (``{"exportjobs_mode": "replay",
    "exportjobs_cassette": "c.yaml", "exportjobs_gate": 2}``); path values may be
    ``PathLike``. Options not named keep their declared defaults. ``specs`` are
    ``NAME=VALUE`` strings parsed by mitmproxy itself (``Options.set``, as ``mitmdump
    --set``), applied after ``settings``. ``web_port`` (0: a free one) serves the web UI
    on 127.0.0.1; its address is ``RunningProxy.web_url``.
    """
    opts = options.Options(listen_host=host, listen_port=port)
    master: Master
    if web_port is None:
        master = Master(opts)
        master.addons.add(*default_addons())
    else:
        from mitmproxy.tools.web.master import WebMaster

        master = WebMaster(opts, with_termlog=False)  # adds the default addons and the UI's
    plan_hooks(master)  # each event's handlers looked up once (addons/hookplan.py)
    fault_addon, gate_addon, addon = proxy_addons()
    master.addons.add(Composed(fault_addon, gate_addon, addon), *extra_addons)
    values = {name: os.fspath(value) if isinstance(value, os.PathLike) else value
              for name, value in settings.items()}
    token = login = None
    if web_port is not None:
        values = {**web_settings(web_port or _free_port()), **values}
        if "web_password" in opts:  # mitmproxy >= 11.1.2 asks for a password or token; 11.0 has no login
            token, login = _web_login()
            values.setdefault("web_password", login)
    try:
        opts.update(**values)
        for name, group in _by_name(specs).items():
            _set(opts, name, group)
    except OptionError as exc:
        await _discard(master)
        raise ProxyError(str(exc), option=exc.option, problem=exc.problem) from None
    except (exceptions.OptionsError, KeyError) as exc:
        await _discard(master)
        raise ProxyError(str(exc).strip("'\"")) from None
    except ProxyError:
        await _discard(master)
        raise
    task = asyncio.create_task(master.run(), name="exportjobs proxy")
    proxyserver = master.addons.get("proxyserver")
    while not task.done() and not proxyserver.is_running:
        await asyncio.sleep(0.01)
    addresses = proxyserver.listen_addrs()
    if task.done() or not addresses:
        problems = [s.last_exception for s in proxyserver.servers if s.last_exception]
        master.shutdown()
        outcome = (await asyncio.gather(task, return_exceptions=True))[0]
        if web_port is not None and isinstance(outcome, OSError) and not problems:
            raise ProxyError(f"cannot serve the web UI on 127.0.0.1:{opts.web_port}: "
                             f"{_first_line(outcome)}; pick another with --web-port", 3)
        detail = _first_line(problems[0]) if problems else "the proxy stopped while starting"
        raise ProxyError(f"cannot listen on {host}:{port}: {detail}; pick another with --port", 3)
    bound_host, bound_port = addresses[0][:2]
    web_url = None
    if web_port is not None:
        web_url = f"http://127.0.0.1:{opts.web_port}/"
        if token is not None and opts.web_password == login:
            web_url += f"?token={token}"
    return RunningProxy(master, addon, task, bound_host, bound_port,
                        Path(os.path.expanduser(opts.confdir)), fault_addon, gate_addon, web_url)


def web_settings(web_port: int) -> dict[str, Any]:
    """The web UI's settings: loopback only, no browser started (the address is printed),
    and the flow list's comment column on, where the addons say what happened to each flow."""
    return {"web_host": "127.0.0.1", "web_port": web_port, "web_open_browser": False,
            "web_columns": ["tls", "icon", "path", "method", "status", "size", "time", "comment"]}


def _web_login() -> tuple[str, str]:
    """A fresh token for the web UI's address, and what mitmweb's ``web_password`` is set to
    for it: the token's argon2 hash (mitmweb reads a value starting with ``$`` as one), so
    the token is never an option's value and mitmweb does not warn of a plaintext password
    nobody chose. The token is random (128 bits), so a cheap hash is enough: mitmweb checks
    with the parameters the hash carries."""
    import argon2  # mitmproxy's own dependency wherever it has web_password (11.1.2 on)

    token = secrets.token_urlsafe(16)
    hasher = argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    return token, hasher.hash(token)


def _by_name(specs: Sequence[str]) -> dict[str, list[str]]:
    """``NAME=VALUE`` specs grouped by option name, as ``Options.set`` groups them (a list
    option takes each of its specs)."""
    grouped: dict[str, list[str]] = {}
    for spec in specs:
        grouped.setdefault(spec.partition("=")[0], []).append(spec)
    return grouped


def _set(opts: options.Options, name: str, specs: list[str]) -> None:
    """One option's specs through mitmproxy's own parsing; a refusal names the option."""
    if name not in opts:
        raise ProxyError(f"{name}: no such option", option=name,
                         problem="no such option (mitmproxy's: `mitmdump --options`)")
    try:
        opts.set(*specs)
    except OptionError:
        raise
    except exceptions.OptionsError as exc:
        problem = str(exc).strip("'\"")
        problem = problem.removeprefix(f"Failed to parse option {name}: ")  # mitmproxy 12 names it too
        raise ProxyError(f"{name}: {problem}", option=name, problem=problem) from None
    except NotImplementedError:  # a type mitmproxy's --set cannot parse (float)
        problem = "mitmproxy's --set cannot parse this option's type; use its flag"
        raise ProxyError(f"{name}: {problem}", option=name, problem=problem) from None


def _free_port() -> int:
    """A port free on 127.0.0.1 now, for the web UI (mitmweb reports only the port it was
    asked for)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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
    """Keep the console to one line per exportJobs exchange plus mitmproxy's warnings (and
the web UI's: not a line per request of the page)."""
    logging.getLogger("mitmproxy").setLevel(logging.WARNING)
    logging.getLogger("tornado.access").setLevel(logging.WARNING)  # the web UI's every request


__all__ = ["ProxyError", "RunningProxy", "proxy_addons", "quiet_mitmproxy_logs", "start_proxy",
           "web_settings"]
