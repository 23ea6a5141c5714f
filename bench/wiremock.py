"""Section ``wiremock``: the emulator against WireMock 3.13 on the 409 path, per core.

Both serve the same create: WireMock with a two-state scenario written by this module
(``Started`` -> 201 -> ``Pending`` -> 409 with a Graph-shaped body), the emulator with its
atomic duplicate check. Both run on the same server core, wrk (1 thread, ``connections``
connections, creates.lua posting one fixed pair) on the other. WireMock is loaded for
``jvm_warmup_s`` seconds first, so its figures are the JIT-compiled ones; then rounds
alternate emulator / WireMock, each store reset first. Goal: the emulator keeps a lower p99
and reaches at least 0.6x WireMock's requests/s.

The standalone jar comes from the npm package ``wiremock`` (it ships it under ``build/``):
``npm pack wiremock@3.13`` once, the jar kept in ``.bench-cache/wiremock/`` (git-ignored).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

from bench.common import (
    CREATE_PATH,
    HOST,
    ROOT,
    BenchError,
    Options,
    SectionResult,
    Server,
    WrkResult,
    fmt_ms,
    free_port,
    median,
    python_server,
    run_wrk_on,
    server_cpus,
)
from exportjobs.simulator.emulator.client import SyncEmulatorClient

NAME = "wiremock"
TITLE = "Emulator vs WireMock 3.13: the 409 path on one core"
GOAL_RATIO = 0.6
NPM_SPEC = "wiremock@3.13"
CACHE = ROOT / ".bench-cache" / "wiremock"
JAVA_HEAP = "256m"  # fixed, so memory stays bounded and GC behaves alike in every run
_PENDING_S = "3600"

_HEADERS_409 = {
    "Content-Type": "application/json",
    "Location": "http://{{request.host}}:{{request.port}}" + CREATE_PATH + "/"
                "eyJfdHlwZSI6IkV4cG9ydEpvYiIsImlkIjoiMSJ9",
    "request-id": "{{randomValue type='UUID'}}",
    "client-request-id": "{{randomValue type='UUID'}}",
}
_BODY_409 = (
    '{"error":{"code":"notAllowed","message":"Another export job is still active or waiting to'
    ' be executed","target":"eyJfdHlwZSI6IkV4cG9ydEpvYiIsImlkIjoiMSJ9","innerError":{"code":'
    '"exportJobAlreadyExists","date":"{{now format=\'yyyy-MM-dd\'}}T{{now format=\'HH:mm:ss\'}}",'
    '"request-id":"{{randomValue type=\'UUID\'}}","client-request-id":'
    '"{{randomValue type=\'UUID\'}}"}}}'
)
_BODY_201 = (
    '{"@odata.context":"http://{{request.host}}:{{request.port}}/beta/$metadata#employeeExperience'
    '/goals/exportJobs/$entity","@odata.type":"#microsoft.graph.goalsExportJob","id":'
    '"eyJfdHlwZSI6IkV4cG9ydEpvYiIsImlkIjoiMSJ9","status":"notStarted","createdDateTime":'
    '"{{now format=\'yyyy-MM-dd\'}}T{{now format=\'HH:mm:ss.SSSS\'}}Z","lastActionDateTime":null,'
    '"statusDetail":null,"expirationDateTime":null,"goalsOrganizationId":'
    '"{{jsonPath request.body \'$.goalsOrganizationId\'}}","explorerViewId":'
    '"{{jsonPath request.body \'$.explorerViewId\'}}","resourceLocation":null}'
)


def mappings() -> dict[str, Any]:
    """The two-state scenario: the first matching create gets 201, every later one 409.

    The request matcher asks what the emulator checks: POST to the collection, a bearer
    token, a JSON content type, both ids present in the body.
    """
    request = {
        "method": "POST",
        "urlPath": CREATE_PATH,
        "headers": {"Authorization": {"matches": "Bearer .+"},
                    "Content-Type": {"contains": "application/json"}},
        "bodyPatterns": [{"matchesJsonPath": "$.goalsOrganizationId"},
                         {"matchesJsonPath": "$.explorerViewId"}],
    }
    created_headers = {**_HEADERS_409,
                       "Content-Type": "application/json;odata.metadata=minimal;"
                                       "odata.streaming=true;IEEE754Compatible=false;charset=utf-8"}
    return {"mappings": [
        {"scenarioName": "create", "requiredScenarioState": "Started",
         "newScenarioState": "Pending", "request": request,
         "response": {"status": 201, "headers": created_headers, "body": _BODY_201,
                      "transformers": ["response-template"]}},
        {"scenarioName": "create", "requiredScenarioState": "Pending", "request": request,
         "response": {"status": 409, "headers": _HEADERS_409, "body": _BODY_409,
                      "transformers": ["response-template"]}},
    ]}


def wiremock_jar() -> Path:
    """The cached standalone jar, fetched once with ``npm pack`` when it is missing."""
    found = sorted(CACHE.glob("wiremock-standalone-3.13.*.jar"))
    if found:
        return found[-1]
    npm = shutil.which("npm")
    if npm is None:
        raise BenchError(f"no WireMock jar in {CACHE} and no npm to fetch it: install npm, or "
                         f"put wiremock-standalone-3.13.x.jar (from the npm package {NPM_SPEC}) "
                         "there")
    CACHE.mkdir(parents=True, exist_ok=True)
    print(f"  fetching {NPM_SPEC} with npm pack (once; cached in {CACHE.relative_to(ROOT)})",
          flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run([npm, "pack", NPM_SPEC, "--pack-destination", tmp],
                              capture_output=True, text=True, timeout=600, cwd=tmp)
        tarballs = list(Path(tmp).glob("wiremock-*.tgz"))
        if done.returncode != 0 or not tarballs:
            raise BenchError(f"npm pack {NPM_SPEC} failed ({done.returncode}): "
                             f"{done.stderr.strip()[-1000:]}")
        with tarfile.open(tarballs[0]) as tar:
            members = [m for m in tar.getmembers()
                       if m.isfile() and Path(m.name).name.startswith("wiremock-standalone-3.13.")
                       and m.name.endswith(".jar")]
            if not members:
                raise BenchError(f"{tarballs[0].name} holds no wiremock-standalone-3.13.*.jar")
            source = tar.extractfile(members[0])
            assert source is not None
            target = CACHE / Path(members[0].name).name
            partial = target.with_suffix(".part")
            with partial.open("wb") as out:
                shutil.copyfileobj(source, out)
            partial.replace(target)
    return target


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise BenchError("java is not installed (WireMock 3.13 needs Java 11 or later; "
                         "Debian: apt-get install -y openjdk-17-jre-headless)")
    return java


def _admin(url: str, method: str, path: str) -> Any:
    req = urllib.request.Request(url + "/__admin" + path, method=method,
                                 data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=10) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def _check(who: str, result: WrkResult, max_odd: int) -> int:
    """Only 409s after the first 201: anything else means the run measured something else.

    ``max_odd`` allows that many extra answers while the first create is in flight (201s or
    404s: a WireMock scenario's state change is not atomic, so creates arriving with the
    first can also match Started, or match neither state mid-change). Returns their count.
    """
    wins = result.statuses.get(201, 0)
    conflicts = result.statuses.get(409, 0)
    odd = result.requests - conflicts - 1
    allowed = set(result.statuses) <= {201, 409, 404}
    if wins < 1 or not 0 <= odd <= max_odd or not allowed or result.socket_errors:
        raise BenchError(f"{who}: expected one 201 then only 409s, got {result.statuses} for "
                         f"{result.requests} requests, socket errors {result.socket_errors}")
    return odd


def _summary(runs: list[WrkResult]) -> dict[str, float]:
    return {
        "rps": round(median([r.rps for r in runs]), 1),
        "cpu_us": round(median([r.cpu_us_per_request for r in runs]), 1),
        "p50_us": median([r.p50_us for r in runs]),
        "p99_us": median([r.p99_us for r in runs]),
        "max_us": median([r.max_us for r in runs]),
        "core_share": round(median([_cores(r) for r in runs]), 2),
        "per_core": round(1e6 / median([r.cpu_us_per_request for r in runs]), 1),
    }


def _wiremock_server(java: str, jar: Path, root: str, templated: bool, opts: Options) -> Server:
    """WireMock on the server core, its mappings in ``root`` (static bodies unless templated)."""
    doc = mappings()
    if not templated:
        for mapping in doc["mappings"]:
            mapping["response"].pop("transformers")
    (Path(root) / "mappings").mkdir()
    (Path(root) / "mappings" / "create.json").write_text(json.dumps(doc, indent=1))
    port = free_port()
    return Server(f"WireMock ({'templated' if templated else 'static'})", [
        java, f"-Xms{JAVA_HEAP}", f"-Xmx{JAVA_HEAP}", "-jar", str(jar),
        "--port", str(port), "--bind-address", HOST, "--root-dir", root,
        "--no-request-journal", "--disable-request-logging", "--disable-banner",
        "--local-response-templating",
    ], port, server_cpus(opts), start_timeout_s=90)


# Sides of each round: the emulator; WireMock templating a request id and date into every
# answer, as the emulator makes them (the goal's comparison); WireMock with fixed bodies.
SIDES = (("emulator", "emulator (`exportjobs serve`), 409"),
         ("wiremock", "WireMock {v}, request ids and dates templated, 409"),
         ("wiremock_static", "WireMock {v}, fixed bodies (no templating), 409"))


def run(wrk: str, opts: Options) -> SectionResult:
    jar, java = wiremock_jar(), _java()
    version = jar.stem.removeprefix("wiremock-standalone-")
    port = free_port()
    emulator = python_server(
        "emulator", ["-m", "exportjobs", "serve", "--quiet", "--port", str(port),
                     "--start-after", _PENDING_S, "--run-for", _PENDING_S], port, opts)
    lines: list[str] = []
    rounds: list[dict[str, WrkResult]] = []
    odd_answers: list[int] = []
    warm_ups: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-wiremock-") as tmp:
        (Path(tmp) / "t").mkdir()
        (Path(tmp) / "s").mkdir()
        mocks = {"wiremock": _wiremock_server(java, jar, str(Path(tmp) / "t"), True, opts),
                 "wiremock_static": _wiremock_server(java, jar, str(Path(tmp) / "s"), False, opts)}
        with emulator, mocks["wiremock"], mocks["wiremock_static"]:
            control = SyncEmulatorClient(emulator.url)
            if control.info().unsafe_race_window_ms:
                raise BenchError("the emulator under test must keep its atomic check")
            for mock in mocks.values():
                loaded = _admin(mock.url, "GET", "/mappings")
                if loaded.get("meta", {}).get("total") != 2:
                    raise BenchError(f"{mock.name} loaded {loaded.get('meta')} mappings, "
                                     "expected 2")
                # WireMock's figures are its warm ones: JIT-compile it under the same load.
                print(f"  warming {mock.name} {version} up: at least {opts.jvm_warmup_s} s of "
                      "load, until it stops getting cheaper", flush=True)
                warm_ups.append(f"{mock.name}: {_warm_up(wrk, mock, opts)}")
                lines.append(f"  warm-up: {warm_ups[-1]}")
                print(lines[-1], flush=True)
            run_wrk_on(emulator, wrk, "same", opts, opts.warmup_s)
            for n in range(1, opts.rounds + 1):
                control.reset()
                got = {"emulator": run_wrk_on(emulator, wrk, "same", opts)}
                _check("emulator", got["emulator"], 0)
                if control.info().jobs != 1:
                    raise BenchError("emulator: more than one job for one pair")
                for key, mock in mocks.items():
                    _admin(mock.url, "POST", "/scenarios/reset")
                    got[key] = run_wrk_on(mock, wrk, "same", opts)
                    odd = _check(mock.name, got[key], opts.connections)
                    if key == "wiremock":
                        odd_answers.append(odd)
                rounds.append(got)
                lines.append(f"  round {n}: " + " | ".join(
                    f"{key} {r.rps:6.0f} req/s p99 {fmt_ms(r.p99_us)} "
                    f"{r.cpu_us_per_request:4.0f} us CPU on {_cores(r):.2f} of the core"
                    for key, r in got.items()))
                print(lines[-1], flush=True)
    s = {key: _summary([r[key] for r in rounds]) for key, _ in SIDES}
    ours = s["emulator"]
    versus = {key: _versus(ours, s[key], [r["emulator"].rps / r[key].rps for r in rounds])
              for key in ("wiremock", "wiremock_static")}
    lines += [
        *(f"  median {key}: {v['rps']:8.0f} req/s  p50 {fmt_ms(v['p50_us'])}  p99 "
          f"{fmt_ms(v['p99_us'])}  {v['cpu_us']:.0f} us CPU per request "
          f"({v['per_core']:.0f} per core), {v['core_share']:.2f} of the core"
          for key, v in s.items()),
        *(f"  emulator/{key}: {v['ratio']:.2f}x req/s, {v['core_ratio']:.2f}x per core (by CPU), "
          f"p99 {'lower' if v['lower_p99'] else 'NOT lower'}: {v['verdict']} the goal "
          f"(>= {GOAL_RATIO}x per core and a lower p99)" for key, v in versus.items()),
    ]
    data = {"wiremock_version": version, "java": _java_version(java), **s, "versus": versus,
            "goal_ratio": GOAL_RATIO, "wiremock_odd_answers": odd_answers,
            "jvm_warmup_s": opts.jvm_warmup_s, "warm_ups": warm_ups,
            "rounds": [{k: v.as_dict() for k, v in r.items()} for r in rounds]}
    return SectionResult(data, lines, _markdown(data, rounds, opts), summary=5)


def _versus(ours: dict[str, float], theirs: dict[str, float],
            round_ratios: list[float]) -> dict[str, Any]:
    """The goal's figures against one WireMock: rate per core by CPU, as well as req/s."""
    core_ratio = ours["per_core"] / theirs["per_core"]
    lower_p99 = ours["p99_us"] < theirs["p99_us"]
    return {"ratio": round(ours["rps"] / theirs["rps"], 3), "core_ratio": round(core_ratio, 3),
            "round_ratios": [round(r, 3) for r in round_ratios], "lower_p99": lower_p99,
            "verdict": "meets" if core_ratio >= GOAL_RATIO and lower_p99 else "misses"}


