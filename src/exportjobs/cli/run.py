"""``exportjobs run``: run a YAML scenario and check its expectations."""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import signal
import sys
from typing import Any

from exportjobs import scenarios as shipped
from exportjobs.cli.args import BASE_URL, port, positive
from exportjobs.cli.scenarios import scenario_file
from exportjobs.simulator.emulator.app import EmulatorConfig
from exportjobs.simulator.emulator.keys import QUIRKS


def add(sub: argparse._SubParsersAction) -> None:
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
    p.add_argument("--connect-timeout", type=positive, default=10.0, metavar="S",
                   help="seconds to open a connection (default 10)")
    p.add_argument("--timeout", type=positive, default=30.0, metavar="S",
                   help="seconds to wait for a response, for requests that set no timeout (default 30)")
    p.add_argument("--no-progress", action="store_true", help="never draw progress lines")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="print every request and response as it happens (tokens and cookies redacted)")
    p.add_argument("--quirks", choices=QUIRKS, default="none",
                   help="the embedded emulator's shapes (see: exportjobs serve --help)")
    # --- record / replay (exportjobs.session; docs/scenarios.md) ---
    p.add_argument("--record", metavar="CASSETTE", help="run through an in-process recording proxy "
                   "(upstream: --target, else the embedded emulator) and write every exportJobs "
                   "exchange to CASSETTE, with the values the scenario drew in its header")
    p.add_argument("--replay", metavar="CASSETTE", help="run against an in-process replay of "
                   "CASSETTE: no upstream, and the recorded run's variables (--var still wins)")
    # --- end record / replay ---
    _add_engine_flags(p)
    p.set_defaults(func=_run)


# --- record / replay and proxies from the environment -----------------------------------------


def _session_mistake(args: argparse.Namespace) -> str | None:
    """What makes --record/--replay impossible as combined, naming the flags; None if fine."""
    if args.record and args.replay:
        return ("--record and --replay go one at a time: record with --record CASSETTE, then "
                "replay with --replay CASSETTE")
    if args.replay:
        for flag, given in (("--target", args.target), ("--proxy", args.proxy),
                            ("--cacert", args.cacert)):
            if given:
                return (f"--replay answers from the cassette through its own proxy, with no "
                        f"upstream: drop {flag} (record against a target with --record CASSETTE "
                        "--target URL)")
        if args.quirks != "none":
            return "--quirks shapes the embedded emulator, which --replay does not start; drop it"
    if args.record and args.proxy:
        return ("--record runs through its own recording proxy; drop --proxy (to record from a "
                "proxy of your own, run exportjobs proxy --mode record)")
    return None


def _environment_proxy(args: argparse.Namespace, target: str | None) -> str | None:
    """The proxy HTTPS_PROXY / HTTP_PROXY give ``target`` (NO_PROXY applied), said aloud;
    None for no proxy. Raises RequestError for a value that cannot be used."""
    from exportjobs.simulator.transport import RequestError, check_base_url, environment_proxy
    from exportjobs.simulator.values import shown_url

    if target is None:  # the embedded emulator: on loopback, in-process, never proxied unasked
        try:
            found = environment_proxy("http://127.0.0.1")
        except RequestError:
            found = None  # a proxy it would not use anyway
        if found is not None and found.proxy is not None:
            print(f"exportjobs run: {found.variable} is not used for the embedded emulator "
                  "(pass --proxy URL to send its traffic through a proxy)", file=sys.stderr)
        return None
    try:
        check_base_url(target, "target")
    except RequestError:
        return None  # the run refuses it, naming the scenario's line
    found = environment_proxy(target)
    if found is None:
        return None
    if found.proxy is None:
        print(f"exportjobs run: {found.variable} is set, but NO_PROXY ({found.exempted_by}) "
              f"exempts {shown_url(target)}: connecting directly", file=sys.stderr)
        return None
    print(f"exportjobs run: using the proxy {shown_url(found.proxy)} from {found.variable} "
          f"for {shown_url(target)} (--proxy overrides it; NO_PROXY exempts hosts)", file=sys.stderr)
    return found.proxy


