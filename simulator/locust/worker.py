"""A Locust worker for exportjobs load phases: ``python -m exportjobs.simulator.locust.worker
--master HOST[:PORT]`` (``exportjobs locust-worker`` runs it).

Importing this module imports neither gevent nor locust; ``main`` does, first thing, as
locust patches the whole process with gevent: only run it in a process of its own. The
master tells each worker what to send (``exportjobs_phase``: the mix, the variables, the target) and then starts its share
(``exportjobs_go``: how many requests, how fast, for how long). Its users draw requests
from the weighted mix as the built-in engine does, building each with the scenario's
per-request values, and file every response into a ``Tally`` (the built-in engine's
histogram) that goes to the master twice a second and once more when the worker is done.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from collections.abc import Callable
from typing import Any

from exportjobs.simulator.locust import DEFAULT_PORT

REPORT_EVERY_S = 0.5
PACER_IN_FLIGHT = 1000  # an open-model worker keeps at most this many requests in flight


class Phase:
    """One load phase as this worker runs it."""

    def __init__(self, data: dict[str, Any]) -> None:
        import gevent.event

        from exportjobs.simulator.locust.wire import Tally, request_from, variables_from
        from exportjobs.simulator.transport import PreparedRequest, prepare_request
        from exportjobs.simulator.values import draw, per_request

        variables = variables_from(data["variables"], offset=data["offset"], stride=data["stride"])
        target, token = data["target"], data["token"]
        self.mix: list[tuple[float, Callable[[], Any], float, str]] = []
        for item in data["mix"]:
            spec = request_from(item["request"])
            name = f"{spec.method} {spec.path or spec.url}"  # one Locust stats row per mix item

            def fresh(spec: Any = spec) -> PreparedRequest:
                return prepare_request(spec, draw(variables), target=target, token=token)

            make = fresh if per_request(spec, variables) else _same(fresh())
            self.mix.append((float(item["weight"]), make, float(item["timeout"]), name))
        self.weights = [w for w, _, _, _ in self.mix]
        self.rng = random.Random(data["offset"])  # the same mix order on every run
        self.open = data["rate"] is not None
        self.width = float(data["width"])
        self.go = gevent.event.Event()
        self.idle = gevent.event.Event()  # never set: a finished user waits for the master's quit
        self.budget = 0
        self.sent = 0
        self.rate = 0.0
        self.started = self.deadline = 0.0
        self.users_left = 0
        self.tally = Tally(time.monotonic(), self.width)
        self._tally = Tally

    def start(self, data: dict[str, Any], users: int) -> None:
        self.budget, self.rate = int(data["budget"]), float(data["rate"] or 0)
        self.started = time.monotonic()
        self.deadline = self.started + float(data["duration"])
        self.tally = self._tally(self.started, self.width)
        self.users_left = users
        self.go.set()

    def more(self) -> bool:
        return self.sent < self.budget and time.monotonic() < self.deadline

    def pick(self) -> tuple[float, Callable[[], Any], float, str]:
        return self.mix[0] if len(self.mix) == 1 else self.rng.choices(self.mix, self.weights)[0]


def _same(request: Any) -> Callable[[], Any]:
    return lambda: request


_phase: Phase | None = None
_runner: Any = None


def user_class() -> Any:
    """The Locust user class (defined on first use: it needs locust, hence gevent, imported)."""
    global _user_class
    if _user_class is not None:
        return _user_class
    import gevent
    import gevent.pool
    from locust import FastHttpUser, task

    class PhaseUser(FastHttpUser):
        """A Locust user sending a phase's requests: one at a time (closed model), or, one per
        worker, starting them at the worker's share of the rate (open model)."""

        host = "http://127.0.0.1"  # every request carries its full URL
        concurrency = 1
        max_retries = 0
        insecure = False  # https targets are verified, as the built-in engine does

        @task
        def send_share(self) -> None:
            phase = _phase
            assert phase is not None
            phase.go.wait()
            try:
                if phase.open:
                    self._paced(phase)
                else:
                    while phase.more():
                        phase.sent += 1
                        self._one(phase)
            finally:
                phase.users_left -= 1
                if phase.users_left == 0:
                    _runner.send_message("exportjobs_done", phase.tally.take())
            phase.idle.wait()

        def _paced(self, phase: Phase) -> None:
            pool = gevent.pool.Pool(PACER_IN_FLIGHT)
            while phase.sent < phase.budget:
                due = phase.started + phase.sent / phase.rate
                if due >= phase.deadline:
                    break
                gevent.sleep(max(0.0, due - time.monotonic()))
                pool.spawn(self._one, phase)  # waits while the pool is full
                phase.sent += 1
            pool.join()

        def _one(self, phase: Phase) -> None:
            _, make, timeout, name = phase.pick()
            request = make()
            status: int | None = None
            started = time.perf_counter()
            try:
                with gevent.Timeout(timeout):
                    response = self.client.request(request.method, request.url, name=name, data=request.body or None,
                                                   headers=request.headers, allow_redirects=False)
                status = response.status_code or None  # 0: no response
            except gevent.Timeout:
                pass
            except Exception:  # noqa: BLE001 - a request that got no response, counted as one
                pass
            phase.tally.add(status, time.perf_counter() - started)

    _user_class = PhaseUser
    return PhaseUser


