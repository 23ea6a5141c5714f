"""Section ``gate``: how tightly the proxy's race gate lines up unsynchronised creates, and
what the proxy itself costs per request.

- Spreads: 20 creates of one pair from 20 independent connections started 10 ms apart (no
  synchronisation of their own), sent three ways in each of 10 alternating rounds: straight
  to the emulator, through the proxy with the gate off, and through the proxy with
  ``--gate 20``. The figure is the arrival spread at the emulator (its control API); medians.
- Proxy cost: 300 sequential creates straight to the emulator and 300 through the proxy
  (gate off): the median added latency, and the proxy process's CPU time per request, both
  directions (from /proc). The gate releases its requests in one pass of the proxy's single
  event loop, after which each still costs the proxy its forwarding work, one after
  another. That share is measured as the slope of the gated spread between a gate of 5 and
  a gate of 20: (20 - 1) x slope is the part of the spread the proxy's per-request work
  explains.

The proxy runs on one CPU; the emulator, the clients and wrk-free bookkeeping on the other
(the clients are idle while the gate releases), so the emulator's arrival stamps do not
wait for the proxy's CPU.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import tempfile
import uuid
from typing import Any

from bench.common import (
    CREATE_PATH,
    BenchError,
    Options,
    SectionResult,
    Server,
    free_port,
    load_cpu,
    median,
    python_server,
)
from exportjobs.simulator.emulator.client import SyncEmulatorClient

NAME = "gate"
TITLE = "Race gate: arrival spread of 20 unsynchronised creates, and the proxy's per-request cost"
CLIENTS, SMALL, SPACING_S, ROUNDS, SEQUENTIAL = 20, 5, 0.010, 10, 300
ORG = "9ab0fcab-c1d4-4b26-963b-a3c33155f853"
GRAPH = "http://graph.microsoft.com"
_RELEASE = re.compile(r"release spread ([\d.]+)ms")


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _gate_release_spreads(proxy: Server) -> list[float]:
    """Release spreads from the proxy's GATE lines (its stderr log, read in full)."""
    proxy._log.seek(0)  # Server.log() keeps only the tail; the GATE lines are spread through it
    text = proxy._log.read().decode(errors="replace")
    return [float(m) for m in _RELEASE.findall(text)]


async def _spaced_round(emulator: str, proxy: str | None, clients: int = CLIENTS) -> float:
    """``clients`` creates of a fresh pair, 10 ms apart, each on its own connection; the
    arrival spread at the emulator in ms. Checks the outcome: one 201, the rest 409."""
    import aiohttp

    from exportjobs.simulator.emulator.auth import fake_token

    pair = {"goalsOrganizationId": ORG, "explorerViewId": str(uuid.uuid4())}
    headers = {"Authorization": f"Bearer {fake_token()}"}
    base = GRAPH if proxy else emulator
    control = SyncEmulatorClient(emulator)
    control.clear_arrivals()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True)) as session:
        async def one(i: int) -> int:
            await asyncio.sleep(i * SPACING_S)
            async with session.post(base + CREATE_PATH, json=pair, headers=headers, proxy=proxy) as r:
                await r.read()
                return r.status

        statuses = sorted(await asyncio.gather(*(one(i) for i in range(clients))))
    if statuses.count(201) != 1 or statuses.count(409) != clients - 1:
        raise BenchError(f"expected one 201 and {clients - 1} 409s, got {statuses}")
    seen = control.arrivals()
    if len(seen.arrivals) != clients:
        raise BenchError(f"the emulator saw {len(seen.arrivals)} creates, not {clients}")
    return seen.spread_us / 1000


async def _sequential(emulator: str, proxy: str | None) -> list[float]:
    """Latencies (ms) of ``SEQUENTIAL`` creates of fresh pairs, one at a time, kept alive."""
    import time

    import aiohttp

    from exportjobs.simulator.emulator.auth import fake_token

    headers = {"Authorization": f"Bearer {fake_token()}"}
    base = GRAPH if proxy else emulator
    out = []
    async with aiohttp.ClientSession() as session:
        for _ in range(SEQUENTIAL):
            pair = {"goalsOrganizationId": ORG, "explorerViewId": str(uuid.uuid4())}
            started = time.perf_counter()
            async with session.post(base + CREATE_PATH, json=pair, headers=headers, proxy=proxy) as r:
                await r.read()
                if r.status != 201:
                    raise BenchError(f"a sequential create got {r.status}")
            out.append((time.perf_counter() - started) * 1000)
    return out


