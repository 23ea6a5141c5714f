"""Section ``proxy``: the exportJobs addon against bare mitmdump and mitmproxy's server replay.

Each part runs the addons two ways: as the command users run (``exportjobs proxy --mode
record|replay``, whose mitmproxy looks each event's handlers up once: addons/hookplan.py) and
as a script in stock mitmdump (``mitmdump -s``). Every proxy is a process of its own (a
``mitmdump -q`` or ``exportjobs proxy``, its own confdir) pinned to the server CPU;
wrk (1 thread, ``connections``) and the upstream emulator share the load CPU, so the proxy
has a core to itself and the figures measure the proxy. Record and replay run in two proxy
modes, each compared with its baseline in the same mode: reverse (``--mode
reverse:<emulator>``, wrk sends origin-form requests) and regular (``--mode regular``, wrk
sends absolute-form requests for the emulator, ``GET http://127.0.0.1:<port>/... HTTP/1.1``,
as a client configured with HTTP_PROXY does). Within each part the sides alternate for
``rounds`` rounds; figures are medians.

- Record: the same list GETs (a one-job store) through bare ``mitmdump`` forwarding and
  through ``mitmdump -s addons/mitmproxy_script.py`` in record mode (scoped to the emulator with
  ``exportjobs_hosts``). Each record run must grow the cassette by the 200s wrk counted
  (plus at most the requests in flight when wrk stopped), and the cassette must load at the
  end. Goal: at least 0.8x, with the fsync before each response kept. Two more sides in the same rounds show where record's cost
  goes: the addon in passthrough mode (loaded, only forwarding) and record mode writing its
  cassette to tmpfs (/dev/shm), where fsync costs next to nothing.
- Replay: one recording of that GET, captured once through a proxy that wrote both a
  cassette and a mitmproxy flow file (with a keep-alive client, so no ``Connection: close``
  is recorded for either to replay); then, with the emulator stopped (its port checked
  closed, so anything forwarded would be a 502), our replay (miss policy repeat-last) against
  ``--server-replay`` with ``server_replay_reuse``. Only 200s count. Goal: at least 1.05x.
- Replay cost: cassettes of 10, 10,000 and 100,000 distinct GETs (``job-<k>``), written with
  the cassette writer's ``dump_document``; wrk draws a random id from all of them on every
  request (reverse mode only: the lookup does not depend on the mode). The cost per request is the proxy process's CPU time (user + system, from
  /proc) over the requests served; also timed in-process: the addon's request document, the
  matcher's ``take`` and the response build, for random ids. Goal: flat.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import shutil
import socket
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import (
    CREATE_PATH,
    HOST,
    BenchError,
    Options,
    SectionResult,
    Server,
    WrkResult,
    free_port,
    load_cpu,
    median,
    run_wrk,
    server_cpus,
)

NAME = "proxy"
TITLE = "Record/replay proxy: record vs bare mitmdump, replay vs --server-replay, replay cost"
GOAL_RECORD = 0.8
GOAL_REPLAY = 1.05
MODES = ("reverse", "regular")
MODE_LABELS = {"reverse": "reverse proxy mode (origin-form requests)",
               "regular": "regular proxy mode (absolute-form requests, as with HTTP_PROXY)"}
SIZES = (10, 10_000, 100_000)
FLAT_TOLERANCE = 1.25  # "flat": the largest cassette costs at most this much more per request
ORG = "9ab0fcab-c1d4-4b26-963b-a3c33155f853"
_TICKS = os.sysconf("SC_CLK_TCK")
# A memory file system for the record-to-tmpfs row (the usual temp folder when there is none).
_TMPFS = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
_LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _mitmdump_argv() -> list[str]:
    found = Path(sys.executable).with_name("mitmdump")
    if found.exists():
        return [str(found)]
    other = shutil.which("mitmdump")
    if other is None:
        raise BenchError("mitmdump not found next to this Python or on PATH (pip install mitmproxy)")
    return [other]


def _proxy(name: str, upstream_port: int, extra: list[str], confdir: Path, opts: Options,
           mode: str = "reverse", start_timeout_s: float = 60) -> Server:
    """A mitmdump in reverse mode to the emulator at ``upstream_port``, or in regular mode."""
    port = free_port()
    how = f"reverse:http://{HOST}:{upstream_port}" if mode == "reverse" else "regular"
    argv = [*_mitmdump_argv(), "-q", "--listen-host", HOST, "-p", str(port),
            "--mode", how, "--set", f"confdir={confdir}", *extra]
    return Server(f"{name} ({mode})", argv, port, server_cpus(opts), start_timeout_s)


def _origin(mode: str, upstream_port: int) -> str | None:
    """What wrk puts in absolute form before each path: only in regular proxy mode."""
    return f"http://{HOST}:{upstream_port}" if mode == "regular" else None


def _command(name: str, upstream_port: int, mode: str, cassette: Path, confdir: Path,
             opts: Options, proxy_mode: str = "reverse", extra: tuple[str, ...] = ()) -> Server:
    """``exportjobs proxy --mode MODE`` (what a user runs) in the same proxy mode as the
    mitmdumps beside it."""
    port = free_port()
    how = f"reverse:http://{HOST}:{upstream_port}" if proxy_mode == "reverse" else "regular"
    argv = [sys.executable, "-m", "exportjobs", "proxy", "--mode", mode, "--cassette",
            str(cassette), "--listen-host", HOST, "--port", str(port), "--confdir", str(confdir),
            "--host", f"{HOST}:{upstream_port}", "--set", f"mode={how}", *extra]
    return Server(f"{name} ({proxy_mode})", argv, port, server_cpus(opts))


def _addon(mode: str, cassette: Path, upstream_port: int) -> list[str]:
    return ["-s", "addons/mitmproxy_script.py", "--set", f"exportjobs_mode={mode}",
            "--set", f"exportjobs_cassette={cassette}",
            "--set", f"exportjobs_hosts={HOST}:{upstream_port}"]


def _cpu_s(server: Server) -> float:
    """User + system CPU seconds of the server process (all its threads) so far."""
    assert server.process is not None
    fields = Path(f"/proc/{server.process.pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _measured(wrk: str, server: Server, mode: str, opts: Options, who: str,
              origin: str | None = None) -> tuple[WrkResult, dict[str, Any]]:
    """One wrk run at ``server`` that must see only 200s: the result and its rate and CPU."""
    cpu = _cpu_s(server)
    result = run_wrk(wrk, server.url, mode, opts, origin=origin)
    used = _cpu_s(server) - cpu
    _only(result, 200, who)
    return result, _rate(result, used)


def _get(port: int, path: str, timeout: float = 10) -> tuple[int, bytes]:
    """A keep-alive GET on loopback, as wrk sends it: unlike urllib, no ``Connection: close``,
    which would be recorded and (by --server-replay) replayed, closing every connection."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Authorization": "Bearer bench-opaque-token"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _seed(url: str) -> None:
    """One job in the emulator's store, so the list GET answers a realistic small body."""
    body = json.dumps({"goalsOrganizationId": ORG,
                       "explorerViewId": "7a6d1c3e-0b5f-4e2a-8c9d-1f2e3a4b5c6d"}).encode()
    request = urllib.request.Request(url + CREATE_PATH, data=body, method="POST", headers={
        "Authorization": "Bearer bench-opaque-token", "Content-Type": "application/json"})
    with _LOOPBACK.open(request, timeout=10) as response:
        if response.status != 201:
            raise BenchError(f"seeding the emulator: expected 201, got {response.status}")


