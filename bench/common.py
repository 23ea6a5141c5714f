"""What every benchmark section shares: wrk, server subprocesses, control calls, options.

Everything stays on 127.0.0.1, and every wait is bounded in time.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exportjobs.graph import COLLECTION_PATH

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
CREATES_LUA = BENCH_DIR / "creates.lua"
CREATE_PATH = COLLECTION_PATH  # what the creates of every section post to
HOST = "127.0.0.1"


class BenchError(RuntimeError):
    """A benchmark cannot run or produced figures that cannot be trusted."""


@dataclass(frozen=True)
class Options:
    duration_s: int = 10
    rounds: int = 3
    connections: int = 50
    warmup_s: int = 2
    pin: bool = True
    jvm_warmup_s: int = 30  # load on a JVM server before its figures (JIT compilation)


@dataclass
class SectionResult:
    """What a section hands back: JSON figures, console lines, a docs/benchmarks.md block."""

    data: dict[str, Any]
    lines: list[str]
    markdown: str
    summary: int = 4  # how many trailing lines of ``lines`` run.py prints at the end
    skipped: str | None = None  # why the section could not measure here (docs left alone)


# --- wrk ---------------------------------------------------------------------------------


def ensure_wrk() -> str:
    """Path of ``wrk``, installing the Debian package when it is missing."""
    found = shutil.which("wrk")
    if found:
        return found
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        raise BenchError(
            "wrk is not installed and cannot be installed here "
            f"({'no apt-get' if apt is None else 'not root'}); install it "
            "(Debian/Ubuntu: sudo apt-get install -y wrk) and rerun."
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print("wrk is missing: apt-get install -y wrk", flush=True)
    install = [apt, "install", "-y", "-q", "wrk"]
    if subprocess.run(install, env=env, timeout=600).returncode != 0:
        print("install failed; apt-get update, then again", flush=True)
        subprocess.run([apt, "update", "-q"], env=env, timeout=600)
        subprocess.run(install, env=env, timeout=600)
    found = shutil.which("wrk")
    if found is None:
        raise BenchError("apt-get could not install wrk; install it by hand and rerun.")
    return found


@dataclass
class WrkResult:
    """One wrk run, from the BENCH_RESULT line that creates.lua prints."""

    requests: int
    duration_us: int
    p50_us: int
    p90_us: int
    p99_us: int
    max_us: int
    errors: dict[str, int]
    statuses: dict[int, int]
    server_cpu_s: float = 0.0  # CPU the server process used during the run, when measured

    @property
    def rps(self) -> float:
        return self.requests / (self.duration_us / 1e6)

    @property
    def cpu_us_per_request(self) -> float:
        """Server CPU per request: unlike req/s, barely moved by other load on the machine."""
        return self.server_cpu_s * 1e6 / self.requests if self.requests else 0.0

    @property
    def socket_errors(self) -> dict[str, int]:
        """wrk's connect/read/write/timeout errors (its "status" count is only non-2xx replies)."""
        return {k: v for k, v in self.errors.items() if k != "status" and v}

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "statuses": {str(k): v for k, v in self.statuses.items()},
                "rps": round(self.rps, 1), "cpu_us_per_request": round(self.cpu_us_per_request, 1)}


def _cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def load_cpu(opts: Options) -> list[int] | None:
    """The CPU wrk runs on (the first), keeping the servers off it when pinning."""
    cpus = _cpus()
    return cpus[:1] if opts.pin and len(cpus) >= 2 else None


def server_cpus(opts: Options) -> list[int] | None:
    cpus = _cpus()
    return cpus[1:] if opts.pin and len(cpus) >= 2 else None


