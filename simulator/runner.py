"""Running a scenario: each step sends its traffic, checks its expectations, saves values.

A step whose inputs an earlier step failed to save is skipped (and says which value it
lacked) rather than sent with a hole in it. Whatever happens inside a step ends as that
step's result, so the run always reaches its summary and its reports: a value that cannot
go where it is put is a broken check naming the step's line, and so is an internal error.
Everything that is known before sending (the target, requests built only from variables)
is checked before anything is sent. A step in which no request got any answer stops the
run: the target is not answering, and every later step would only wait out its timeouts;
so does a server certificate that is not trusted, which every later request would meet too.
When ``stop`` is set (Ctrl-C), the running step is cancelled, keeps what it measured so far
and is marked interrupted, and the steps after it are not run: the run still ends with its
result, so the summary and every report are written.

Every request and its outcome is recorded as an ``Exchange`` (secrets removed): each step
keeps those its checks judged, and ``on_exchange`` sees every one as it happens (``-v``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

from exportjobs.simulator.emulator.app import EmulatorConfig
from exportjobs.simulator.emulator.auth import fake_token
from exportjobs.simulator.emulator.client import EmulatorClient, EmulatorError, find_emulator
from exportjobs.simulator.emulator.embedded import EmbeddedEmulator
from exportjobs.simulator.exchange import Exchange
from exportjobs.simulator.expectations import (
    Check,
    check_burst,
    check_response,
    check_retry_after,
    holds,
    winner,
)
from exportjobs.simulator.load import run_load
from exportjobs.simulator.progress import Progress
from exportjobs.simulator.scenario import Problem, Scenario, ScenarioError
from exportjobs.simulator.stats import TrafficStats
from exportjobs.simulator.steps import Burst, Load, Pause, Poll, RequestSpec, Retry, Step
from exportjobs.simulator.transport import (
    CONNECT_TIMEOUT_S,
    RESPONSE_TIMEOUT_S,
    BurstResult,
    Client,
    Outcome,
    PreparedRequest,
    RequestError,
    RequestTiming,
    check_base_url,
    is_loopback_host,
    prepare_request,
    proxy_authorization,
    reachable,
    send_burst,
    untrusted,
)
from exportjobs.simulator.values import (
    MISSING,
    draw,
    get_path,
    interpolate,
    per_request,
    references,
    retry_after_seconds,
    sample,
    shown_url,
)

T = TypeVar("T")

# A burst keeps the exchanges of this many of its responses: the first of each status.
MAX_BURST_EXCHANGES = 5
INTERRUPTED = "not run: the run was interrupted (Ctrl-C)"

# A request step without ``retry`` sends once.
NO_RETRY = Retry(max_retries=0)
# A burst's timeline in its details keeps at most this many requests (and arrivals).
TIMELINE_ROWS = 1000


class RunAborted(Exception):
    """The run cannot start (e.g. the target does not answer); ``exit_code`` says why."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class StepResult:
    step: Step
    checks: list[Check] = field(default_factory=list)
    stats: TrafficStats = field(default_factory=TrafficStats)
    details: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0
    skipped: str | None = None
    interrupted: bool = False  # stopped part way by Ctrl-C: its figures are what ran
    exchanges: list[Exchange] = field(default_factory=list)  # the ones its checks judged

    @property
    def ok(self) -> bool:
        return self.skipped is None and not self.interrupted and all(c.ok for c in self.checks)


@dataclass
class RunResult:
    scenario: Scenario
    target: str
    proxy: str | None
    variables: dict[str, Any]
    steps: list[StepResult]
    duration_s: float
    emulator: bool
    stopped: str | None = None  # why the run stopped early: the target did not answer
    untrusted: bool = False  # it stopped because the server's certificate is not trusted
    interrupted: bool = False  # Ctrl-C stopped it

    @property
    def ok(self) -> bool:
        return self.stopped is None and not self.interrupted and all(s.ok for s in self.steps)


