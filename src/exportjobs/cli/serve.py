"""``exportjobs serve``: the emulator as a server (one process, or several sharing a store)."""

from __future__ import annotations

import argparse
import asyncio
import errno
import re
import signal
import sys
import threading

from exportjobs.cli.args import guid, non_negative, port, until_signalled
from exportjobs.simulator.emulator.app import EmulatorConfig, StoreUnreachable, start_emulator
from exportjobs.simulator.emulator.keys import QUIRKS
from exportjobs.simulator.emulator.workers import WorkersFailed, needs_shared_store, start_workers

UNSAFE_BANNER = (
    "!!! UNSAFE: --unsafe-race-window-ms {ms:g} !!!\n"
    "!!! This emulator is DELIBERATELY BROKEN: its duplicate check and its insert are\n"
    "!!! {ms:g} ms apart, so concurrent identical creates can each get 201 Created.\n"
    "!!! It exists to prove that race checks catch that. Never treat it as Graph."
)


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the exportJobs emulator")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=port, default=8000, help="port (default 8000; 0 = any free)")
    p.add_argument("--start-after", type=non_negative, default=2.0, metavar="S",
                   help="seconds a job stays notStarted (default 2)")
    p.add_argument("--run-for", type=non_negative, default=5.0, metavar="S",
                   help="seconds a job stays running before it succeeds (default 5)")
    p.add_argument("--known-org", type=guid, action="append", metavar="GUID",
                   help="a known goalsOrganizationId (repeatable); others get 404")
    p.add_argument("--unsafe-race-window-ms", type=non_negative, default=0.0, metavar="MS",
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
    await until_signalled()
    await emulator.close()
    return 0