WARM_STEP_S = 5
WARM_MAX_S = 150
WARM_SETTLED = 0.9  # a step at no less than this fraction of the previous step's CPU per request
WARM_MIN_REQUESTS = 100_000  # the JIT's later stages wait for enough calls, not for time


def _warm_up(wrk: str, mock: Server, opts: Options) -> str:
    """Load ``mock`` in steps until it is warm; what the steps measured, for the record.

    A JVM keeps compiling for as long as it sees new hot code, and how many requests that
    takes depends on how fast it is served: a fixed time is too short on a busy machine.
    It also compiles in stages, with plateaus between them. So at least ``jvm_warmup_s``
    seconds and WARM_MIN_REQUESTS requests, each step from the scenario's start, then on until two steps in a row have a CPU per
    request no more than 10% below the step before (bounded by WARM_MAX_S).
    """
    if opts.jvm_warmup_s == 0:
        return "none (--jvm-warmup 0)"
    steps: list[WrkResult] = []
    elapsed = 0
    while elapsed < WARM_MAX_S:
        # Each step starts from Started, as each round does: a JIT that only ever saw the
        # 409 branch compiles it alone and falls back (deoptimises) at a round's first 201.
        _admin(mock.url, "POST", "/scenarios/reset")
        steps.append(run_wrk_on(mock, wrk, "same", opts, WARM_STEP_S))
        elapsed += WARM_STEP_S
        settled = len(steps) >= 3 and all(
            later.cpu_us_per_request >= WARM_SETTLED * earlier.cpu_us_per_request
            for earlier, later in zip(steps[-3:-1], steps[-2:], strict=True))
        enough = sum(r.requests for r in steps) >= WARM_MIN_REQUESTS
        if elapsed >= opts.jvm_warmup_s and enough and settled:
            break
    return (f"{elapsed} s, CPU per request by {WARM_STEP_S} s step: "
            + ", ".join(f"{r.cpu_us_per_request:.0f}" for r in steps) + " us; last step "
            f"{steps[-1].rps:.0f} req/s")