def preflight(scenario: Scenario, variables: dict[str, Any], *, target: Any, proxy: Any) -> None:
    """Raise ScenarioError for whatever cannot be sent and is known before sending: the
    target and proxy, and every request built only from variables (not from values a
    step saves, which are checked when their step runs)."""
    problems = []
    variables = sample(variables)  # per-request values: a sample of each, none drawn
    for what, url in (("target", target), ("proxy", proxy)):
        if url is not None:
            try:
                check_base_url(url, what)
            except RequestError as exc:
                problems.append(Problem(scenario.source, scenario.lines.get(what, 0), str(exc)))
    base = target if not problems and isinstance(target, str) else "http://127.0.0.1"
    saved: set[str] = set()
    for step in scenario.steps:
        for where, spec in step.action.requests():
            if references(spec) & saved:
                continue
            try:
                prepare_request(spec, variables, target=base, token=None)
            except RequestError as exc:
                problems.append(Problem(scenario.source, step.line, f"steps[{step.index}].{where}: {exc}"))
        saved |= set(step.save)
    if problems:
        raise ScenarioError(problems)



def resolve_token(scenario: Scenario) -> str:
    """The bearer token: from the environment when the scenario names a variable, else fake."""
    name = scenario.auth.token_env
    if name:
        token = os.environ.get(name)
        if not token:
            raise RunAborted(f"{scenario.source}: auth.token_env names {name}, which is not set; "
                             f"export {name}=<token> first", 2)
        return token
    return fake_token(scenario.auth.scopes)