def _only(result: WrkResult, status: int, who: str) -> None:
    other = {s: n for s, n in result.statuses.items() if s != status}
    socket_errors = result.socket_errors
    if other or socket_errors or result.statuses.get(status, 0) != result.requests \
            or not result.requests:
        raise BenchError(f"{who}: expected only {status}s, got statuses {result.statuses}, "
                         f"socket errors {socket_errors}, {result.requests} requests")


def _documents(path: Path) -> int:
    """Complete documents in a cassette (header included), counted by their end markers."""
    with open(path, "rb") as f:
        return f.read().count(b"\n...\n")


def _closed(port: int) -> bool:
    try:
        socket.create_connection((HOST, port), timeout=0.5).close()
    except OSError:
        return True
    return False


# --- cassettes of distinct GETs --------------------------------------------------------------


def _job(k: int) -> dict[str, Any]:
    return {
        "@odata.type": "#microsoft.graph.goalsExportJob", "id": f"job-{k}", "status": "succeeded",
        "createdDateTime": "2026-01-01T00:00:00Z", "lastModifiedDateTime": "2026-01-01T00:00:05Z",
        "expirationDateTime": "2026-01-08T00:00:05Z", "goalsOrganizationId": ORG,
        "explorerViewId": f"7a6d1c3e-0b5f-4e2a-8c9d-{k:012x}",
        "resourceLocation": f"http://{HOST}{CREATE_PATH}/job-{k}/content",
    }


