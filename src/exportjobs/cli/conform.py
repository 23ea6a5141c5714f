"""``exportjobs conform``: re-send a recorded session and report every difference."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from exportjobs.cli.args import BASE_URL, non_negative, positive
from exportjobs.simulator.emulator.app import EmulatorConfig, start_emulator
from exportjobs.simulator.emulator.keys import QUIRKS


def add(sub: argparse._SubParsersAction) -> None:
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
    p.add_argument("--wait", type=positive, default=120.0, metavar="S",
                   help="seconds a recorded poll may wait for the target's job to reach the "
                   "recorded status (default 120)")
    p.add_argument("--timeout", type=positive, default=30.0, metavar="S",
                   help="seconds to wait for each response (default 30)")
    p.add_argument("--start-after", type=non_negative, default=2.0, metavar="S",
                   help="the embedded emulator's: seconds a job stays notStarted (default 2)")
    p.add_argument("--run-for", type=non_negative, default=5.0, metavar="S",
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
        if not BASE_URL.match(args.target):
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