class Runner:
    def __init__(
        self,
        scenario: Scenario,
        *,
        target: str,
        proxy: str | None = None,
        variables: dict[str, Any],
        ssl_context: ssl.SSLContext | None = None,
        progress: Progress | None = None,
        connect_timeout: float = CONNECT_TIMEOUT_S,
        response_timeout: float = RESPONSE_TIMEOUT_S,
        on_exchange: Callable[[Exchange], None] | None = None,
        stop: asyncio.Event | None = None,
        load_engine: Any = None,
    ) -> None:
        self.scenario = scenario
        self.load_engine = load_engine  # None: load phases on the built-in engine
        self.on_exchange = on_exchange
        self.stop = stop or asyncio.Event()
        self._untrusted: str | None = None  # the first certificate error met
        self.connect_timeout, self.response_timeout = connect_timeout, response_timeout
        self.target = target.rstrip("/")
        self.proxy = proxy
        self.variables = dict(variables)
        self.ssl_context = ssl_context
        self.progress = progress or Progress(enabled=False)
        self.token = resolve_token(scenario)
        self._control: EmulatorClient | None = None
        self._last_error = "no response"

    async def run(self) -> RunResult:
        if self.proxy:
            try:
                proxy_authorization(self.proxy)
            except ValueError as exc:
                raise RunAborted(f"proxy {shown_url(self.proxy)}: its credentials cannot be "
                                 f"sent ({exc}); check the user name and password", 2) from None
        for url in filter(None, (self.proxy, None if self.proxy else self.target)):
            reason = await reachable(url, self.connect_timeout)
            if reason is not None:
                what = "proxy" if url == self.proxy else "target"
                raise RunAborted(f"cannot reach the {what} {shown_url(url)} ({reason}); is it running?", 3)
        self._control = await self._find_control_api()
        started = time.perf_counter()
        client = Client(proxy=self.proxy, ssl_context=self.ssl_context, limit=1000,
                        connect_timeout=self.connect_timeout, observer=self._observe)
        results: list[StepResult] = []
        stopped, skip = None, ""
        try:
            for step in self.scenario.steps:
                if self.stop.is_set():
                    results.append(StepResult(step, skipped=INTERRUPTED))
                    continue
                if stopped is not None:
                    results.append(StepResult(step, skipped=skip))
                    continue
                result = await self._run_until_stopped(client, step)
                results.append(result)
                if self._untrusted is not None:
                    stopped = self._trust_message(step)
                    skip = "not run: the server's certificate is not trusted"
                elif result.stats.total and not result.stats.statuses and not result.interrupted:
                    stopped = (f"the target {shown_url(self.target)} did not answer step {step.index + 1} "
                               f"({step.name}, {self.scenario.source}:{step.line}): "
                               f"{result.details.get('no_answer', 'no response')}")
                    skip = "not run: the target stopped answering"
        finally:
            await client.close()
            if self._control is not None:
                await self._control.close()
        return RunResult(self.scenario, self.target, self.proxy, self.variables, results,
                         time.perf_counter() - started, self._control is not None, stopped,
                         untrusted=self._untrusted is not None, interrupted=self.stop.is_set())

    def _trust_message(self, step: Step) -> str:
        via = (f" (through the proxy {shown_url(self.proxy)}, which presents its own certificate)"
               if self.proxy else "")
        return (f"step {step.index + 1} ({step.name}, {self.scenario.source}:{step.line}): "
                f"{self._untrusted}{via}. Pass the CA that signed it with --cacert FILE: for "
                "mitmproxy that is ~/.mitmproxy/mitmproxy-ca-cert.pem, for exportjobs proxy the "
                "mitmproxy-ca-cert.pem in its --confdir (default ~/.mitmproxy; it prints the path "
                "when it starts)")

    def _observe(self, request: PreparedRequest, outcome: Outcome, copy: int | None = None) -> None:
        """Every outcome passes here: a certificate error is noted (it stops the run), and
        ``on_exchange`` sees the exchange."""
        if self._untrusted is None and untrusted(outcome.error):
            self._untrusted = outcome.error
        if self.on_exchange is not None:
            self.on_exchange(Exchange.of(request, outcome, copy=copy))

    async def _run_until_stopped(self, client: Client, step: Step) -> StepResult:
        """The step's result; when ``stop`` is set first, what it did until then, marked."""
        result = StepResult(step)
        started = time.perf_counter()
        task = asyncio.ensure_future(self._run_step(client, step, result))
        stopping = asyncio.ensure_future(self.stop.wait())
        try:
            await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not task.done():
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
                result.interrupted = True
                result.duration_s = time.perf_counter() - started
        if not result.interrupted:
            task.result()
        return result

    def _timeout(self, spec: RequestSpec) -> float:
        return float(spec.timeout if spec.timeout is not None else self.response_timeout)

    async def _find_control_api(self) -> EmulatorClient | None:
        """The emulator's control API at the target: asked (its info call), and only of a
        target on this machine."""
        return await find_emulator(self.target) if is_loopback_host(urlsplit(self.target).hostname or "") else None

    async def _run_step(self, client: Client, step: Step, result: StepResult) -> None:
        missing = sorted(n for n in references(step.action) | references(step.expect) if n not in self.variables)
        if missing:
            names = " and ".join(f"${{{n}}}" for n in missing)
            result.skipped = f"needs {names}, which an earlier step did not save"
            return
        started = time.perf_counter()
        run = {"request": self._request, "burst": self._burst, "poll": self._poll,
               "pause": self._pause, "load": self._load}[step.kind]
        try:
            await run(client, step, result)
        except RequestError as exc:  # a saved value that cannot go where the step puts it
            result.checks.append(Check("request", False, "a request that can be sent",
                                       f"{exc} ({self.scenario.source}:{step.line})"))
        except Exception as exc:  # noqa: BLE001 - a step's own failure, never the run's traceback
            result.checks.append(Check("step", False, "the step to run",
                                       f"an internal error ({type(exc).__name__}: {exc}) at "
                                       f"{self.scenario.source}:{step.line}; please report it"))
        if result.stats.total and not result.stats.statuses:
            result.details["no_answer"] = self._last_error
        result.duration_s = time.perf_counter() - started

    def _prepare(self, spec: RequestSpec, values: dict[str, Any] | None = None) -> PreparedRequest:
        """``spec`` built with ``values`` (one draw of the per-request variables), by default
        a fresh draw."""
        return prepare_request(spec, draw(self.variables) if values is None else values,
                               target=self.target, token=self.token)

    def _save(self, step: Step, result: StepResult, pick: Any) -> None:
        for name, rule in step.save.items():
            outcome = pick(rule.source)
            value: Any = MISSING
            if outcome is not None and outcome.status is not None:
                if rule.json is not None:
                    document = outcome.json()
                    value = get_path(document, rule.json) if document is not MISSING else MISSING
                elif rule.header is not None:
                    value = outcome.header(rule.header) or MISSING
                else:
                    value = outcome.status
            if value is MISSING or value is None:  # null is no value: later steps are skipped
                result.checks.append(Check(f"save {name}", False, f"a value at {rule.where}",
                                           "null" if value is None else "nothing"))
            else:
                self.variables[name] = value

    # --- step kinds ------------------------------------------------------------------------

    async def _request(self, client: Client, step: Step, result: StepResult) -> None:
        spec = step.action
        assert isinstance(spec, RequestSpec)
        values = draw(self.variables)
        request = self._prepare(spec, values)
        retry = step.retry if step.retry is not None else NO_RETRY
        statuses, retries = set(retry.statuses), retry.max_retries
        cap, interval = retry.max_retry_after, retry.interval
        started = time.monotonic()
        sends: list[dict[str, Any]] = []
        waited = 0.0
        while True:
            outcome = await self._send_noted(client, request, self._timeout(spec), started, sends)
            result.stats.add(outcome.status, outcome.latency_s)
            if outcome.status not in statuses or len(sends) > retries:
                break
            retry_after = sends[-1]["retry_after"]
            wait = min(retry_after, cap) if retry_after is not None else interval
            await asyncio.sleep(wait)
            waited += wait
        result.details["request"] = request.description
        result.exchanges.append(Exchange.of(request, outcome))
        if step.retry is not None:
            result.details.update(tries=len(sends), waited_s=round(waited, 2), sends=sends)
        result.checks += check_response(step.expect, outcome, values)
        if step.expect.honours_retry_after:
            result.checks.append(check_retry_after(sends))
        self._save(step, result, lambda _: outcome)

    async def _send_noted(self, client: Client, request: PreparedRequest, timeout: float, started: float,
                          sends: list[dict[str, Any]]) -> Outcome:
        """Send once and note when (from ``started``), what came back, and any Retry-After."""
        sent = time.monotonic()
        outcome = await client.send(request, timeout=timeout)
        if outcome.status is None:
            self._last_error = f"{request.description}: {outcome.error}"
        answered = time.monotonic()
        sends.append({"sent_s": round(sent - started, 6),
                      "answered_s": round(answered - started, 6) if outcome.status is not None else None,
                      "status": outcome.status, "retry_after": _retry_after(outcome)})
        return outcome

    async def _burst(self, client: Client, step: Step, result: StepResult) -> None:
        spec = step.action
        assert isinstance(spec, Burst)
        values = draw(self.variables)
        request = self._prepare(spec.request, values)
        requests: PreparedRequest | list[PreparedRequest] = request
        if per_request(spec.request, self.variables):  # each copy with its own draw
            requests = [request, *(self._prepare(spec.request) for _ in range(spec.count - 1))]
        release: str = spec.release
        if self._control:
            await self._control_call(self._control.clear_arrivals())
            requests = _tagged(requests, spec.count)
        timeout = self._timeout(spec.request)
        if spec.spacing is not None:
            burst = await _spaced(client, requests, spec.count, float(spec.spacing), timeout)
            release = f"none, {float(spec.spacing) * 1000:g} ms apart"
        else:
            burst = await send_burst(requests, spec.count, spec.release, proxy=self.proxy,
                                     ssl_context=self.ssl_context, timeout=timeout,
                                     connect_timeout=self.connect_timeout)
        sent = requests if isinstance(requests, list) else [request] * spec.count
        seen: set[int | None] = set()
        for i, (copy, outcome) in enumerate(zip(sent, burst.outcomes)):
            result.stats.add(outcome.status, outcome.latency_s)
            if spec.spacing is None:  # spaced copies went through the client, already seen
                self._observe(copy, outcome, i + 1)
            if outcome.status not in seen and len(seen) < MAX_BURST_EXCHANGES:
                seen.add(outcome.status)
                result.exchanges.append(Exchange.of(copy, outcome, copy=i + 1))
        result.details.update(request=request.description, release=release, count=spec.count,
                              send_spread_ms=round(burst.send_spread_us / 1000, 3))
        timeline = burst.timeline(TIMELINE_ROWS)
        origin = timeline.pop("origin_ns")
        won = winner(burst.outcomes)
        timeline["winner"] = next((i for i, o in enumerate(burst.outcomes) if o is won), None)
        result.details["timeline"] = timeline
        if self._control:
            arrivals = await self._control_call(self._control.arrivals())
            if arrivals is not None:
                result.details["arrival_spread_ms"] = round(arrivals.spread_us / 1000, 3)
                # The emulator runs on this machine (its control API is only asked there),
                # so its monotonic clock is ours: arrivals go on the same time axis.
                timeline["arrivals"] = [{"ms": round((a.monotonic_us * 1000 - origin) / 1e6, 4), "status": a.status}
                                        for a in arrivals.arrivals[:TIMELINE_ROWS]] if origin else []
                _arrivals_on_rows(timeline, arrivals.arrivals, requests, origin)
        failures = [o.error for o in burst.outcomes if o.status is None]
        if failures:
            result.details["no_response"] = f"{len(failures)} (first: {failures[0]})"
            self._last_error = f"{request.description}: {failures[0]}"
        result.checks += check_burst(step.expect, burst.outcomes, values)
        picks = {"winner": winner(burst.outcomes), "first": burst.outcomes[0], "last": burst.outcomes[-1]}
        self._save(step, result, picks.get)

    async def _poll(self, client: Client, step: Step, result: StepResult) -> None:
        spec = step.action
        assert isinstance(spec, Poll)
        values = draw(self.variables)
        request = self._prepare(spec.request, values)
        interval, cap = spec.interval, spec.max_retry_after
        deadline = time.monotonic() + spec.timeout
        tries, waited, honoured = 0, 0.0, True
        outcome: Outcome | None = None
        started = time.monotonic()
        sends: list[dict[str, Any]] = []
        with self.progress.task(f"poll {step.name}") as bar:
            while True:
                # No try outlasts the poll's own deadline by more than a moment.
                left = max(0.1, deadline - time.monotonic())
                outcome = await self._send_noted(client, request, min(self._timeout(spec.request), left),
                                                 started, sends)
                tries += 1
                result.stats.add(outcome.status, outcome.latency_s)
                state = _job_status(outcome)
                bar.update(f"try {tries}, {outcome.status}" + (f" {state}" if state is not MISSING else ""))
                if holds(spec.until, outcome, values):
                    break
                retry_after = _retry_after(outcome)
                wait = min(retry_after, cap) if retry_after is not None else interval
                if time.monotonic() + wait > deadline:
                    result.checks.append(Check(
                        "poll until", False, json.dumps(spec.until.as_data()),
                        f"not within {spec.timeout:g} s ({tries} tries; last: "
                        f"{outcome.status}{'' if state is MISSING else ' ' + str(state)})"))
                    break
                if retry_after is not None and wait < retry_after:
                    honoured = False  # capped below what the service asked for
                await asyncio.sleep(wait)
                waited += wait
        result.details.update(request=request.description, tries=tries, waited_s=round(waited, 2),
                              honoured_retry_after=honoured, sends=sends)
        if outcome is not None:
            result.exchanges.append(Exchange.of(request, outcome))
            result.checks += check_response(step.expect, outcome, values)
            if step.expect.honours_retry_after:
                result.checks.append(check_retry_after(sends))
            self._save(step, result, lambda _: outcome)

    async def _pause(self, client: Client, step: Step, result: StepResult) -> None:
        assert isinstance(step.action, Pause)
        await asyncio.sleep(step.action.seconds)

    async def _load(self, client: Client, step: Step, result: StepResult) -> None:
        phase = step.action
        assert isinstance(phase, Load)
        mix = [(item.weight, self._maker(item.request), self._timeout(item.request)) for item in phase.mix]
        with self.progress.task(f"load {step.name}") as bar:
            if self.load_engine is None:
                details, checks = await run_load(client, phase, mix, result.stats, bar)
                details["engine"] = "built-in"
            else:  # e.g. Locust (simulator/locust): the same stats, details and checks
                details, checks = await self.load_engine.run_load(
                    phase, target=self.target, token=self.token, variables=self.variables,
                    timeouts=[t for _, _, t in mix], connect_timeout=self.connect_timeout,
                    stats=result.stats, bar=bar)
        result.details.update(details)
        result.checks += checks

    def _maker(self, spec: RequestSpec) -> Callable[[], PreparedRequest]:
        """What builds each request of a load phase: the same one every time, or, when it
        uses per-request values, a new one each time (the first built now, so a request
        that cannot be sent fails the step before the phase starts)."""
        first = self._prepare(spec)
        if not per_request(spec, self.variables):
            return lambda: first
        pending = [first]
        return lambda: pending.pop() if pending else self._prepare(spec)

    @staticmethod
    async def _control_call(call: Awaitable[T]) -> T | None:
        """A control call whose failure leaves the step's figures out, not the step."""
        try:
            return await call
        except EmulatorError:
            return None


