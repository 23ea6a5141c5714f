"""Scenarios that record and replay themselves: the one home of ``exportjobs run --record``,
``exportjobs run --replay`` and ``exportjobs demo``.

Recording runs the scenario over HTTPS to graph.microsoft.com through an in-process
recording proxy whose upstream is the target (an embedded emulator when there is none).
Once the proxy has closed (every interaction on disk), the values the scenario drew for
its variables go into the cassette's header, since a scenario draws fresh GUIDs on every
run and a replay with other values would miss on every request. Replaying runs the same
client against an in-process replay proxy with no upstream, using those values (an
explicit ``--var`` still wins); every connection the replay proxy opens or tries to open
towards a server is counted, so "nothing went upstream" is a figure, not a hope.

Only values the scenario drew itself (``{generate: ...}``) and ``--var`` values that do not
look like secrets are written down. The bearer token is never a variable (it comes from
the scenario's ``auth``), and a value that holds it, or looks like a token or a password,
is withheld: its name is kept so the replay can ask for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import ssl
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from exportjobs.simulator.emulator.app import EmulatorConfig
from exportjobs.simulator.emulator.embedded import EmbeddedEmulator
from exportjobs.simulator.exchange import Exchange
from exportjobs.simulator.progress import Progress
from exportjobs.simulator.runner import RunAborted, RunResult, run_scenario
from exportjobs.simulator.scenario import Scenario
from exportjobs.simulator.transport import CONNECT_TIMEOUT_S, RESPONSE_TIMEOUT_S, reachable
from exportjobs.simulator.values import interpolate, shown_url

GRAPH = "https://graph.microsoft.com"


class SessionError(Exception):
    """A record or replay that cannot go ahead as asked (exit 2); the message names the
    flag or file and what to do."""

    exit_code = 2


@dataclass
class RunOptions:
    """How the scenario runs, whichever way it is recorded or replayed."""

    progress: Progress | None = None
    connect_timeout: float = CONNECT_TIMEOUT_S
    response_timeout: float = RESPONSE_TIMEOUT_S
    stop: asyncio.Event | None = None
    on_exchange: Callable[[Exchange], None] | None = None
    emulator_config: EmulatorConfig | None = None  # the embedded emulator's, when recording without a target


@dataclass
class Recorded:
    result: RunResult
    cassette: Path
    written: bool  # False: nothing was recorded, and an existing cassette was left as it was
    stored: dict[str, Any] = field(default_factory=dict)  # the variables in its header
    withheld: list[str] = field(default_factory=list)  # not written: they look like secrets
    unreplayable: list[str] = field(default_factory=list)  # drawn anew per request


@dataclass
class Replayed:
    result: RunResult
    cassette: Path
    variables: dict[str, Any]  # those taken from the cassette's header
    upstream_connections: int  # connections the replay proxy opened, or tried to, towards a server


class UpstreamCounter:
    """A mitmproxy addon counting every connection the proxy opens or tries to open towards
    a server (its ``server_connect`` event comes before any attempt, refused or not)."""

    def __init__(self) -> None:
        self.count = 0

    def server_connect(self, data: Any) -> None:
        self.count += 1


# --- which variables a cassette keeps ------------------------------------------------------------

_SECRET_NAME = re.compile(r"(?i)token|secret|passw|pwd|auth|cookie|credential|bearer|private|"
                          r"signature|session|api_?key|(^|_)key$|(^|_)sig$")
_SECRET_VALUE = re.compile(
    r"(?i)^(bearer|basic)\s|"  # an Authorization value
    r"eyJ[\w-]*\.[\w-]*\.|"  # a JWT (header.payload.signature)
    r"[?&;](access_token|token|sig|signature|code|key|password|secret)=|"  # a secret in a URL
    r"-----BEGIN ")


def drawn(scenario: Scenario) -> list[str]:
    """The variables the scenario draws afresh for each run (``{generate: ...}``): the ones a
    replay must be given, since the recorded requests carry the recording run's values."""
    return [name for name, spec in scenario.variables.items()
            if isinstance(spec, dict) and spec.get("per", "run") != "request"]


def _per_request(scenario: Scenario) -> list[str]:
    """Variables drawn anew for every request at random: no value stands for them."""
    return [name for name, spec in scenario.variables.items()
            if isinstance(spec, dict) and spec.get("per") == "request" and spec.get("generate") != "counter"]