def run(wrk: str, opts: Options) -> SectionResult:
    port = free_port()
    emulator = Server("emulator", [sys.executable, "-m", "exportjobs", "serve", "--quiet",
                                   "--port", str(port), "--start-after", "3600", "--run-for", "3600"],
                      port, load_cpu(opts))
    lines: list[str] = []
    with tempfile.TemporaryDirectory() as confdir, emulator:
        def proxy(gate: int) -> Server:
            port = free_port()
            return python_server(f"proxy (gate {gate})", [
                "-m", "exportjobs", "proxy", "--mode", "passthrough", "--port", str(port),
                "--upstream", emulator.url, "--confdir", confdir, "--gate", str(gate),
                "--gate-timeout", "10"], port, opts)

        plain, gated, small = proxy(0), proxy(CLIENTS), proxy(SMALL)
        with plain, gated, small:
            asyncio.run(_sequential(emulator.url, plain.url))  # warm up every path
            asyncio.run(_spaced_round(emulator.url, gated.url))
            asyncio.run(_spaced_round(emulator.url, small.url, SMALL))
            spreads: dict[str, list[float]] = {"direct": [], "proxy": [], "gate": [], "gate_small": []}
            for n in range(1, ROUNDS + 1):
                spreads["direct"].append(asyncio.run(_spaced_round(emulator.url, None)))
                spreads["proxy"].append(asyncio.run(_spaced_round(emulator.url, plain.url)))
                spreads["gate"].append(asyncio.run(_spaced_round(emulator.url, gated.url)))
                spreads["gate_small"].append(asyncio.run(_spaced_round(emulator.url, small.url, SMALL)))
                print(f"  round {n}: direct {spreads['direct'][-1]:.3f} ms, proxy "
                      f"{spreads['proxy'][-1]:.3f} ms, gate {spreads['gate'][-1]:.3f} ms, "
                      f"gate of {SMALL} {spreads['gate_small'][-1]:.3f} ms", flush=True)
            release = _gate_release_spreads(gated)[1:]  # the first was the warm-up
            direct = asyncio.run(_sequential(emulator.url, None))
            assert plain.process is not None
            cpu_before = _cpu_s(plain.process.pid)
            through = asyncio.run(_sequential(emulator.url, plain.url))
            cpu_ms = (_cpu_s(plain.process.pid) - cpu_before) * 1000 / SEQUENTIAL
    m = {k: round(median(v), 3) for k, v in spreads.items()}
    added_ms = median(through) - median(direct)
    slope = (m["gate"] - m["gate_small"]) / (CLIENTS - SMALL)  # ms per extra held request
    explained = (CLIENTS - 1) * slope
    data = {
        "clients": CLIENTS, "spacing_ms": SPACING_S * 1000, "rounds": ROUNDS,
        "arrival_spread_ms": m, "arrival_spread_all_ms": {k: sorted(v) for k, v in spreads.items()},
        "gate_release_spread_ms": round(median(release), 3) if release else None,
        "tighter_than_no_gate": round(m["proxy"] / max(m["gate"], 1e-9), 1),
        "proxy_added_latency_ms": round(added_ms, 3),
        "proxy_cpu_ms_per_request": round(cpu_ms, 3),
        "gated_spread_ms_per_request": round(slope, 3),
        "spread_explained_by_proxy_cost_ms": round(explained, 3),
    }
    lines += [
        f"  arrival spread at the emulator, median of {ROUNDS}: direct {m['direct']:.3f} ms, "
        f"through the proxy {m['proxy']:.3f} ms, through the gate {m['gate']:.3f} ms "
        f"({data['tighter_than_no_gate']:.1f}x tighter)",
        f"  gate release spread in the proxy {data['gate_release_spread_ms']} ms",
        f"  proxy per request: +{added_ms:.3f} ms latency, {cpu_ms:.3f} ms CPU (both directions); "
        f"gated spread grows {slope:.3f} ms per held request (gate of {SMALL}: "
        f"{m['gate_small']:.3f} ms), so {CLIENTS - 1} x that = {explained:.2f} ms of the "
        f"{m['gate']:.3f} ms",
    ]
    return SectionResult(data, lines, _markdown(data))


def _markdown(d: dict[str, Any]) -> str:
    m = d["arrival_spread_ms"]
    share = d["spread_explained_by_proxy_cost_ms"] / max(m["gate"], 1e-9)
    return "\n".join([
        f"{d['clients']} creates of one pair from {d['clients']} independent connections started "
        f"{d['spacing_ms']:g} ms apart (no synchronisation of their own), {d['rounds']} alternating "
        "rounds; arrival spread at the emulator (its control API), median:",
        "",
        "| path | arrival spread (median) |",
        "|---|---:|",
        f"| straight to the emulator | {m['direct']:.3f} ms |",
        f"| through the proxy, gate off | {m['proxy']:.3f} ms |",
        f"| through the proxy, `--gate {d['clients']}` | **{m['gate']:.3f} ms** |",
        f"| ({SMALL} creates through `--gate {SMALL}`) | {m['gate_small']:.3f} ms |",
        "",
        f"The gate lines them up **{d['tighter_than_no_gate']:.1f}x** tighter than the same "
        f"creates through the proxy without it ({m['direct'] / max(m['gate'], 1e-9):.1f}x tighter "
        f"than straight to the emulator); every round gave one 201 and {d['clients'] - 1} 409s. Inside the "
        f"proxy the held requests resume within {d['gate_release_spread_ms']} ms (median release "
        "spread from its GATE lines; each resumed request runs its own forwarding work before "
        "the next one resumes, so this is already most of the spread at the emulator).",
        "",
        f"The proxy's own cost per request, measured over {SEQUENTIAL} sequential creates: "
        f"+{d['proxy_added_latency_ms']:.3f} ms latency against going straight to the emulator, "
        f"and {d['proxy_cpu_ms_per_request']:.3f} ms of the proxy process's CPU for the whole "
        "exchange, both directions. After a release the proxy forwards the held requests one "
        "after another on its one event loop (each opens its upstream connection and writes "
        f"its request), so the gated spread grows with the count: "
        f"{d['gated_spread_ms_per_request']:.3f} ms per held request between a gate of {SMALL} "
        f"and one of {d['clients']}. {d['clients'] - 1} x that = "
        f"{d['spread_explained_by_proxy_cost_ms']:.2f} ms, about {min(share, 1):.0%} of the "
        "gated spread, is the proxy's own per-request forwarding work; the gate itself adds "
        "none (it resumes them all in one loop pass).",
    ])