def _tagged(requests: PreparedRequest | list[PreparedRequest], count: int) -> list[PreparedRequest]:
    """Each copy of a burst with a client-request-id of its own (as Graph's SDKs send one),
    unless the scenario sets one: the emulator logs it, so each arrival finds its row."""
    copies = requests if isinstance(requests, list) else [requests] * count
    if any(name.lower() == "client-request-id" for name in copies[0].headers):
        return copies
    return [dataclasses.replace(c, headers={**c.headers, "client-request-id": str(uuid.uuid4())})
            for c in copies]


def _arrivals_on_rows(timeline: dict[str, Any], arrivals: Sequence[Any],
                      requests: PreparedRequest | list[PreparedRequest], origin: int) -> None:
    """Each timeline row's server arrival (ms from the release), matched by the copy's own
    client-request-id; rows whose copy has no logged arrival get none."""
    if not origin or not isinstance(requests, list):
        return
    at = {a.client_request_id: a.monotonic_us for a in arrivals if a.client_request_id}
    for row, copy in zip(timeline["rows"], requests):
        us = at.get(copy.headers.get("client-request-id"))
        if us is not None:
            row["arrival_ms"] = round((us * 1000 - origin) / 1e6, 4)


def _job_status(outcome: Outcome) -> Any:
    """A job's status in a response, for the progress line: Graph's bare entity, or the
    docs examples' ``value`` wrapper (``--quirks documented``)."""
    body = outcome.json()
    if body is MISSING:
        return MISSING
    state = get_path(body, "status")
    return get_path(body, "value.status") if state is MISSING else state