def looks_secret(name: str, value: Any, token: str | None) -> bool:
    """Whether a variable may be a secret and so must not be written down: its name says so,
    or its value holds the run's token, or looks like a token, a signed URL or a key."""
    if _SECRET_NAME.search(name):
        return True
    if not isinstance(value, str):
        return False
    return bool((token and token in value) or _SECRET_VALUE.search(value))


def storable(scenario: Scenario, variables: Mapping[str, Any], overrides: Mapping[str, Any],
             ) -> tuple[dict[str, Any], list[str]]:
    """The variables to write into the header, and the names withheld as secret-looking:
    what the scenario drew itself, and the values given with --var."""
    token = os.environ.get(scenario.auth.token_env) if scenario.auth.token_env else None
    names = [*drawn(scenario), *(n for n in overrides if n not in drawn(scenario))]
    stored, withheld = {}, []
    for name in names:
        if name not in variables:
            continue
        value = variables[name]
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            continue  # a per-request value: drawn for each request, no one value stands for it
        if looks_secret(name, value, token):
            withheld.append(name)
        else:
            stored[name] = value
    return stored, withheld


def replay_variables(scenario: Scenario, cassette: Path, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The variables the header of ``cassette`` gives the replay of ``scenario`` (those the
    scenario declares, less those ``overrides`` set). Raises SessionError when the cassette
    was recorded from another scenario, or lacks a value the scenario draws."""
    from exportjobs.addons.cassette import CassetteError, read_run_variables

    try:
        run = read_run_variables(cassette)
    except CassetteError as exc:
        raise SessionError(f"--replay: {exc}") from None
    if run.scenario is not None and run.scenario != scenario.name:
        raise SessionError(
            f"--replay {cassette}: it was recorded from the scenario {run.scenario!r}, not "
            f"{scenario.name!r}; replay it with that scenario, or record this one with "
            f"exportjobs run {scenario.name} --record {cassette}")
    stored = run.variables or {}
    needed = [*drawn(scenario), *(n for n in run.withheld if n not in drawn(scenario))]
    missing = [n for n in needed if n not in overrides and n not in stored]
    if missing:
        names = " and ".join(missing)
        given = " ".join(f"--var {n}=..." for n in missing)
        if run.variables is None:
            why = (f"the cassette stores no variables, and {scenario.name} draws {names} afresh "
                   "each run, so every request would miss")
        else:
            secret = [n for n in missing if n in run.withheld]
            why = (f"its header lacks {names}"
                   + (f" ({', '.join(secret)} looked like a secret and was not written down)"
                      if secret else " (recorded from an older version of the scenario?)"))
        raise SessionError(
            f"--replay {cassette}: {why}. Pass the recording's values with {given} (they are in "
            f"its recorded requests), or record it again with exportjobs run {scenario.name} "
            f"--record {cassette}, which stores them")
    return {k: v for k, v in stored.items() if k in scenario.variables and k not in overrides}


# --- running through an in-process proxy ---------------------------------------------------------


@contextlib.contextmanager
def _confdir(confdir: str | os.PathLike[str] | None) -> Iterator[str]:
    """mitmproxy's confdir (its CA): the one given, else a fresh one for this run only."""
    if confdir is not None:
        yield os.fspath(confdir)
        return
    with tempfile.TemporaryDirectory(prefix="exportjobs-ca-") as made:
        yield made


async def _proxied_run(scenario: Scenario, settings: dict[str, Any], overrides: Mapping[str, Any],
                       options: RunOptions, extra_addons: Iterable[Any]) -> RunResult:
    """``scenario`` over HTTPS to Graph through a proxy started with ``settings``, trusting its CA."""
    from exportjobs.addons.proxy import ProxyError, start_proxy

    try:
        proxy = await start_proxy(settings, extra_addons=extra_addons)
    except ProxyError as exc:
        flag = {"exportjobs_cassette": "--record/--replay", "exportjobs_upstream": "--target"}.get(
            exc.option or "", "")
        if exc.exit_code != 2:
            raise RunAborted(str(exc), exc.exit_code) from None
        raise SessionError(f"{flag + ': ' if flag else ''}{exc}") from None
    try:
        tls = ssl.create_default_context(cafile=str(proxy.ca_cert))
        return await run_scenario(scenario, target=GRAPH, proxy=proxy.url, ssl_context=tls,
                                  overrides=dict(overrides), progress=options.progress,
                                  connect_timeout=options.connect_timeout,
                                  response_timeout=options.response_timeout,
                                  on_exchange=options.on_exchange, stop=options.stop)
    finally:
        await proxy.close()


def _identity(path: Path) -> tuple[int, int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size



def scenario_target(scenario: Scenario, target: str | None, overrides: Mapping[str, Any]) -> str | None:
    """Where a recording's traffic goes: ``target``, else the scenario's own, else None
    (the embedded emulator)."""
    if target is not None or scenario.target is None:
        return target
    value = interpolate(scenario.target, scenario.resolve_variables(dict(overrides)))
    if not isinstance(value, str):
        raise SessionError(f"{scenario.source}: target is not text; give --target URL")
    return value


async def record(scenario: Scenario, cassette: str | os.PathLike[str], *, target: str | None = None,
                 overrides: Mapping[str, Any] | None = None, cacert: str | None = None,
                 confdir: str | os.PathLike[str] | None = None, options: RunOptions | None = None,
                 extra_addons: Iterable[Any] = ()) -> Recorded:
    """Run ``scenario`` through a recording proxy onto ``cassette`` and store the run's
    variables in its header. Upstream: ``target``, the scenario's target, or an embedded
    emulator. An existing cassette is replaced only once the new recording holds its first
    interaction (the proxy's ``all`` record mode); a run that records nothing leaves it."""
    options = options or RunOptions()
    overrides = dict(overrides or {})
    path = Path(cassette)
    upstream = scenario_target(scenario, target, overrides)
    path.parent.mkdir(parents=True, exist_ok=True)  # OSError: the front end names its flag
    before = _identity(path)
    embedded = None
    with _confdir(confdir) as conf:
        if upstream is None:
            embedded = EmbeddedEmulator(options.emulator_config).start()
            upstream = embedded.url
        else:
            reason = await reachable(upstream, options.connect_timeout)
            if reason is not None:
                raise RunAborted(f"cannot reach the target {shown_url(upstream)} ({reason}); "
                                 "is it running?", 3)
        settings: dict[str, Any] = {"exportjobs_mode": "record", "exportjobs_cassette": path,
                                    "confdir": conf}
        if urlsplit(upstream).hostname != urlsplit(GRAPH).hostname:
            settings["exportjobs_upstream"] = upstream
        if cacert is not None:
            settings["ssl_verify_upstream_trusted_ca"] = cacert
        try:
            result = await _proxied_run(scenario, settings, overrides, options, extra_addons)
        finally:
            if embedded is not None:
                await asyncio.to_thread(embedded.stop)
    stored, withheld = storable(scenario, result.variables, overrides)
    written = path.is_file() and _identity(path) != before
    if written:
        from exportjobs.addons.cassette import CassetteError, RunVariables, store_run_variables

        try:
            store_run_variables(path, RunVariables(scenario.name, stored, tuple(withheld)))
        except (CassetteError, OSError) as exc:
            raise SessionError(f"--record {path}: recorded, but its header could not take the "
                               f"run's variables ({exc}); record it again") from None
    return Recorded(result, path, written, stored, withheld, _per_request(scenario))


async def replay(scenario: Scenario, cassette: str | os.PathLike[str], *,
                 overrides: Mapping[str, Any] | None = None,
                 confdir: str | os.PathLike[str] | None = None, options: RunOptions | None = None,
                 extra_addons: Iterable[Any] = ()) -> Replayed:
    """Run ``scenario`` against a replay proxy of ``cassette`` (no upstream), with the
    variables its header stores; ``overrides`` win. Raises SessionError (see
    ``replay_variables``) before anything is sent."""
    options = options or RunOptions()
    overrides = dict(overrides or {})
    path = Path(cassette)
    from_header = replay_variables(scenario, path, overrides)
    counter = UpstreamCounter()
    with _confdir(confdir) as conf:
        settings = {"exportjobs_mode": "replay", "exportjobs_cassette": path, "confdir": conf}
        result = await _proxied_run(scenario, settings, {**from_header, **overrides}, options,
                                    [counter, *extra_addons])
    return Replayed(result, path, from_header, counter.count)


__all__ = ["GRAPH", "Recorded", "Replayed", "RunOptions", "SessionError", "UpstreamCounter", "drawn",
           "looks_secret", "record", "replay", "replay_variables", "scenario_target", "storable"]
