"""``exportjobs run``: run a YAML scenario and check its expectations."""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import sys

from exportjobs import scenarios as shipped
from exportjobs.cli.args import BASE_URL, positive
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
    p.set_defaults(func=_run)


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
