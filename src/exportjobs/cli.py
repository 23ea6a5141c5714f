"""The ``exportjobs`` command line."""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import re
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from exportjobs import __version__
from exportjobs import scenarios as shipped
from exportjobs.graph import is_guid
from exportjobs.simulator.emulator.app import EmulatorConfig, StoreUnreachable, start_emulator
from exportjobs.simulator.emulator.keys import QUIRKS
from exportjobs.simulator.emulator.workers import WorkersFailed, needs_shared_store, start_workers

UNSAFE_BANNER = (
    "!!! UNSAFE: --unsafe-race-window-ms {ms:g} !!!\n"
    "!!! This emulator is DELIBERATELY BROKEN: its duplicate check and its insert are\n"
    "!!! {ms:g} ms apart, so concurrent identical creates can each get 201 Created.\n"
    "!!! It exists to prove that race checks catch that. Never treat it as Graph."
)


_MAX_SECONDS = 86_400.0  # a day: beyond it the emulator's clock arithmetic gains nothing


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 <= value <= _MAX_SECONDS:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"must be from 0 to {_MAX_SECONDS:g}, got {text!r}")
    return value


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {text!r}")
    return int(text)


def _guid(text: str) -> str:
    if not is_guid(text):
        raise argparse.ArgumentTypeError(f"expected a GUID like 9ab0fcab-c1d4-4b26-963b-a3c33155f853, got {text!r}")
    return text


def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the exportJobs emulator")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=_port, default=8000, help="port (default 8000; 0 = any free)")
    p.add_argument("--start-after", type=_non_negative, default=2.0, metavar="S",
                   help="seconds a job stays notStarted (default 2)")
    p.add_argument("--run-for", type=_non_negative, default=5.0, metavar="S",
                   help="seconds a job stays running before it succeeds (default 5)")
    p.add_argument("--known-org", type=_guid, action="append", metavar="GUID",
                   help="a known goalsOrganizationId (repeatable); others get 404")
    p.add_argument("--unsafe-race-window-ms", type=_non_negative, default=0.0, metavar="MS",
                   help="DELIBERATELY BROKEN: await MS between duplicate check and insert")
    p.add_argument("--quirks", choices=QUIRKS, default="none",
                   help="documented: answer in the shapes of the docs page's examples (get-one "
                   "wrapped in {\"value\": ...}, the 409's inner error spelled innererror), to "
                   "test that a client copes with both (default none: Graph's metadata and SDKs)")
    p.add_argument("--store", type=_store_url, default=None, metavar="redis://HOST:PORT/DB",
                   help="keep jobs, the arrival log and the clock in this Redis database, so "
                   "several serve processes act as one service (default: this process's memory; "
                   "needs the redis extra: pip install 'exportjobs[redis]')")
    p.add_argument("--workers", type=_workers, default=1, metavar="N",
                   help="serve from N processes sharing the port and the store (N > 1 needs "
                   "--store; default 1)")
    p.add_argument("--quiet", action="store_true", help="do not log each request")
    p.set_defaults(func=_serve)