def _after_session(args: argparse.Namespace, outcome: object) -> None:
    """What a recording stored, or a replay met, and the command that replays a recording."""
    import shlex

    from exportjobs.session import Recorded, Replayed

    if isinstance(outcome, Recorded):
        if not outcome.written:
            print(f"Nothing was recorded; {outcome.cassette} was left as it was.")
            return
        stored = ", ".join(outcome.stored) or "none"
        print(f"Recorded to {outcome.cassette}; variables stored in its header: {stored}")
        for name in outcome.withheld:
            print(f"  not stored (looks like a secret): {name}; pass --var {name}=... when replaying")
        for name in outcome.unreplayable:
            print(f"  {name} is drawn anew for every request: requests using it will not match "
                  "on replay")
        print(f"Replay it with: exportjobs run {shlex.quote(args.scenario)} --replay "
              f"{shlex.quote(str(outcome.cassette))}")
    elif isinstance(outcome, Replayed):
        print(f"Replayed from {outcome.cassette}: {outcome.upstream_connections} upstream "
              f"connection(s); variables from its header: {', '.join(outcome.variables) or 'none'}")


# --- end record / replay and proxies from the environment -------------------------------------


def _run(args: argparse.Namespace) -> int:
    from exportjobs.session import SessionError
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
    # --- record / replay: refuse what cannot be combined ---
    mistake = _session_mistake(args)
    if mistake is not None:
        return usage(mistake)
    # --- end record / replay ---
    for flag, url in (("--target", args.target), ("--proxy", args.proxy)):
        if url is not None and not BASE_URL.match(url):
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
    scenario_path = scenario_file(args.scenario)
    try:
        scenario = load_scenario(scenario_path, extra_variables=set(overrides))
    except ScenarioError as exc:
        print(exc, file=sys.stderr)
        print(f"exportjobs run: {args.scenario} is not a valid scenario; nothing was sent",
              file=sys.stderr)
        if not scenario_path.exists():
            print(f"(shipped scenarios run by name: {', '.join(shipped.names())})", file=sys.stderr)
        return 2
    if args.quirks != "none" and (args.target or scenario.target):
        return usage("--quirks shapes the embedded emulator only; this run has a target (start "
                     "that emulator with: exportjobs serve --quirks ...)")
    # --- proxies from the environment (HTTPS_PROXY, HTTP_PROXY, NO_PROXY): --proxy and the
    # scenario's own proxy win; --record and --replay run through their own proxy ---
    proxy = args.proxy
    if proxy is None and scenario.proxy is None and not (args.record or args.replay):
        from exportjobs.session import scenario_target

        try:
            proxy = _environment_proxy(args, scenario_target(scenario, args.target, overrides))
        except (RequestError, SessionError) as exc:
            return usage(str(exc))
    # --- end proxies from the environment ---
    for name, near in unused_variables(scenario, set(overrides)):
        print(f"exportjobs run: warning: --var {name} is not a variable of {args.scenario}"
              + (f"; did you mean {near}?" if near else "; it is not used"), file=sys.stderr)
    load_engine = _load_engine(args, scenario)
    if isinstance(load_engine, int):
        return load_engine
    # A progress line would break up the exchanges -v prints.
    progress = Progress(enabled=False) if args.no_progress or args.verbose else Progress()

    def show(exchange: Exchange) -> None:
        print(exchange.text() + "\n", flush=True)

    session: list[object] = []  # the record or replay outcome, for what is said after the summary

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
            # --- record / replay (exportjobs.session) ---
            if args.record or args.replay:
                from exportjobs import session as sessions
                from exportjobs.addons.proxy import quiet_mitmproxy_logs

                quiet_mitmproxy_logs()  # the proxy's own MISS lines (warnings) still show
                if not args.verbose:  # its line per exchange would flood a burst's or a load's output
                    logging.getLogger("exportjobs").setLevel(logging.WARNING)

                options = sessions.RunOptions(
                    progress=progress, connect_timeout=args.connect_timeout,
                    response_timeout=args.timeout, stop=stop,
                    on_exchange=show if args.verbose else None,
                    emulator_config=EmulatorConfig(quirks=args.quirks))
                outcome: sessions.Recorded | sessions.Replayed
                if args.record:
                    outcome = await sessions.record(scenario, args.record, target=args.target,
                                                    overrides=overrides, cacert=args.cacert,
                                                    options=options)
                else:
                    outcome = await sessions.replay(scenario, args.replay, overrides=overrides,
                                                    options=options)
                session.append(outcome)
                return outcome.result
            # --- end record / replay ---
            return await run_scenario(scenario, target=args.target, proxy=proxy,
                                      overrides=overrides, ssl_context=ssl_context,
                                      progress=progress, connect_timeout=args.connect_timeout,
                                      response_timeout=args.timeout, stop=stop,
                                      on_exchange=show if args.verbose else None,
                                      emulator_config=EmulatorConfig(quirks=args.quirks),
                                      load_engine=load_engine)
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    try:
        result = asyncio.run(interruptible())
    except RunAborted as exc:
        print(f"exportjobs run: {exc}", file=sys.stderr)
        return exc.exit_code
    except SessionError as exc:  # --record / --replay as asked cannot go ahead
        return usage(str(exc))
    except OSError as exc:  # --record: the cassette's folder cannot be made
        where = f" {exc.filename}" if exc.filename else ""
        return usage(f"--record {args.record or args.replay}: cannot use{where}: "
                     f"{exc.strerror or exc}; pick another path")
    except ScenarioError as exc:
        print(exc, file=sys.stderr)
        print(f"exportjobs run: {args.scenario} cannot be sent as written; nothing was sent",
              file=sys.stderr)
        return 2
    print_summary(result, sys.stdout)
    if session:  # --- record / replay ---
        _after_session(args, session[0])
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