def write_cassette(path: Path, size: int, upstream_port: int) -> None:
    """A cassette of ``size`` distinct job GETs, in the shape the addon records."""
    from exportjobs.addons.cassette import dump_document, new_header

    base = f"http://{HOST}:{upstream_port}{CREATE_PATH}"
    with open(path, "wb") as f:
        f.write(dump_document(new_header("Sat, 28 Nov 2026 00:00:00 GMT", "bench/proxy.py")))
        for k in range(1, size + 1):
            f.write(dump_document({
                "interaction": k, "started": k * 0.001, "duration": 0.0008, "concurrent": [],
                "request": {"method": "GET", "url": f"{base}/job-{k}", "headers": [
                    ["Host", f"{HOST}:{upstream_port}"], ["Authorization", "REDACTED"]]},
                "response": {"status": 200, "headers": [
                    ["Content-Type", "application/json;odata.metadata=minimal"],
                    ["request-id", f"00000000-0000-4000-8000-{k:012x}"],
                    ["client-request-id", f"00000000-0000-4000-8000-{k:012x}"],
                    ["Date", "Sat, 28 Nov 2026 00:00:00 GMT"]],
                    "json": {"value": _job(k)}},
            }))


def _in_process_us(path: Path, size: int, upstream_port: int, lookups: int = 20_000) -> float:
    """Median µs for the addon's replay work per request: request document, take, response."""
    from mitmproxy import http as mhttp

    from exportjobs.addons.cassette import load_cassette, request_doc
    from exportjobs.addons.matching import ReplayIndex
    from exportjobs.addons.redaction import Redactor
    from exportjobs.addons.replay import recorded_response

    index = ReplayIndex(load_cassette(path).interactions)
    redactor = Redactor()
    rng = random.Random(size)
    requests = [
        mhttp.Request.make("GET", f"http://{HOST}:{upstream_port}{CREATE_PATH}/job-{rng.randint(1, size)}",
                           headers=mhttp.Headers(Authorization="Bearer bench-opaque-token"))
        for _ in range(lookups)
    ]
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        for req in requests:
            doc = request_doc(req.method, req.pretty_url, list(req.headers.items(True)),
                              req.get_content(strict=False) or b"", redactor)
            take = index.take(doc)
            if take.interaction is None:
                raise BenchError(f"in-process replay of {size}: {req.path} was not found")
            recorded_response(take, req)
        timings.append((time.perf_counter() - started) / lookups * 1e6)
    return statistics.median(timings)


# --- the section -----------------------------------------------------------------------------


def _rate(result: WrkResult, cpu_s: float) -> dict[str, Any]:
    return {**result.as_dict(), "cpu_us_per_request": round(cpu_s / result.requests * 1e6, 1)}