def _workers(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise argparse.ArgumentTypeError(f"expected a number of processes from 1 to 64, got {text!r}")
    return int(text)


def _store_url(text: str) -> str:
    if not re.fullmatch(r"(redis://[^\s/]+(/[0-9]+)?/?|unix://\S+)", text):
        raise argparse.ArgumentTypeError(
            f"expected a Redis URL like redis://127.0.0.1:6379/0, got {text!r}")
    return text


def _serve(args: argparse.Namespace) -> int:
    config = EmulatorConfig(
        start_after=args.start_after,
        run_for=args.run_for,
        known_organizations=args.known_org,
        unsafe_race_window_ms=args.unsafe_race_window_ms,
        quirks=args.quirks,
        store_url=args.store,
    )
    reason = needs_shared_store(config, args.workers)
    if reason is not None:
        print(f"exportjobs serve: {reason}", file=sys.stderr)
        return 2
    if config.unsafe_race_window_ms > 0:
        print(UNSAFE_BANNER.format(ms=config.unsafe_race_window_ms), file=sys.stderr, flush=True)
    if args.workers > 1:
        return _serve_workers(config, args.host, args.port, args.workers, not args.quiet)
    return asyncio.run(_serve_until_stopped(config, args.host, args.port, not args.quiet))


def _serve_workers(config: EmulatorConfig, host: str, port: int, workers: int, access_log: bool) -> int:
    try:
        running = start_workers(config, host, port, workers, access_log=access_log)
    except (OSError, WorkersFailed) as exc:
        print(f"exportjobs serve: cannot start {workers} workers on {host}:{port}: {exc}",
              file=sys.stderr)
        return 3
    print(f"exportjobs emulator on {running.url}/beta/employeeExperience/goals/exportJobs "
          f"(control API: {running.url}/_emulator; {workers} workers sharing {config.store_url}); "
          "Ctrl-C stops it", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        while not stop.is_set():
            if running.wait_any(timeout=0.2) and not stop.is_set():  # not Ctrl-C's own exit
                print("exportjobs serve: a worker exited; stopping the others", file=sys.stderr)
                running.stop()
                return 3
    finally:
        running.stop()
    return 0


async def _serve_until_stopped(config: EmulatorConfig, host: str, port: int, access_log: bool) -> int:
    try:
        emulator = await start_emulator(config, host=host, port=port, access_log=access_log)
    except OSError as exc:
        hint = "pick another with --port" if exc.errno == errno.EADDRINUSE else "check --host"
        print(f"exportjobs serve: cannot listen on {host}:{port}: {exc.strerror}; {hint}",
              file=sys.stderr)
        return 3
    except StoreUnreachable as exc:
        print(f"exportjobs serve: {exc}; start it or check --store", file=sys.stderr)
        return 3
    print(f"exportjobs emulator on {emulator.url}/beta/employeeExperience/goals/exportJobs "
          f"(control API: {emulator.url}/_emulator); Ctrl-C stops it", flush=True)
    await _until_signalled()
    await emulator.close()
    return 0


async def _until_signalled() -> None:
    """Wait for Ctrl-C or SIGTERM, so servers can close cleanly (and flush what they hold)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, AttributeError):  # Windows: no loop signal handlers
            signal.signal(sig, lambda *_: loop.call_soon_threadsafe(stop.set))
    await stop.wait()


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a YAML scenario and check its expectations",
                       description="Exit status: 0 every expectation held, 1 an expectation "
                       "failed, 2 the scenario or command line is invalid, 3 the target could "
                       "not be reached (or its TLS certificate is not trusted: see --cacert), "
                       "130 interrupted by Ctrl-C (the summary and reports still cover what ran).")
    p.add_argument("scenario", help="the scenario file (YAML), or the name of a shipped one "
                   "(see: exportjobs scenarios)")
    p.add_argument("--target", metavar="URL", help="base URL to test (default: the scenario's "
                   "target, else an embedded emulator)")
    p.add_argument("--proxy", metavar="URL", help="send every request through this HTTP proxy")
    p.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                   help="set a scenario variable (repeatable)")
    p.add_argument("--report-json", metavar="FILE", help="write the full report as JSON")
    p.add_argument("--junit", metavar="FILE", help="write JUnit XML, one test case per step")
    p.add_argument("--report-html", metavar="FILE", help="write a self-contained HTML report (the JSON "
                   "report's data, with a timeline of each burst and charts of each load phase)")
    p.add_argument("--cacert", metavar="FILE", help="also trust this CA (PEM) for https targets")
    p.add_argument("--connect-timeout", type=_positive, default=10.0, metavar="S",
                   help="seconds to open a connection (default 10)")
    p.add_argument("--timeout", type=_positive, default=30.0, metavar="S",
                   help="seconds to wait for a response, for requests that set no timeout (default 30)")
    p.add_argument("--no-progress", action="store_true", help="never draw progress lines")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="print every request and response as it happens (tokens and cookies redacted)")
    p.add_argument("--quirks", choices=QUIRKS, default="none",
                   help="the embedded emulator's shapes (see: exportjobs serve --help)")
    p.set_defaults(func=_run)


_URL = re.compile(r"^https?://[^/\s]+/?$")


def _run(args: argparse.Namespace) -> int:
    from exportjobs.simulator.exchange import Exchange
    from exportjobs.simulator.progress import Progress
    from exportjobs.simulator.report import print_summary, write_json, write_junit
    from exportjobs.simulator.runner import RunAborted, RunResult, run_scenario
    from exportjobs.simulator.scenario import ScenarioError, load_scenario, unused_variables
    from exportjobs.simulator.transport import RequestError, check_base_url

    def usage(message: str) -> int:
        print(f"exportjobs run: {message}", file=sys.stderr)
        return 2

    overrides: dict[str, str] = {}
    for item in args.var:
        name, eq, value = item.partition("=")
        if not eq or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            return usage(f"--var {item!r}: write it as NAME=VALUE")
        overrides[name] = value
    for flag, url in (("--target", args.target), ("--proxy", args.proxy)):
        if url is not None and not _URL.match(url):
            return usage(f"{flag} {url!r}: give a base URL such as http://127.0.0.1:8000")
        if url is not None:
            try:
                check_base_url(url, flag)
            except RequestError as exc:
                return usage(str(exc))
    ssl_context = None
    if args.cacert:
        import ssl

        try:
            ssl_context = ssl.create_default_context(cafile=args.cacert)
        except (OSError, ssl.SSLError) as exc:
            return usage(f"--cacert {args.cacert}: cannot load it ({exc})")
    scenario_file = _scenario_file(args.scenario)
    try:
        scenario = load_scenario(scenario_file, extra_variables=set(overrides))
    except ScenarioError as exc:
        print(exc, file=sys.stderr)
        print(f"exportjobs run: {args.scenario} is not a valid scenario; nothing was sent",
              file=sys.stderr)
        if not scenario_file.exists():
            print(f"(shipped scenarios run by name: {', '.join(shipped.names())})", file=sys.stderr)
        return 2
    if args.quirks != "none" and (args.target or scenario.target):
        return usage("--quirks shapes the embedded emulator only; this run has a target (start "
                     "that emulator with: exportjobs serve --quirks ...)")
    for name, near in unused_variables(scenario, set(overrides)):
        print(f"exportjobs run: warning: --var {name} is not a variable of {args.scenario}"
              + (f"; did you mean {near}?" if near else "; it is not used"), file=sys.stderr)
    # A progress line would break up the exchanges -v prints.
    progress = Progress(enabled=False) if args.no_progress or args.verbose else Progress()

    def show(exchange: Exchange) -> None:
        print(exchange.text() + "\n", flush=True)

    async def interruptible() -> RunResult:
        """The run, with Ctrl-C (and SIGTERM) asking it to stop rather than killing it, so
        what ran is still summarised and reported."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        signals = (signal.SIGINT, signal.SIGTERM)
        installed = []
        for sig in signals:
            try:
                loop.add_signal_handler(sig, stop.set)
                installed.append(sig)
            except (NotImplementedError, AttributeError, RuntimeError):  # Windows, other threads
                pass
        try:
            return await run_scenario(scenario, target=args.target, proxy=args.proxy,
                                      overrides=overrides, ssl_context=ssl_context,
                                      progress=progress, connect_timeout=args.connect_timeout,
                                      response_timeout=args.timeout, stop=stop,
                                      on_exchange=show if args.verbose else None,
                                      emulator_config=EmulatorConfig(quirks=args.quirks))
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    try:
        result = asyncio.run(interruptible())
    except RunAborted as exc:
        print(f"exportjobs run: {exc}", file=sys.stderr)
        return exc.exit_code
    except ScenarioError as exc:
        print(exc, file=sys.stderr)
        print(f"exportjobs run: {args.scenario} cannot be sent as written; nothing was sent",
              file=sys.stderr)
        return 2
    print_summary(result, sys.stdout)
    try:
        if args.report_json:
            write_json(result, args.report_json)
        if args.junit:
            write_junit(result, args.junit)
        if args.report_html:
            from exportjobs.simulator.htmlreport import write_html

            write_html(result, args.report_html)
    except OSError as exc:
        print(f"exportjobs run: cannot write the report: {exc}", file=sys.stderr)
        return 2
    if result.interrupted:
        print("exportjobs run: interrupted (Ctrl-C); the summary and reports cover what ran",
              file=sys.stderr)
        return 130
    if result.untrusted:
        print(f"exportjobs run: TLS: {result.stopped}", file=sys.stderr)
        return 3
    if result.stopped is not None:
        print(f"exportjobs run: {result.stopped}; is it running and answering?", file=sys.stderr)
        return 3
    return 0 if result.ok else 1


def _scenario_file(arg: str) -> Path:
    """A scenario file as given, else the shipped scenario of that name (the loader says
    what is wrong with a path that is neither)."""
    given = Path(arg)
    found = shipped.path(arg) if not given.exists() and len(given.parts) == 1 else None
    return found or given


def _add_scenarios(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("scenarios", help="list the shipped scenarios, or copy one to edit",
                       description="Without arguments, list the shipped scenarios. "
                       "'copy NAME [DIR]' writes an editable copy (and the schema editors "
                       "use) into DIR, the current folder by default.")
    p.add_argument("action", nargs="?", choices=("list", "copy"), default="list")
    p.add_argument("name", nargs="?", help="with copy: the scenario to copy")
    p.add_argument("folder", nargs="?", default=".", help="with copy: where to write it")
    p.set_defaults(func=_scenarios)


def _scenarios(args: argparse.Namespace) -> int:
    if args.action == "list":
        width = max(len(name) for name in shipped.names())
        for name in shipped.names():
            print(f"{name:<{width}}  {shipped.summary(name)}")
        print("\nRun one with: exportjobs run NAME; edit a copy: exportjobs scenarios copy NAME")
        return 0
    if not args.name:
        print("exportjobs scenarios copy: name the scenario to copy, e.g. "
              "exportjobs scenarios copy duplicate-create-race", file=sys.stderr)
        return 2
    try:
        written = shipped.copy(args.name, Path(args.folder))
    except FileNotFoundError:
        print(f"exportjobs scenarios copy: no shipped scenario {args.name!r}; shipped: "
              f"{', '.join(shipped.names())}", file=sys.stderr)
        return 2
    except FileExistsError as exc:
        print(f"exportjobs scenarios copy: {exc} exists already; remove it or pick another folder",
              file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"exportjobs scenarios copy: cannot write into {args.folder}: {exc.strerror or exc}",
              file=sys.stderr)
        return 2
    print(f"wrote {written} (and {shipped.SCHEMA_FILE} beside it); run it with: "
          f"exportjobs run {written}")
    return 0


def _add_addon(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("addon", help="print the path of the mitmproxy script, for mitmdump -s",
                       description='Use: mitmdump -s "$(exportjobs addon)" --set '
                       "exportjobs_mode=record --set exportjobs_cassette=FILE. The mitmproxy "
                       "that loads it must be able to import exportjobs (for pipx: pipx inject "
                       "mitmproxy exportjobs).")
    p.set_defaults(func=_addon)


def _addon(args: argparse.Namespace) -> int:
    import exportjobs.addons

    print(Path(exportjobs.addons.__file__).with_name("mitmproxy_script.py"))
    return 0


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the main job: record the duplicate-create race through the "
                       "proxy, then replay it offline")
    p.add_argument("--cassette", metavar="FILE", default="cassettes/demo.yaml",
                   help="where to write the cassette (default cassettes/demo.yaml)")
    p.add_argument("--report-html", metavar="FILE", help="also write the recorded run's HTML report here")
    p.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    from exportjobs.addons.proxy import ProxyError
    from exportjobs.demo import run_demo
    from exportjobs.simulator.runner import RunAborted
    from exportjobs.simulator.scenario import ScenarioError

    try:
        html = Path(args.report_html) if args.report_html else None
        return asyncio.run(run_demo(Path(args.cassette), report_html=html))
    except (ProxyError, RunAborted) as exc:
        print(f"exportjobs demo: {exc}", file=sys.stderr)
        return exc.exit_code
    except ScenarioError as exc:
        print(f"exportjobs demo: the shipped scenario does not load:\n{exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        print(f"exportjobs demo: cannot use{where}: {exc.strerror or exc}; pick another --cassette",
              file=sys.stderr)
        return 2


def _add_conform(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("conform", help="re-send a recorded session to a target and report every "
                       "difference a client could observe",
                       description="Sends the cassette's requests, in order, to the target (by "
                       "default an emulator started in-process), maps the job ids the target "
                       "issues onto later requests, and compares every answer: status, the "
                       "headers Graph always sends, JSON key paths and value types, error codes; "
                       "ids and dates by shape. Exit status: 0 it conforms, 1 differences (a "
                       "table of them), 2 a bad cassette or command line, 3 the target could not "
                       "be reached.")
    p.add_argument("cassette", help="a cassette written by exportjobs proxy --mode record")
    p.add_argument("--target", metavar="URL", help="base URL to check (default: an embedded "
                   "emulator)")
    p.add_argument("--token-env", metavar="NAME", help="read the bearer token sent in place of the "
                   "recording's redacted Authorization from this environment variable (needed "
                   "for real Graph; the emulator accepts any token)")
    p.add_argument("--report-json", metavar="FILE", help="also write the differences as JSON")
    p.add_argument("--wait", type=_positive, default=120.0, metavar="S",
                   help="seconds a recorded poll may wait for the target's job to reach the "
                   "recorded status (default 120)")
    p.add_argument("--timeout", type=_positive, default=30.0, metavar="S",
                   help="seconds to wait for each response (default 30)")
    p.add_argument("--start-after", type=_non_negative, default=2.0, metavar="S",
                   help="the embedded emulator's: seconds a job stays notStarted (default 2)")
    p.add_argument("--run-for", type=_non_negative, default=5.0, metavar="S",
                   help="the embedded emulator's: seconds a job stays running (default 5)")
    p.add_argument("--quirks", choices=QUIRKS, default="none",
                   help="the embedded emulator's shapes (see: exportjobs serve --help)")
    p.set_defaults(func=_conform)


def _conform(args: argparse.Namespace) -> int:
    import os

    from exportjobs.addons.cassette import CassetteError, load_cassette
    from exportjobs.conform import ConformError, conform, table, write_report
    from exportjobs.simulator.emulator.auth import fake_token
    from exportjobs.simulator.transport import RequestError, check_base_url

    def usage(message: str) -> int:
        print(f"exportjobs conform: {message}", file=sys.stderr)
        return 2

    if args.target is not None:
        if not _URL.match(args.target):
            return usage(f"--target {args.target!r}: give a base URL such as http://127.0.0.1:8000")
        try:
            check_base_url(args.target, "--target")
        except RequestError as exc:
            return usage(str(exc))
        if args.quirks != "none":
            return usage("--quirks shapes the embedded emulator only; this run has a --target")
    token = fake_token()
    if args.token_env:
        token = os.environ.get(args.token_env, "")
        if not token.strip():
            return usage(f"--token-env {args.token_env}: that environment variable is not set or "
                         "empty; export the token in it first")
    try:
        cassette = load_cassette(args.cassette)
    except CassetteError as exc:
        return usage(str(exc))

    async def against_target() -> Any:
        if args.target is not None:
            return args.target, await conform(cassette, args.target, token, wait=args.wait,
                                              timeout=args.timeout)
        config = EmulatorConfig(start_after=args.start_after, run_for=args.run_for,
                                quirks=args.quirks)
        emulator = await start_emulator(config, access_log=False)
        try:
            return "the embedded emulator", await conform(cassette, emulator.url, token,
                                                          wait=args.wait, timeout=args.timeout)
        finally:
            await emulator.close()

    try:
        name, outcome = asyncio.run(against_target())
    except ConformError as exc:
        print(f"exportjobs conform: cannot reach {args.target or 'the embedded emulator'}: {exc}; "
              "is it running and "
              "answering?", file=sys.stderr)
        return 3
    if args.report_json:
        try:
            write_report(outcome, args.report_json, cassette.path, args.target or "embedded emulator")
        except OSError as exc:
            return usage(f"--report-json {args.report_json}: cannot write it: {exc.strerror or exc}")
    skipped = (f", {outcome.skipped_injected} injected by the proxy skipped"
               if outcome.skipped_injected else "")
    if outcome.conforms:
        print(f"conforms: {outcome.compared} interactions of {args.cassette} answered alike by "
              f"{name}{skipped}")
        return 0
    print(table(outcome.differences))
    print(f"\n{len(outcome.differences)} differences in {outcome.compared} interactions of "
          f"{args.cassette} against {name}{skipped}")
    return 1


# How ``exportjobs proxy`` spells the options the addons declare, listed as mitmproxy's own
# cmdline.py lists its options: the flag (by default the name without ``exportjobs_``, with
# dashes) and a metavar. Type, default, choices, help and every check of a value come from
# the declaration in the addon's ``load()`` and its ``configure()``; ``--port`` (127.0.0.1
# only, 8080 unless given) is the command's own.
_PROXY_MAIN = "main"
_PROXY_GROUPS = {"faults": "faults and the race gate (docs/faults.md)"}
_PROXY_FLAGS: tuple[tuple[str, str | None, str | None, str], ...] = (
    # (option, flag, metavar, group)
    ("exportjobs_mode", None, None, _PROXY_MAIN),
    ("exportjobs_cassette", None, "FILE", _PROXY_MAIN),
    ("exportjobs_record_mode", None, "none|once|new_episodes|all", _PROXY_MAIN),
    ("listen_port", "--port", "PORT", _PROXY_MAIN),
    ("exportjobs_upstream", None, "URL", _PROXY_MAIN),
    ("exportjobs_miss_policy", None, None, _PROXY_MAIN),
    ("exportjobs_hosts", "--host", "HOST[:PORT]", _PROXY_MAIN),
    ("exportjobs_redact_headers", "--redact-header", "NAME", _PROXY_MAIN),
    ("exportjobs_redact_query", None, "NAME", _PROXY_MAIN),
    ("exportjobs_redact_json", None, "FIELD", _PROXY_MAIN),
    ("confdir", None, "DIR", _PROXY_MAIN),
    ("exportjobs_faults", None, "PLAN", "faults"),
    ("exportjobs_fault_seed", None, "N", "faults"),
    ("exportjobs_fault_client_header", None, "NAME", "faults"),
    ("exportjobs_gate", None, "N", "faults"),
    ("exportjobs_gate_timeout", None, "S", "faults"),
)
_REQUIRED = frozenset({"exportjobs_mode"})  # the command makes the mode explicit
_PROXY_PORT = 8080


def _add_proxy(sub: argparse._SubParsersAction) -> None:
    from exportjobs.addons.options import declared
    from exportjobs.addons.proxy import proxy_addons

    p = sub.add_parser("proxy", help="record, replay or pass through exportJobs traffic (mitmproxy)")
    groups: dict[str, argparse._ActionsContainer] = {_PROXY_MAIN: p}
    groups.update({key: p.add_argument_group(title) for key, title in _PROXY_GROUPS.items()})
    declarations = dict(declared(proxy_addons()).items())
    flags: dict[str, str] = {}
    for option, flag, metavar, group in _PROXY_FLAGS:
        flag = flag or "--" + option.removeprefix("exportjobs_").replace("_", "-")
        flags[option] = flag
        if option == "listen_port":
            p.add_argument(flag, dest=option, type=_port, default=_PROXY_PORT, metavar=metavar,
                           help=f"port on 127.0.0.1 (default {_PROXY_PORT})")
        else:
            _option_flag(groups[group], declarations[option], flag, metavar, option in _REQUIRED)
    p.set_defaults(func=_proxy, proxy_flags=flags)


def _option_flag(parser: argparse._ActionsContainer, declared: Any, flag: str,
                 metavar: str | None, required: bool) -> None:
    """The flag of one declared option, derived as mitmproxy's ``OptManager.make_parser``
    derives its own: the value's type from the option's, a repeatable flag for a list, its
    choices, and its help (with the default, which the command line shows)."""
    typespec, default = declared.typespec, declared.default
    text = declared.help.replace("%", "%%")
    if default not in (None, "", []) and not required:
        text += f" (default {default:g})" if isinstance(default, float) else f" (default {default})"
    kwargs: dict[str, Any] = {"dest": declared.name, "metavar": metavar, "help": text,
                              "choices": declared.choices, "default": default}
    if required:
        kwargs["required"] = True
    for value_type in (str, int, float):
        if typespec in (value_type, value_type | None):
            kwargs["type"] = value_type
            break
    else:
        if typespec != Sequence[str]:  # pragma: no cover - a type with no flag spelling yet
            raise TypeError(f"{declared.name}: options of type {typespec} have no flag")
        kwargs.update(type=str, action="append", default=list(default), help=text + " Repeatable.")
    parser.add_argument(flag, **kwargs)


def _proxy(args: argparse.Namespace) -> int:
    return asyncio.run(_proxy_until_stopped(args))


async def _proxy_until_stopped(args: argparse.Namespace) -> int:
    from exportjobs.addons.proxy import ProxyError, quiet_mitmproxy_logs, start_proxy

    flags: dict[str, str] = args.proxy_flags
    settings = {option: getattr(args, option) for option in flags if option != "listen_port"}
    quiet_mitmproxy_logs()
    try:
        proxy = await start_proxy(settings, port=args.listen_port)
    except ProxyError as exc:
        flag = flags.get(exc.option or "")
        message = f"{flag}: {exc.problem}" if flag else str(exc)
        print(f"exportjobs proxy: {message}", file=sys.stderr)
        return exc.exit_code
    print(f"exportjobs proxy ({args.exportjobs_mode}) on {proxy.url}; HTTPS clients must trust "
          f"{proxy.ca_cert}; Ctrl-C stops it", flush=True)
    await _until_signalled()
    await proxy.close()
    return 0


def _positive(text: str) -> float:
    value = _non_negative(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def _versions() -> str:
    from importlib import metadata

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    return (f"exportjobs {__version__} (mitmproxy {version('mitmproxy')}, aiohttp "
            f"{version('aiohttp')}, Python {sys.version.split()[0]})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="exportjobs",
        description="Emulate, record, replay and race Microsoft Graph's Viva Goals exportJobs API.",
    )
    parser.add_argument("--version", action="version", version=_versions())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_serve(sub)
    _add_run(sub)
    _add_scenarios(sub)
    _add_demo(sub)
    _add_proxy(sub)
    _add_addon(sub)
    _add_conform(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
