"""The ``exportjobs`` command line: one module per command, each with ``add(sub)`` that
declares its flags and sets the function that runs it."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from exportjobs import __version__
from exportjobs.cli import (
    addon,
    ca,
    conform,
    demo,
    har,
    locust_worker,
    proxy,
    run,
    scenarios,
    serve,
)

# In the order ``exportjobs --help`` lists them.
COMMANDS = (serve, run, scenarios, demo, proxy, ca, har, addon, conform, locust_worker)


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
    for command in COMMANDS:
        command.add(sub)
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