def _record_part(wrk: str, opts: Options, mode: str, emu_port: int, confdir: Path, tmp: Path,
                 say: Callable[[str], None]) -> list[dict[str, Any]]:
    """Record against bare mitmdump in ``mode``: four sides alternating for ``opts.rounds``."""
    origin = _origin(mode, emu_port)
    cassette = tmp / f"record-{mode}.yaml"

    def measured(server: Server, who: str) -> tuple[WrkResult, dict[str, Any]]:
        return _measured(wrk, server, "list", opts, f"{who} ({mode})", origin)

    rounds: list[dict[str, Any]] = []
    bare = _proxy("bare mitmdump", emu_port, [], confdir, opts, mode)
    record = _proxy("mitmdump + addon, record", emu_port, _addon("record", cassette, emu_port),
                    confdir, opts, mode)
    # Where record's cost goes: the addon loaded but only forwarding, and recording
    # to a cassette in memory (tmpfs), where fsync costs next to nothing.
    passthrough = _proxy("mitmdump + addon, passthrough", emu_port,
                         _addon("passthrough", cassette, emu_port), confdir, opts, mode)
    command_cassette = tmp / f"command-record-{mode}.yaml"
    command = _command("exportjobs proxy, record", emu_port, "record", command_cassette, confdir,
                       opts, mode)
    memory_dir = Path(tempfile.mkdtemp(prefix="bench-proxy-", dir=_TMPFS))

    def recorded(server: Server, who: str, path: Path) -> tuple[WrkResult, dict[str, Any], int]:
        """A record run, checked: the cassette grew by the 200s wrk counted."""
        before = _documents(path) if path.exists() else 0
        result, rate = measured(server, who)
        time.sleep(0.2)  # let responses still in flight when wrk stopped land
        grown = _documents(path) - before
        if not result.requests <= grown <= result.requests + opts.connections:
            raise BenchError(f"{who} ({mode}): wrk saw {result.requests} 200s but the "
                             f"cassette grew by {grown} interactions")
        return result, rate, grown

    try:
        in_memory = _proxy("mitmdump + addon, record to tmpfs", emu_port,
                           _addon("record", memory_dir / "record.yaml", emu_port), confdir, opts,
                           mode)
        with bare, record, passthrough, in_memory, command:
            for proxy in (bare, record, passthrough, in_memory, command):
                run_wrk(wrk, proxy.url, "list", opts, opts.warmup_s, origin)
            for n in range(1, opts.rounds + 1):
                base, base_rate = measured(bare, "bare mitmdump")
                passing, passing_rate = measured(passthrough, "passthrough")
                _, memory_rate = measured(in_memory, "record to tmpfs")
                rec, rec_rate, grown = recorded(record, "record", cassette)
                own, own_rate, _ = recorded(command, "exportjobs proxy record", command_cassette)
                rounds.append({"bare": base_rate, "record": rec_rate, "passthrough": passing_rate,
                               "record_tmpfs": memory_rate, "command": own_rate,
                               "recorded": grown})
                say(f"  {mode:7} record round {n}: bare {base.rps:6.0f} req/s | passthrough "
                    f"{passing.rps:6.0f} | record to tmpfs {memory_rate['rps']:6.0f} | record "
                    f"{rec.rps:6.0f} req/s ({rec.rps / base.rps:.2f}x), {grown} recorded | "
                    f"exportjobs proxy record {own.rps:6.0f} ({own.rps / base.rps:.2f}x)")
    finally:
        shutil.rmtree(memory_dir, ignore_errors=True)
    from exportjobs.addons.cassette import load_cassette

    for path in (cassette, command_cassette):
        loaded = load_cassette(path)
        if loaded.torn or not loaded.interactions:
            raise BenchError(f"record ({mode}): {path.name} does not load whole ({loaded.torn})")
    if len(load_cassette(cassette).interactions) < sum(r["recorded"] for r in rounds):
        raise BenchError(f"record ({mode}): the cassette lost interactions")
    return rounds