_user_class: Any = None


def _on_phase(environment: Any, msg: Any, **_: Any) -> None:
    global _phase
    data = msg.data
    _phase = Phase(data)
    PhaseUser = user_class()
    PhaseUser.concurrency = PACER_IN_FLIGHT if data["rate"] is not None else 1
    PhaseUser.connection_timeout = float(data["connect_timeout"])
    PhaseUser.network_timeout = max(t for _, _, t, _ in _phase.mix)
    import ssl

    cadata = data.get("cadata")
    PhaseUser.ssl_context_factory = (lambda: ssl.create_default_context(cadata=cadata)) if cadata else None


def _on_go(environment: Any, msg: Any, **_: Any) -> None:
    assert _phase is not None
    assert environment.runner is not None
    users = environment.runner.user_count
    _phase.start(msg.data, users)
    if users == 0:
        _runner.send_message("exportjobs_done", _phase.tally.take())
        return
    import gevent

    gevent.spawn(_report, _phase)


def _report(phase: Phase) -> None:
    import gevent

    while phase.users_left > 0:
        gevent.sleep(REPORT_EVERY_S)
        if phase.users_left > 0 and phase.tally.total.total:
            _runner.send_message("exportjobs_stats", phase.tally.take())


def master_address(text: str) -> tuple[str, int]:
    """HOST[:PORT] (an IPv6 host in brackets) as a host and a port."""
    host, port = text, DEFAULT_PORT
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            port = int(rest.removeprefix(":"))
    elif text.count(":") == 1:
        host, _, p = text.partition(":")
        port = int(p)
    if not host or not 0 < port < 65536:
        raise ValueError(text)
    return host, port


def main(argv: list[str] | None = None) -> int:
    import gevent.monkey

    gevent.monkey.patch_all()  # before anything else that opens sockets or threads
    import locust.runners
    from locust.env import Environment
    from locust.log import setup_logging

    global _runner
    parser = argparse.ArgumentParser(prog="exportjobs locust-worker")
    parser.add_argument("--master", required=True)
    parser.add_argument("--connect-timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    try:
        host, port = master_address(args.master)
    except ValueError:
        print(f"exportjobs locust-worker: --master {args.master!r}: give HOST or HOST:PORT "
              f"(port 1 to 65535, default {DEFAULT_PORT})", file=sys.stderr)
        return 2
    setup_logging("WARNING")
    # Bounded: give up on a master that never answers, and quit when it stops answering.
    locust.runners.CONNECT_TIMEOUT = 1
    locust.runners.CONNECT_RETRY_COUNT = max(1, math.ceil(args.connect_timeout))
    locust.runners.MASTER_HEARTBEAT_TIMEOUT = 10
    env = Environment(user_classes=[user_class()])
    try:
        _runner = env.create_worker_runner(host, port)
    except ConnectionError:
        print(f"exportjobs locust-worker: no master answered at {host}:{port} within "
              f"{args.connect_timeout:g} s; start it first (exportjobs run SCENARIO --engine locust "
              "--locust-remote-workers N --locust-bind ADDRESS)", file=sys.stderr)
        return 3
    _runner.register_message("exportjobs_phase", _on_phase)
    _runner.register_message("exportjobs_go", _on_go)
    _runner.greenlet.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