# --- the engine of load phases (--engine) ------------------------------------------------------


def _add_engine_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("load engine", "where load steps run; request, poll, burst and pause "
                             "steps always run on the built-in engine (see docs/scenarios.md, engines)")
    g.add_argument("--engine", choices=("built-in", "locust"), default="built-in",
                   help="built-in: asyncio in this process (default); locust: a Locust master and "
                   "workers (pip install 'exportjobs[locust]')")
    g.add_argument("--locust-workers", type=_count, default=2, metavar="N",
                   help="local Locust worker processes, on 127.0.0.1 (default 2)")
    g.add_argument("--locust-remote-workers", type=_count, default=0, metavar="N",
                   help="also wait for N workers started elsewhere with: exportjobs locust-worker "
                   "--master HOST:PORT (from another machine: with --locust-bind)")
    g.add_argument("--locust-bind", default="127.0.0.1", metavar="ADDRESS",
                   help="address the master listens on for workers (default 127.0.0.1; 0.0.0.0 "
                   "for remote workers: they receive the bearer token, unencrypted)")
    g.add_argument("--locust-port", type=port, default=None, metavar="PORT",
                   help="the master's port (default: a free one; 5557 with remote workers)")
    g.add_argument("--locust-wait", type=positive, default=30.0, metavar="S",
                   help="seconds to wait for the workers to connect (default 30)")
    g.add_argument("--locust-web", nargs="?", const=8089, type=port, default=None, metavar="PORT",
                   help="serve Locust's web UI on 127.0.0.1:PORT (default 8089) while load runs")


def _count(text: str) -> int:
    if not text.isdigit() or int(text) > 256:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 256, got {text!r}")
    return int(text)


def _load_engine(args: argparse.Namespace, scenario: Any) -> Any:
    """The engine for load steps (None: the built-in one), or an exit status after saying
    what is wrong with the flags."""
    locust_flags = [f for f, v, d in (("--locust-workers", args.locust_workers, 2),
                                       ("--locust-remote-workers", args.locust_remote_workers, 0),
                                       ("--locust-bind", args.locust_bind, "127.0.0.1"),
                                       ("--locust-port", args.locust_port, None),
                                       ("--locust-wait", args.locust_wait, 30.0),
                                       ("--locust-web", args.locust_web, None)) if v != d]
    if args.engine == "built-in":
        if locust_flags:
            print(f"exportjobs run: {locust_flags[0]} is for --engine locust", file=sys.stderr)
            return 2
        return None
    from exportjobs.simulator import locust as engines

    if not engines.available():
        print(f"exportjobs run: --engine locust: {engines.INSTALL_HINT}", file=sys.stderr)
        return 2
    if args.proxy or scenario.proxy or args.record or args.replay:
        through = "--record/--replay (their proxy)" if args.record or args.replay else "the proxy"
        print("exportjobs run: --engine locust sends load straight to the target; a proxy is for "
              f"the built-in engine (drop --engine locust, or {through})", file=sys.stderr)
        return 2
    if args.locust_workers + args.locust_remote_workers == 0:
        print("exportjobs run: --engine locust needs at least one worker (--locust-workers N)", file=sys.stderr)
        return 2
    from exportjobs.simulator.transport import is_loopback_host

    if not is_loopback_host(args.locust_bind):
        print(f"exportjobs run: warning: the Locust master listens on {args.locust_bind}: any worker "
              "that reaches it gets the scenario's requests and bearer token, unencrypted; "
              "open it only on a network you trust", file=sys.stderr)
    from exportjobs.simulator.locust.engine import LocustEngine

    port_ = args.locust_port or (engines.DEFAULT_PORT if args.locust_remote_workers else None)
    return LocustEngine(workers=args.locust_workers, remote_workers=args.locust_remote_workers,
                        bind=args.locust_bind, port=port_, web_port=args.locust_web,
                        wait=args.locust_wait, cacert=args.cacert)

