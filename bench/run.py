"""``make bench``: run the speed benchmarks (all sections, or ``--only NAME``).

Each section is a module ``bench/<name>.py`` with ``NAME``, ``TITLE`` and
``run(wrk, options) -> SectionResult``; add new ones to ``SECTIONS``. Results go to
``bench/results/<time>.json`` (git-ignored); ``--update-docs`` also rewrites the section's
block in docs/benchmarks.md.

    make bench
    make bench BENCH_ARGS="--only emulator --duration 5 --update-docs"
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: find bench.*

from bench.common import ROOT, BenchError, Options, ensure_wrk

SECTIONS = ("emulator", "proxy", "gate", "simulator", "wiremock", "stores", "workers", "engines")
DOCS = ROOT / "docs" / "benchmarks.md"
RESULTS = ROOT / "bench" / "results"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.splitlines()[0])
    p.add_argument("--only", action="append", choices=SECTIONS, metavar="NAME",
                   help=f"run only this section (repeatable): {', '.join(SECTIONS)}")
    p.add_argument("--duration", type=int, default=10, metavar="S",
                   help="seconds per measurement (default 10)")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    p.add_argument("--connections", type=int, default=50, help="wrk connections (default 50)")
    p.add_argument("--jvm-warmup", type=int, default=30, metavar="S",
                   help="at least this many seconds of load on WireMock before its figures, "
                        "more until it stops getting cheaper (default 30)")
    p.add_argument("--no-pin", dest="pin", action="store_false",
                   help="do not pin wrk and the servers to separate CPUs")
    p.add_argument("--update-docs", action="store_true",
                   help="write the figures into docs/benchmarks.md")
    p.add_argument("--note", default="", metavar="TEXT",
                   help="a sentence written after the date with --update-docs, e.g. what else "
                        "the machine was running")
    args = p.parse_args(argv)
    if not 1 <= args.duration <= 120 or not 1 <= args.rounds <= 10:
        p.error("--duration must be 1..120 and --rounds 1..10")
    if not 0 <= args.jvm_warmup <= 300:
        p.error("--jvm-warmup must be 0..300")
    return args


def machine() -> dict[str, object]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import aiohttp

    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split()
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model or platform.processor(),
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "wrk": wrk_version[1] if len(wrk_version) > 1 else "?",
        "kernel": platform.release(),
    }


def update_docs(name: str, title: str, block: str, stamp: str, info: dict[str, object],
                note: str = "") -> None:
    """Replace the section's block between its markers in docs/benchmarks.md."""
    start, end = f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    body = (
        f"{start}\n### {title}\n\nMeasured {stamp} on {info['cpus']} cores ({info['cpu_model']}), "
        f"Python {info['python']}, aiohttp {info['aiohttp']}, wrk {info['wrk']}."
        f"{' ' + note.strip() if note.strip() else ''}\n\n{block}\n{end}"
    )
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: body, text) if pattern.search(text) else text.rstrip() + f"\n\n{body}\n"
    DOCS.write_text(text)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    opts = Options(duration_s=args.duration, rounds=args.rounds,
                   connections=args.connections, pin=args.pin,
                   jvm_warmup_s=args.jvm_warmup)
    try:
        wrk = ensure_wrk()
    except (BenchError, OSError, subprocess.SubprocessError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    info = machine()
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"bench: {info['cpus']} cores, Python {info['python']}, aiohttp {info['aiohttp']}, "
          f"wrk {info['wrk']}; {opts}", flush=True)
    results: dict[str, object] = {"date": stamp, "machine": info, "options": opts.__dict__,
                                  "note": args.note}
    failed = False
    for name in args.only or SECTIONS:
        section = importlib.import_module(f"bench.{name}")
        print(f"\n== {name}: {section.TITLE}", flush=True)
        started = time.monotonic()
        try:
            result = section.run(wrk, opts)
        except BenchError as exc:
            print(f"bench {name}: FAILED: {exc}", file=sys.stderr)
            results[name] = {"error": str(exc)}
            failed = True
            continue
        print("\n".join(result.lines[-result.summary:]))
        print(f"  ({time.monotonic() - started:.0f} s)", flush=True)
        results[name] = result.data
        if result.skipped is None and args.update_docs:
            update_docs(name, section.TITLE, result.markdown, stamp, info, args.note)
            print(f"  wrote {DOCS.relative_to(ROOT)}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nresults: {out.relative_to(ROOT)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