def _replay_part(wrk: str, opts: Options, mode: str, emu_port: int, confdir: Path,
                 capture_cassette: Path, flows: Path,
                 say: Callable[[str], None]) -> list[dict[str, Any]]:
    """Our replay against ``--server-replay`` in ``mode``, the emulator stopped."""
    origin = _origin(mode, emu_port)
    lazy = ["--set", "connection_strategy=lazy"]
    ours = _proxy("mitmdump + addon, replay", emu_port,
                  [*_addon("replay", capture_cassette, emu_port), *lazy,
                   "--set", "exportjobs_miss_policy=repeat-last"], confdir, opts, mode)
    theirs = _proxy("mitmdump --server-replay", emu_port,
                    ["--server-replay", str(flows), "--set", "server_replay_reuse=true", *lazy],
                    confdir, opts, mode)
    command = _command("exportjobs proxy, replay", emu_port, "replay", capture_cassette, confdir,
                       opts, mode, ("--set", "connection_strategy=lazy"))
    rounds: list[dict[str, Any]] = []
    with ours, theirs, command:
        for proxy in (theirs, ours, command):
            run_wrk(wrk, proxy.url, "list", opts, opts.warmup_s, origin)
        for n in range(1, opts.rounds + 1):
            base, base_rate = _measured(wrk, theirs, "list", opts, f"--server-replay ({mode})",
                                        origin)
            mine, mine_rate = _measured(wrk, ours, "list", opts, f"replay ({mode})", origin)
            own, own_rate = _measured(wrk, command, "list", opts,
                                      f"exportjobs proxy replay ({mode})", origin)
            rounds.append({"server_replay": base_rate, "replay": mine_rate, "command": own_rate})
            say(f"  {mode:7} replay round {n}: --server-replay {base.rps:6.0f} req/s | replay "
                f"{mine.rps:6.0f} req/s ({mine.rps / base.rps:.2f}x) | exportjobs proxy replay "
                f"{own.rps:6.0f} ({own.rps / base.rps:.2f}x)")
    return rounds


def _scale_part(wrk: str, opts: Options, emu_port: int, confdir: Path, tmp: Path,
                say: Callable[[str], None]) -> tuple[list[dict[int, dict[str, Any]]], dict[int, float]]:
    """Replay cost by cassette size (reverse mode: the lookup does not depend on the mode)."""
    cassettes = {}
    for size in SIZES:
        cassettes[size] = tmp / f"jobs-{size}.yaml"
        write_cassette(cassettes[size], size, emu_port)
    in_process = {size: round(_in_process_us(cassettes[size], size, emu_port), 2)
                  for size in SIZES}
    lazy = ["--set", "connection_strategy=lazy"]
    scale_rounds: list[dict[int, dict[str, Any]]] = []
    proxies = {size: _proxy(f"replay of {size}", emu_port,
                            [*_addon("replay", cassettes[size], emu_port), *lazy], confdir, opts,
                            start_timeout_s=60 + size / 500)  # loading 100,000 takes a while
               for size in SIZES}
    started = []
    try:
        for size in SIZES:
            started.append(proxies[size].__enter__())
        for size in SIZES:
            run_wrk(wrk, proxies[size].url, f"ids:{size}", opts, opts.warmup_s)
        for n in range(1, opts.rounds + 1):
            row = {}
            for size in SIZES:
                _, row[size] = _measured(wrk, proxies[size], f"ids:{size}", opts, f"replay of {size}")
            scale_rounds.append(row)
            say(f"  scale round {n}: " + " | ".join(
                f"{size:,}: {row[size]['rps']:6.0f} req/s {row[size]['cpu_us_per_request']:6.1f} "
                f"µs CPU" for size in SIZES))
    finally:
        for server in reversed(started):
            server.__exit__(None, None, None)
    return scale_rounds, in_process


