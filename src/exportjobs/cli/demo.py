"""``exportjobs demo``: the main job on the embedded emulator."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the main job: record the duplicate-create race through the "
                       "proxy, then replay it offline")
    p.add_argument("--cassette", metavar="FILE", default="cassettes/demo.yaml",
                   help="where to write the cassette (default cassettes/demo.yaml)")
    p.add_argument("--report-html", metavar="FILE", help="also write the recorded run's HTML report here")
    p.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    from exportjobs.addons.proxy import ProxyError
    from exportjobs.demo import run_demo
    from exportjobs.session import SessionError
    from exportjobs.simulator.runner import RunAborted
    from exportjobs.simulator.scenario import ScenarioError

    try:
        html = Path(args.report_html) if args.report_html else None
        return asyncio.run(run_demo(Path(args.cassette), report_html=html))
    except (ProxyError, RunAborted, SessionError) as exc:
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