async def _spaced(client: Client, request: PreparedRequest | list[PreparedRequest], count: int,
                  spacing: float, timeout: float) -> BurstResult:
    """``count`` copies started ``spacing`` seconds apart, each on its own, none waiting for
    another: what independent clients look like to a race gate."""
    send_ns = [0] * count
    requests = request if isinstance(request, list) else [request] * count
    timings = [RequestTiming() for _ in range(count)]  # sent: handed to the client

    async def one(i: int) -> Outcome:
        await asyncio.sleep(i * spacing)
        send_ns[i] = timings[i].first_byte_ns = timings[i].last_byte_ns = time.monotonic_ns()
        outcome = await client.send(requests[i], timeout=timeout)
        timings[i].response_ns = time.monotonic_ns() if outcome.status is not None else 0
        return outcome

    outcomes = await asyncio.gather(*(one(i) for i in range(count)))
    return BurstResult(list(outcomes), send_ns, timings)


def _retry_after(outcome: Outcome) -> float | None:
    """The wait the response asks for, in seconds or as an HTTP-date (counted from the
    response's own Date); None when it asks for none we can read."""
    return retry_after_seconds(outcome.header("Retry-After"), date=outcome.header("Date"))


async def run_scenario(
    scenario: Scenario,
    *,
    target: str | None = None,
    proxy: str | None = None,
    overrides: dict[str, str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
    progress: Progress | None = None,
    emulator_config: EmulatorConfig | None = None,
    connect_timeout: float = CONNECT_TIMEOUT_S,
    response_timeout: float = RESPONSE_TIMEOUT_S,
    on_exchange: Callable[[Exchange], None] | None = None,
    stop: asyncio.Event | None = None,
    load_engine: Any = None,
) -> RunResult:
    """Run ``scenario`` against ``target`` (or the scenario's), or an embedded emulator.
    Raises ScenarioError, before sending anything, for what cannot be sent as written."""
    variables = scenario.resolve_variables(overrides)
    target = target or (interpolate(scenario.target, variables) if scenario.target else None)
    proxy = proxy or (interpolate(scenario.proxy, variables) if scenario.proxy else None)
    preflight(scenario, variables, target=target, proxy=proxy)
    embedded = None
    if target is None:
        embedded = EmbeddedEmulator(emulator_config).start()
        target = embedded.url
    try:
        runner = Runner(scenario, target=target, proxy=proxy, variables=variables,
                        ssl_context=ssl_context, progress=progress, connect_timeout=connect_timeout,
                        response_timeout=response_timeout, on_exchange=on_exchange, stop=stop,
                        load_engine=load_engine)
        return await runner.run()
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