def run(wrk: str, opts: Options) -> SectionResult:
    """Run the section; raises BenchError when a figure could not be trusted."""
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        print(line, flush=True)

    with tempfile.TemporaryDirectory(prefix="bench-proxy-") as tmp_name:
        tmp = Path(tmp_name)
        confdir = tmp / "confdir"
        confdir.mkdir()
        emu_port = free_port()
        emulator = Server("emulator", [sys.executable, "-m", "exportjobs", "serve", "--quiet",
                                       "--port", str(emu_port), "--start-after", "3600",
                                       "--run-for", "3600"], emu_port, load_cpu(opts))
        capture_cassette, flows = tmp / "capture.yaml", tmp / "capture.flows"
        record_rounds: dict[str, list[dict[str, Any]]] = {}
        with emulator:
            _seed(emulator.url)
            # One recording of the list GET, as a cassette and as a mitmproxy flow file at once.
            with _proxy("capture", emu_port,
                        [*_addon("record", capture_cassette, emu_port), "-w", str(flows)],
                        confdir, opts) as capture:
                status, listed = _get(capture.port, CREATE_PATH)
                if status != 200 or b'"value":[{' not in listed:
                    raise BenchError(f"capture: expected a 200 list of one job, got {status}")
            if _documents(capture_cassette) != 2 or not flows.stat().st_size:
                raise BenchError("capture: the cassette or the flow file did not get the GET")
            for mode in MODES:
                record_rounds[mode] = _record_part(wrk, opts, mode, emu_port, confdir, tmp, say)
        # The emulator is gone: a forwarded request would now be a 502, never a 200.
        if not _closed(emu_port):
            raise BenchError(f"replay: something listens on the stopped emulator's port {emu_port}")
        replay_rounds = {mode: _replay_part(wrk, opts, mode, emu_port, confdir, capture_cassette,
                                            flows, say)
                         for mode in MODES}
        scale_rounds, in_process = _scale_part(wrk, opts, emu_port, confdir, tmp, say)

    def med(rows: list[dict[Any, Any]], side: Any, keys: tuple[str, ...]) -> dict[str, float]:
        return {k: round(median([r[side][k] for r in rows]), 1) for k in keys}

    figures = ("rps", "p50_us", "p99_us", "cpu_us_per_request")
    data: dict[str, Any] = {"goal_record": GOAL_RECORD, "goal_replay": GOAL_REPLAY}
    for mode in MODES:
        rec = {side: med(record_rounds[mode], side, figures)
               for side in ("bare", "passthrough", "record_tmpfs", "record", "command")}
        rep = {side: med(replay_rounds[mode], side, figures)
               for side in ("server_replay", "replay", "command")}
        data[mode] = {
            "record": rec, "replay": rep,
            "record_ratio": round(rec["record"]["rps"] / rec["bare"]["rps"], 3),
            "replay_ratio": round(rep["replay"]["rps"] / rep["server_replay"]["rps"], 3),
            # The same comparisons by CPU spent per request (baseline / ours: above 1 is
            # cheaper), steadier than requests/s when other work shares the machine.
            "record_cpu_ratio": round(rec["bare"]["cpu_us_per_request"]
                                      / rec["record"]["cpu_us_per_request"], 3),
            "replay_cpu_ratio": round(rep["server_replay"]["cpu_us_per_request"]
                                      / rep["replay"]["cpu_us_per_request"], 3),
            # `exportjobs proxy`, the command users run, against the same baselines.
            "command_record_ratio": round(rec["command"]["rps"] / rec["bare"]["rps"], 3),
            "command_replay_ratio": round(rep["command"]["rps"] / rep["server_replay"]["rps"], 3),
            "command_record_cpu_ratio": round(rec["bare"]["cpu_us_per_request"]
                                              / rec["command"]["cpu_us_per_request"], 3),
            "command_replay_cpu_ratio": round(rep["server_replay"]["cpu_us_per_request"]
                                              / rep["command"]["cpu_us_per_request"], 3),
            "rounds": {"record": record_rounds[mode], "replay": replay_rounds[mode]},
        }
        data[mode].update(_round_ratios(data[mode]["rounds"]))
    scale = {str(size): med(scale_rounds, size, ("rps", "p50_us", "cpu_us_per_request"))
             for size in SIZES}
    cost = [scale[str(s)]["cpu_us_per_request"] for s in SIZES]
    growth = cost[-1] / cost[0]
    in_growth = in_process[SIZES[-1]] / in_process[SIZES[0]]
    data.update({
        "scale": scale, "in_process_us": {str(size): us for size, us in in_process.items()},
        "scale_growth": round(growth, 3), "in_process_growth": round(in_growth, 3),
        "flat_tolerance": FLAT_TOLERANCE,
        "scale_rounds": [{str(k): v for k, v in r.items()} for r in scale_rounds],
    })
    verdict = lambda ok: "meets" if ok else "misses"  # noqa: E731
    for mode in MODES:
        m = data[mode]
        rec, rep = m["record"], m["replay"]
        for who, key, side in (("exportjobs proxy", "command_", "command"),
                               ("mitmdump -s script", "", None)):
            lines += [
                f"  {mode} mode, {who} record / bare mitmdump: "
                f"{rec[side or 'record']['rps']:.0f} / {rec['bare']['rps']:.0f} req/s = "
                f"{m[key + 'record_ratio']:.2f}x "
                f"({verdict(m[key + 'record_ratio'] >= GOAL_RECORD)} the {GOAL_RECORD}x goal); "
                f"by CPU per request {m[key + 'record_cpu_ratio']:.2f}x, per-round median "
                f"{m[key + 'record_round_ratio']:.2f}x",
                f"  {mode} mode, {who} replay / --server-replay: "
                f"{rep[side or 'replay']['rps']:.0f} / {rep['server_replay']['rps']:.0f} req/s = "
                f"{m[key + 'replay_ratio']:.2f}x "
                f"({verdict(m[key + 'replay_ratio'] >= GOAL_REPLAY)} the {GOAL_REPLAY}x goal); "
                f"by CPU per request {m[key + 'replay_cpu_ratio']:.2f}x, per-round median "
                f"{m[key + 'replay_round_ratio']:.2f}x",
            ]
    lines += [
        "  replay CPU per request at " + ", ".join(f"{s:,}: {c:.0f} µs" for s, c in zip(SIZES, cost))
        + f" ({growth:.2f}x from {SIZES[0]:,} to {SIZES[-1]:,}; "
        f"{verdict(growth <= FLAT_TOLERANCE)} flat)",
        "  in-process replay work per request at " + ", ".join(
            f"{s:,}: {us:.1f} µs" for s, us in in_process.items()) + f" ({in_growth:.2f}x)",
    ]
    return SectionResult(data, lines, _markdown(data, opts), summary=4 * len(MODES) + 2)