def _cores(result: WrkResult) -> float:
    """Share of its core the server used: under 1 when other work on the core took the rest."""
    return result.server_cpu_s / (result.duration_us / 1e6) if result.duration_us else 0.0


def _java_version(java: str) -> str:
    done = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    first = (done.stderr or done.stdout).splitlines()
    return first[0].strip() if first else "?"


def _markdown(d: dict[str, Any], rounds: list[dict[str, WrkResult]], opts: Options) -> str:
    rows = ["| server (same core) | requests/s | p50 latency | p99 latency | max latency | "
            "server CPU per request | requests/s per core (by CPU) | share of the core it got |",
            "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for key, label in SIDES:
        v = d[key]
        rows.append(f"| {label.format(v=d['wiremock_version'])} | {v['rps']:.0f} | "
                    f"{fmt_ms(v['p50_us'])} | {fmt_ms(v['p99_us'])} | {fmt_ms(v['max_us'])} | "
                    f"{v['cpu_us']:.0f} µs | {v['per_core']:.0f} | {v['core_share']:.2f} |")
    verdicts = []
    for key, label in (("wiremock", "templating ids and dates, as the emulator makes them"),
                       ("wiremock_static", "with fixed bodies")):
        v = d["versus"][key]
        verdicts.append(
            f"- **Emulator / WireMock {label}: {v['core_ratio']:.2f}x per core** (by CPU per "
            f"request), {v['ratio']:.2f}x in requests/s (per round "
            f"{', '.join(f'{r:.2f}' for r in v['round_ratios'])}); p99 "
            f"{'lower' if v['lower_p99'] else 'not lower'}: **{v['verdict']}** the goal (at "
            f"least {d['goal_ratio']}x per core and a lower p99).")
    per_round = "; ".join(" / ".join(f"{r[k].rps:.0f}" for k, _ in SIDES) for r in rounds)
    return "\n".join([
        *rows,
        "",
        *verdicts,
        "",
        "Requests/s follows the share of the core each server got as much as its own cost: "
        "on a core other work also wants, the kernel shares time per thread, and WireMock's "
        "many threads get more of it than the emulator's one. So the goal's rate per core is "
        "read from CPU per request (requests per CPU second), the figure other load moves "
        "least; on a quiet machine, where each gets the whole core, the two agree.",
        "",
        f"Per round (emulator / WireMock templated / WireMock fixed, req/s): {per_round}.",
        f"Load: wrk, 1 thread, {opts.connections} connections, one fixed pair (`creates.lua "
        f"same`), {opts.duration_s} s per measurement, {opts.rounds} alternating rounds "
        f"(medians), each WireMock warmed up first with the same load: at least "
        f"{d['jvm_warmup_s']} s and {WARM_MIN_REQUESTS:,} requests, then on in {WARM_STEP_S} s steps until two steps in a row are "
        f"no more than 10% cheaper per request than the step before (at most {WARM_MAX_S} s; "
        f"{'; '.join(d['warm_ups'])}). All servers on one core, wrk on the other. WireMock: "
        f"{d['java']}, `-Xmx{JAVA_HEAP}`, `--no-request-journal --disable-request-logging "
        "--local-response-templating`, a two-state scenario (Started -> 201 -> Pending -> 409 "
        "with a Graph-shaped body) matching what the emulator checks (bearer token, JSON "
        "content type, both ids). WireMock's scenario is not an atomic check: creates that "
        "arrive with the first may also get 201 or, mid-change, 404 (answers other than 409 "
        f"after the first 201, per round: {', '.join(str(n) for n in d['wiremock_odd_answers'])}"
        "); the emulator gave exactly one 201 per round.",
        "",
        "Command: `make bench BENCH_ARGS=\"--only wiremock\"`.",
    ])
