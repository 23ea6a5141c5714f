"""``exportjobs scenarios``: list the shipped scenarios, or copy one to edit."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from exportjobs import scenarios as shipped


def scenario_file(arg: str) -> Path:
    """A scenario file as given, else the shipped scenario of that name (the loader says
    what is wrong with a path that is neither)."""
    given = Path(arg)
    found = shipped.path(arg) if not given.exists() and len(given.parts) == 1 else None
    return found or given


def add(sub: argparse._SubParsersAction) -> None:
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