def _round_ratios(rounds: dict[str, list[dict[str, Any]]]) -> dict[str, float]:
    """Medians of the ratios taken within each round, whose two sides ran seconds apart:
    steadier than the ratio of the medians when other work comes and goes on the machine."""
    def ratio(part: str, ours: str, base: str) -> float:
        return round(median([r[ours]["rps"] / r[base]["rps"] for r in rounds[part]]), 3)

    return {"record_round_ratio": ratio("record", "record", "bare"),
            "replay_round_ratio": ratio("replay", "replay", "server_replay"),
            "command_record_round_ratio": ratio("record", "command", "bare"),
            "command_replay_round_ratio": ratio("replay", "command", "server_replay")}


def _markdown(d: dict[str, Any], opts: Options) -> str:
    def ms(us: float) -> str:
        return f"{us / 1000:.2f} ms"

    def row(label: str, s: dict[str, Any]) -> str:
        return (f"| {label} | {s['rps']:.0f} | {s['cpu_us_per_request']:.0f} µs | {ms(s['p50_us'])} "
                f"| {ms(s['p99_us'])} |")

    ok = lambda good: "meets" if good else "misses"  # noqa: E731
    out = [
        "| | requests/s (median) | proxy CPU per request | p50 latency | p99 latency |",
        "|---|---:|---:|---:|---:|",
    ]
    for mode in MODES:
        rec, rep = d[mode]["record"], d[mode]["replay"]
        out += [
            f"| **{MODE_LABELS[mode]}** | | | | |",
            row("bare mitmdump, forwarding", rec["bare"]),
            row("`mitmdump -s` script, passthrough mode (loaded, forwarding)", rec["passthrough"]),
            row("`mitmdump -s` script, record mode, cassette on tmpfs (fsync almost free)", rec["record_tmpfs"]),
            row("`mitmdump -s` script, record mode (fsynced cassette on disk)", rec["record"]),
            row("`exportjobs proxy --mode record` (fsynced cassette on disk)", rec["command"]),
            row("mitmdump --server-replay (reuse)", rep["server_replay"]),
            row("`mitmdump -s` script, replay mode", rep["replay"]),
            row("`exportjobs proxy --mode replay`", rep["command"]),
        ]
    out.append("")
    for mode in MODES:
        m = d[mode]
        rec = m["record"]
        bare_cpu = rec["bare"]["cpu_us_per_request"]
        out += [
            f"{MODE_LABELS[mode][:1].upper()}{MODE_LABELS[mode][1:]}: "
            f"**`exportjobs proxy`: record / bare mitmdump {m['command_record_ratio']:.2f}x** "
            f"in requests/s ({ok(m['command_record_ratio'] >= d['goal_record'])} the "
            f"{d['goal_record']}x goal), {m['command_record_cpu_ratio']:.2f}x by CPU per request, "
            f"{m['command_record_round_ratio']:.2f}x as the median of the per-round ratios; "
            f"**replay / --server-replay {m['command_replay_ratio']:.2f}x** in requests/s "
            f"({ok(m['command_replay_ratio'] >= d['goal_replay'])} the {d['goal_replay']}x goal), "
            f"{m['command_replay_cpu_ratio']:.2f}x by CPU per request, "
            f"{m['command_replay_round_ratio']:.2f}x as the median of the per-round ratios. "
            "The addon as a script in mitmdump (`-s`): "
            f"**record / bare mitmdump {m['record_ratio']:.2f}x** in requests/s "
            f"({ok(m['record_ratio'] >= d['goal_record'])} the {d['goal_record']}x goal), "
            f"{m['record_cpu_ratio']:.2f}x by CPU per request, {m['record_round_ratio']:.2f}x as "
            "the median of the per-round ratios; "
            f"**replay / --server-replay {m['replay_ratio']:.2f}x** in requests/s "
            f"({ok(m['replay_ratio'] >= d['goal_replay'])} the {d['goal_replay']}x goal), "
            f"{m['replay_cpu_ratio']:.2f}x by CPU per request, {m['replay_round_ratio']:.2f}x as "
            "the median of the per-round ratios. Record's cost by CPU per request "
            f"against bare mitmdump: the addon loaded and forwarding "
            f"{bare_cpu / rec['passthrough']['cpu_us_per_request']:.2f}x, recording to tmpfs "
            f"{bare_cpu / rec['record_tmpfs']['cpu_us_per_request']:.2f}x, recording to disk "
            f"{m['record_cpu_ratio']:.2f}x. Per round (req/s), bare / record: "
            + "; ".join(f"{r['bare']['rps']:.0f} / {r['record']['rps']:.0f}"
                        for r in m["rounds"]["record"])
            + "; --server-replay / replay: "
            + "; ".join(f"{r['server_replay']['rps']:.0f} / {r['replay']['rps']:.0f}"
                        for r in m["rounds"]["replay"]) + ".",
            "",
        ]
    scale = d["scale"]
    out += [
        "CPU ratios are baseline CPU / ours (above 1 is cheaper), steadier than requests/s on a "
        "shared machine. `exportjobs proxy` runs the same addons as the script, in a mitmproxy "
        "whose addon manager looks each event's handlers up once (addons/hookplan.py) instead of "
        "walking every addon on every event as stock mitmdump does. The step from tmpfs to disk is the fsync before each response (and the "
        "hand-off to the thread that waits for it, which keeps the event loop serving meanwhile).",
        "",
        "Replay cost per request by cassette size (random distinct job GETs, reverse mode):",
        "",
        "| recorded interactions | requests/s (median) | proxy CPU per request "
        "| in-process (match + response) |",
        "|---:|---:|---:|---:|",
        *(f"| {int(size):,} | {s['rps']:.0f} | {s['cpu_us_per_request']:.0f} µs | "
          f"{d['in_process_us'][size]:.1f} µs |" for size, s in scale.items()),
        "",
        f"From {SIZES[0]:,} to {SIZES[-1]:,} interactions the CPU per request changes "
        f"{d['scale_growth']:.2f}x end to end and {d['in_process_growth']:.2f}x in-process "
        f"({ok(d['scale_growth'] <= d['flat_tolerance'])} flat, i.e. at most {d['flat_tolerance']}x).",
        "",
        f"Load: wrk, 1 thread, {opts.connections} connections, {opts.duration_s} s per "
        f"measurement, {opts.rounds} alternating rounds; list GETs of a one-job store for record "
        "and replay. Each proxy is a `mitmdump -q` or `exportjobs proxy` on a core of its own (wrk and the upstream "
        "emulator share the other); in reverse mode wrk sends origin-form requests to "
        "`--mode reverse:<emulator>`, in regular mode absolute-form requests "
        "(`GET http://<emulator>/… HTTP/1.1`, as a client with HTTP_PROXY set) to `--mode regular`. "
        "Proxy CPU is its user + system time over the requests wrk counted.",
    ]
    return "\n".join(out)
