"""``exportjobs har export|import``: a cassette as a HAR file and a HAR file as a cassette
(docs/cassette.md, "HAR files"). The conversion is ``exportjobs.addons.har``'s; this module
reads the flags, picks the files and renders every error once, as one line and exit 2."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from importlib import metadata
from pathlib import Path

_MB = 1024 * 1024


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("har", help="export a cassette as a HAR file, or import one from a "
                                   "browser, mitmproxy or Dev Proxy")
    verbs = p.add_subparsers(dest="har_command", required=True, metavar="export|import")

    out = verbs.add_parser("export", help="write CASSETTE as HAR 1.2 (devtools, Charles, "
                                          "Fiddler, Insomnia open it); secrets stay redacted")
    out.add_argument("cassette", metavar="CASSETTE")
    out.add_argument("-o", "--output", metavar="FILE",
                     help="where to write the HAR (default: CASSETTE with a .har suffix; - for stdout)")
    out.add_argument("--force", action="store_true", help="replace FILE if it exists")
    out.set_defaults(func=_export)

    into = verbs.add_parser("import", help="write a cassette of the exportJobs entries of a HAR "
                                           "file, redacted on the way in")
    into.add_argument("har", metavar="FILE")
    into.add_argument("-o", "--output", metavar="CASSETTE",
                      help="the cassette to write (default: FILE with a .yaml suffix)")
    into.add_argument("--force", action="store_true", help="replace CASSETTE if it exists")
    into.add_argument("--max-size", type=_megabytes, default=None, metavar="MB",
                      help="read a HAR larger than 100 MB (it is read whole: memory grows with it)")
    into.add_argument("--skip-unanswered", action="store_true",
                      help="skip exportJobs entries that got no response instead of refusing the file")
    into.add_argument("--host", dest="hosts", action="append", default=[], metavar="HOST[:PORT]",
                      help="hosts besides graph.microsoft.com whose exportJobs paths are kept, as "
                           "the proxy's --host. Repeatable.")
    for flag, dest, what in (("--redact-header", "redact_headers", "header"),
                             ("--redact-query", "redact_query", "query parameter"),
                             ("--redact-json", "redact_json", "JSON field")):
        into.add_argument(flag, dest=dest, action="append", default=[], metavar="NAME",
                          help=f"a {what} to redact besides the defaults (docs/cassette.md). Repeatable.")
    into.set_defaults(func=_import)


def _megabytes(text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a size in MB, got {text!r}") from None
    if not 0 < value <= 1024 * 1024:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 1048576, got {text!r}")
    return int(value * _MB)


def _tool() -> str:
    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "unknown"

    return f"exportjobs {version('exportjobs')}, mitmproxy {version('mitmproxy')}"


def _fail(verb: str, message: str) -> int:
    print(f"exportjobs har {verb}: {message}", file=sys.stderr)
    return 2


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


# --- export -----------------------------------------------------------------------------------


def _export(args: argparse.Namespace) -> int:
    from exportjobs.addons.cassette import CassetteError, load_cassette
    from exportjobs.addons.har import har_chunks
    from exportjobs.addons.persister import write_beside

    source = Path(args.cassette)
    target = None if args.output == "-" else Path(args.output or source.with_suffix(".har"))
    if target is not None:
        if _same_file(source, target):
            return _fail("export", f"{target}: is the cassette itself; pass -o with another file")
        if target.exists() and not args.force:
            return _fail("export", f"{target}: already exists; pass --force to replace it, or -o")
    try:
        cassette = load_cassette(source)
    except CassetteError as exc:
        return _fail("export", str(exc))
    if cassette.torn:
        print(f"exportjobs har export: cassette {source}: {cassette.torn}", file=sys.stderr)
    chunks = har_chunks(cassette, _tool())
    if target is None:
        for chunk in chunks:
            sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
        return 0
    try:
        write_beside(target, chunks, ".writing")
    except OSError as exc:
        return _fail("export", f"{target}: cannot be written ({exc.strerror}); check the folder")
    print(f"exported {len(cassette.interactions)} interaction(s) from {source} to {target}")
    return 0


# --- import -----------------------------------------------------------------------------------


def _import(args: argparse.Namespace) -> int:
    from exportjobs.addons.cassette import CassetteError
    from exportjobs.addons.har import (
        MAX_HAR_BYTES,
        HarError,
        har_interactions,
        import_header,
        import_redactor,
        read_har,
        write_cassette,
    )
    from exportjobs.addons.redaction import Redactor
    from exportjobs.addons.scope import Scope

    source = Path(args.har)
    target = Path(args.output or source.with_suffix(".yaml"))
    if _same_file(source, target):
        return _fail("import", f"{target}: is the HAR itself; pass -o with another file")
    if target.exists() and not args.force:
        return _fail("import", f"cassette {target}: already exists; pass --force to replace it, "
                               "or -o another file")
    # what a proxy replaying it with the same flags redacts, and what the import redacts
    as_replayed = Redactor.configured(args.redact_headers, args.redact_query, args.redact_json)
    redactor = import_redactor(args.redact_headers, args.redact_query, args.redact_json)
    try:
        har = read_har(source, args.max_size or MAX_HAR_BYTES)
        imported = har_interactions(har, source, Scope(args.hosts), redactor, as_replayed,
                                    skip_unanswered=args.skip_unanswered)
    except HarError as exc:
        return _fail("import", str(exc))
    for note in imported.notes:
        print(f"exportjobs har import: {source}, {note}", file=sys.stderr)
    if not imported.interactions:
        return _fail("import", f"HAR {source}: none of its {imported.skipped} entries is "
                               "exportJobs traffic (/{beta|v1.0}/employeeExperience/goals/exportJobs "
                               "on graph.microsoft.com or a --host); nothing written")
    described = f"a HAR written by {imported.creator}" if imported.creator else "a HAR"
    header = import_header(imported, _tool(), f"{described} ({source.name})")
    try:
        asyncio.run(write_cassette(target, header, imported.interactions, args.force))
    except CassetteError as exc:
        return _fail("import", str(exc))
    except OSError as exc:
        return _fail("import", f"cassette {target}: cannot be written ({exc.strerror}); "
                               "check the folder exists and is writable")
    print(f"imported {len(imported.interactions)} exportJobs interaction(s) from {source} into "
          f"{target} ({imported.skipped} other entries left out)")
    flags = "".join(f" --redact-query {name}" for name in sorted(imported.replay_query))
    flags += "".join(f" --redact-json {name}" for name in sorted(imported.replay_json))
    if flags:
        print(f"its requests had credentials redacted that a proxy keys on unless told to redact "
              f"them too: replay with{flags}")
    print(f"replay it: exportjobs proxy --mode replay --cassette {target}{flags}")
    return 0
