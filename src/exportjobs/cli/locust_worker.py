"""``exportjobs locust-worker``: a Locust worker that joins ``exportjobs run --engine locust``
from another machine (or this one)."""

from __future__ import annotations

import argparse
import subprocess
import sys

from exportjobs.cli.args import positive


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("locust-worker", help="join a load run on Locust as a worker",
                       description="Connects to the Locust master of `exportjobs run SCENARIO --engine "
                       "locust --locust-remote-workers N --locust-bind ADDRESS` and sends its share of "
                       "each load step. Exit status: 0 the master ended the run, 2 invalid flags or "
                       "locust not installed, 3 no master answered in time.")
    p.add_argument("--master", required=True, metavar="HOST[:PORT]",
                   help="the master's address (port default 5557)")
    p.add_argument("--connect-timeout", type=positive, default=60.0, metavar="S",
                   help="seconds to keep trying to reach the master (default 60)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from exportjobs.simulator import locust as engines

    if not engines.available():
        print(f"exportjobs locust-worker: {engines.INSTALL_HINT}", file=sys.stderr)
        return 2
    # A process of its own: locust patches the whole process with gevent on import.
    command = [sys.executable, "-m", "exportjobs.simulator.locust.worker", "--master", args.master,
               "--connect-timeout", str(args.connect_timeout)]
    try:
        return subprocess.call(command)
    except KeyboardInterrupt:
        return 130