def run_wrk(wrk: str, url: str, mode: str, opts: Options, duration_s: int | None = None,
            origin: str | None = None) -> WrkResult:
    """One wrk run (1 thread, ``opts.connections``) of creates.lua in ``mode``.

    With ``origin`` (``http://host:port``), wrk still connects to ``url`` but sends each
    request in absolute form for ``origin``: ``url`` is then a proxy in regular mode.
    """
    duration = duration_s or opts.duration_s
    cmd = [wrk, "-t1", f"-c{opts.connections}", f"-d{duration}s", "--timeout", "5s",
           "-s", str(CREATES_LUA), url + CREATE_PATH, "--", mode, *([origin] if origin else [])]
    cpus = load_cpu(opts)
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=duration + 60,
        preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
    )
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            raw = json.loads(line.removeprefix("BENCH_RESULT "))
            raw["statuses"] = {int(k): v for k, v in raw["statuses"].items()}
            return WrkResult(**raw)
    raise BenchError(f"wrk printed no result (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")


def run_wrk_on(server: Server, wrk: str, mode: str, opts: Options,
               duration_s: int | None = None) -> WrkResult:
    """``run_wrk`` against ``server``, noting the CPU time the server spent meanwhile."""
    before = server.cpu_seconds()
    result = run_wrk(wrk, server.url, mode, opts, duration_s)
    result.server_cpu_s = server.cpu_seconds() - before
    return result


# --- servers -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """A server in its own process on 127.0.0.1; use as a context manager."""

    name: str
    argv: list[str]
    port: int
    cpus: list[int] | None = None
    start_timeout_s: float = 20.0  # until it listens (a proxy loading a large cassette needs more)
    process: subprocess.Popen | None = field(default=None, repr=False)
    _log: Any = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def __enter__(self) -> Server:
        self._log = tempfile.TemporaryFile()
        cpus = self.cpus
        self.process = subprocess.Popen(
            self.argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=self._log,
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        )
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"{self.name} exited with {self.process.returncode}:\n{self.log()}")
            try:
                socket.create_connection((HOST, self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        log = self.log()  # before __exit__ closes it
        self.__exit__(None, None, None)
        raise BenchError(f"{self.name} did not listen on {self.url} within "
                         f"{self.start_timeout_s:.0f} s:\n{log}")

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far (Linux /proc)."""
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-4000:]

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self._log is not None:
            self._log.close()


def python_server(name: str, args: list[str], port: int, opts: Options) -> Server:
    return Server(name, [sys.executable, *args], port, server_cpus(opts))


def fmt_ms(us: float) -> str:
    return f"{us / 1000:.2f} ms"


def median(values: list[float]) -> float:
    return statistics.median(values)


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and every live descendant (a server that forks workers).

    Children still running are not yet counted in their parent's figures, so each is read
    from its own /proc entry; a process that exits mid-measurement is simply missed.
    """
    total, todo = 0.0, [pid]
    tick = os.sysconf("SC_CLK_TCK")
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rpartition(")")[2].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total


def pinned(cpus: list[int] | None) -> Any:
    """A ``preexec_fn`` that pins a child process to ``cpus`` (None: leave it free)."""
    return (lambda: os.sched_setaffinity(0, cpus)) if cpus else None


class RedisServer:
    """A throwaway ``redis-server`` on a free port in a temporary directory (no persistence).

    Started as tests/support/redis.py starts one; use as a context manager.
    """

    def __init__(self, cpus: list[int] | None = None) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise BenchError("redis-server is not installed (Debian: apt-get install -y "
                             "redis-server); the Redis store sections need one")
        self._dir = tempfile.TemporaryDirectory(prefix="bench-redis-")
        self.port = free_port()
        self.server = Server("redis-server", [
            executable, "--port", str(self.port), "--bind", HOST, "--save", "",
            "--appendonly", "no", "--dir", self._dir.name, "--maxclients", "4096",
        ], self.port, cpus)

    def url(self, db: int = 0) -> str:
        return f"redis://{HOST}:{self.port}/{db}"

    def flush(self) -> None:
        """Empty every database (FLUSHALL in the server's own protocol)."""
        with socket.create_connection((HOST, self.port), timeout=5) as s:
            s.sendall(b"*1\r\n$8\r\nFLUSHALL\r\n")
            if not s.recv(64).startswith(b"+OK"):
                raise BenchError("redis-server: FLUSHALL failed")

    def __enter__(self) -> RedisServer:
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.server.__exit__(*exc)
        finally:
            self._dir.cleanup()
