"""The Locust master of one load phase: ``python -m exportjobs.simulator.locust.master``,
started by the runner (``engine``) with the phase as JSON on stdin.

Importing this module imports neither gevent nor locust; ``main`` does, first thing. It
runs in a process of its own because importing locust patches the process with gevent
(see the package's docstring). It starts the local workers (on 127.0.0.1), waits for them
and any remote ones, hands each the phase and its share, and relays what they count to
the runner as JSON lines on stdout: ``{"stats": ...}`` as it comes, then one of
``{"done": ...}`` or ``{"error": "..."}``. Every wait is bounded: workers that do not
connect within ``wait`` seconds, or a phase that does not end within its duration and
``grace``, end it with an error; so does the runner going away. Its workers are killed
on the way out.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

POLL_S = 0.05


class PhaseError(Exception):
    """What stopped the phase, said for the report."""


def emit(**line: Any) -> None:
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def shares(total: int, users: list[int]) -> list[int]:
    """``total`` split in proportion to each worker's users, remainders to the first."""
    all_users = sum(users)
    if not all_users:
        return [0] * len(users)
    parts = [total * u // all_users for u in users]
    left = total - sum(parts)
    for i, u in enumerate(users):
        if left and u:
            parts[i] += 1
            left -= 1
    return parts


def run(spec: dict[str, Any]) -> None:
    from locust.env import Environment

    from exportjobs.simulator.locust.worker import user_class

    parent = os.getppid()
    env = Environment(user_classes=[user_class()], host=spec["target"])
    try:
        runner = env.create_master_runner(spec["bind"], spec["port"])
    except Exception as exc:  # noqa: BLE001 - zmq's bind error, said for the report
        raise PhaseError(f"the Locust master cannot listen on {spec['bind']}:{spec['port']} ({exc}); "
                         "pick another --locust-port") from None
    done: dict[str, float] = {}

    def on_stats(environment: Any, msg: Any, **_: Any) -> None:
        emit(stats=msg.data)

    def on_done(environment: Any, msg: Any, **_: Any) -> None:
        emit(stats=msg.data)
        done[msg.node_id] = time.monotonic()

    runner.register_message("exportjobs_stats", on_stats)
    runner.register_message("exportjobs_done", on_done)
    if spec["web"]:
        env.create_web_ui("127.0.0.1", spec["web_port"])
        emit(web=f"http://127.0.0.1:{spec['web_port']}")
    children = [subprocess.Popen([sys.executable, "-m", "exportjobs.simulator.locust.worker",
                                  "--master", f"127.0.0.1:{spec['port']}",
                                  "--connect-timeout", str(spec["wait"])])
                for _ in range(spec["workers"])]
    try:
        _phase(spec, runner, done, children, parent)
    finally:
        runner.quit()
        for child in children:
            if child.poll() is None:
                child.terminate()
        until = time.monotonic() + 5
        for child in children:
            try:
                child.wait(max(0.1, until - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()


def _wait(what: str, ready: Any, seconds: float, children: list[subprocess.Popen[bytes]], parent: int) -> None:
    import gevent

    until = time.monotonic() + seconds
    while not ready():
        if os.getppid() != parent:
            raise PhaseError("the run that started this master went away")
        for child in children:
            if child.poll() is not None:
                raise PhaseError(f"a local Locust worker exited (status {child.returncode}) {what}")
        if time.monotonic() > until:
            raise PhaseError(f"{what}: not within {seconds:g} s")
        gevent.sleep(POLL_S)


def _phase(spec: dict[str, Any], runner: Any, done: dict[str, float],
           children: list[subprocess.Popen[bytes]], parent: int) -> None:
    expected = spec["workers"] + spec["remote_workers"]
    _wait(f"waiting for {expected} Locust worker(s) to connect",
          lambda: runner.worker_count >= expected, spec["wait"], children, parent)
    clients = sorted(runner.clients.values(), key=lambda c: runner.get_worker_index(c.id))
    for i, client in enumerate(clients):
        runner.send_message("exportjobs_phase", {**spec["phase"], "offset": i, "stride": len(clients)},
                            client_id=client.id)
    users = spec["phase"]["concurrency"] or len(clients)  # open model: one pacing user each
    runner.start(users, spawn_rate=users)

    def spawned() -> bool:
        return sum(sum(c.user_classes_count.values()) for c in clients) == users

    _wait(f"starting {users} Locust user(s)", spawned, spec["wait"], children, parent)
    counts = [sum(c.user_classes_count.values()) for c in clients]
    phase = spec["phase"]
    budgets = shares(phase["max_requests"], counts)
    started = time.monotonic()
    for client, n, budget in zip(clients, counts, budgets):
        rate = phase["rate"] * n / users if phase["rate"] is not None else None
        runner.send_message("exportjobs_go", {"budget": budget, "rate": rate, "duration": phase["duration"]},
                            client_id=client.id)
    emit(started={"workers": len(clients), "users": users})
    limit = phase["duration"] + spec["grace"]
    ids = {c.id for c in clients}
    try:
        _wait("the phase did not end", lambda: ids <= done.keys(), limit, children, parent)
    except PhaseError as exc:
        lost = len(ids - done.keys())
        raise PhaseError(f"{lost} of {len(ids)} Locust worker(s) did not finish the phase within "
                         f"its duration and {spec['grace']:g} s ({exc})") from None
    emit(done={"elapsed_s": max(done.values()) - started, "workers": len(clients)})


def main() -> int:
    import gevent.monkey

    gevent.monkey.patch_all()  # before anything else that opens sockets or threads
    from locust.log import setup_logging

    setup_logging("WARNING")
    spec = json.loads(sys.stdin.read())
    try:
        run(spec)
    except PhaseError as exc:
        emit(error=str(exc))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
