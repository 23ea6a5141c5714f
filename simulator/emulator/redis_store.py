"""The emulator's state in Redis, so several ``exportjobs serve`` processes act as one service.

Keys (under ``exportjobs:``): ``offset`` (the clock offset, seconds), ``seq`` (the last job
number), ``job:N`` (a hash per job), ``jobs`` (job numbers in creation order), ``pending``
(a hash from "organization view", lower-case, to the number of the pair's latest job),
``orgs`` (the known organizations, JSON; absent when every one exists), ``arrivals``
(the arrival log, newest last, trimmed to its size).

``create`` is one Lua script (``CREATE``, run by EVALSHA): the known-organization check,
the pending check, the insert and the arrival entry happen in one step Redis runs alone (see
``store`` for the guarantee), so a create costs one round trip.
Times are computed inside the script from the caller's wall time plus the stored offset.

A Redis that is down, restarting or slow makes every call fail within the socket timeouts
(and the pool's wait); the failure becomes Graph's 503 with a Retry-After, never a 500.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable, Coroutine
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from exportjobs.graph import GraphError
from exportjobs.simulator.emulator.arrivals import Arrival
from exportjobs.simulator.emulator.jobs import Job, encode_job_id, job_number
from exportjobs.simulator.emulator.store import StoreUnreachable, unknown_organization

PREFIX = "exportjobs:"
SOCKET_TIMEOUT_S = 2.0
CONNECT_TIMEOUT_S = 1.0
POOL_SIZE = 64  # connections per process; a burst waits for one (bounded) rather than opening 1,000
POOL_WAIT_S = 3.0
RETRY_AFTER_S = "1"

_FIELDS = ("org", "view", "created", "starts", "ends", "outcome")

# KEYS: offset, seq, pending, jobs, arrivals, job key prefix, orgs.
# ARGV: pair, wall time, start_after, run_for, organization, view, first number, force (1: no
# check, the racy insert), arrival's monotonic us, its client-request-id as JSON, log size,
# organization lower-case.
# Returns {-1} for an organization the known list lacks (its arrival logged as a 404), else
# {created 0/1, number, organization, view, created, starts, ends, outcome} (times as %.17g
# strings): the new job, or the pending winner as its creator spelled the pair.
CREATE = """
local function log(status, number)
  redis.call('RPUSH', KEYS[5], '{"m":' .. ARGV[9] .. ',"s":' .. status .. ',"j":' .. number ..
             ',"c":' .. ARGV[10] .. '}')
  redis.call('LTRIM', KEYS[5], -tonumber(ARGV[11]), -1)
end
local orgs = redis.call('GET', KEYS[7])
if orgs then
  local known = false
  for _, org in ipairs(cjson.decode(orgs)) do
    if org == ARGV[12] then known = true; break end
  end
  if not known then
    log(404, 'null')
    return {-1}
  end
end
local now = tonumber(ARGV[2]) + tonumber(redis.call('GET', KEYS[1]) or '0')
local existing = redis.call('HGET', KEYS[3], ARGV[1])
if existing and ARGV[8] ~= '1' then
  local job = redis.call('HMGET', KEYS[6] .. existing, 'org', 'view', 'created', 'starts', 'ends',
                        'outcome')
  if job[5] and now < tonumber(job[5]) then
    log(409, existing)
    return {0, existing, job[1], job[2], job[3], job[4], job[5], job[6]}
  end
end
if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('SET', KEYS[2], ARGV[7]) end
local number = tostring(redis.call('INCR', KEYS[2]))
local created = string.format('%.17g', now)
local starts = string.format('%.17g', now + tonumber(ARGV[3]))
local ends = string.format('%.17g', now + tonumber(ARGV[3]) + tonumber(ARGV[4]))
redis.call('HSET', KEYS[6] .. number, 'org', ARGV[5], 'view', ARGV[6], 'created', created,
           'starts', starts, 'ends', ends, 'outcome', 'succeeded')
redis.call('RPUSH', KEYS[4], number)
redis.call('HSET', KEYS[3], ARGV[1], number)
log(201, number)
return {1, number, ARGV[5], ARGV[6], created, starts, ends, 'succeeded'}
"""

P = ParamSpec("P")
R = TypeVar("R")


def _unavailable(method: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """A Redis failure (down, restarting, timed out) becomes Graph's 503, raised once here."""

    @wraps(method)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except (TimeoutError, RedisError, OSError):
            raise GraphError(503, "serviceNotAvailable",
                             "The emulator's store (Redis) is not answering; retry later.",
                             headers={"Retry-After": RETRY_AFTER_S}) from None

    return call


def _json_text(text: str | None) -> str:
    """``json.dumps(text)`` for a string or None, without the encoder's per-call setup."""
    return "null" if text is None else json.encoder.encode_basestring_ascii(text)


def _job(number: str | bytes | int, fields: list[Any]) -> Job:
    org, view, created, starts, ends, outcome = (
        f.decode() if isinstance(f, bytes) else str(f) for f in fields)
    return Job(id=encode_job_id(int(number)), organization_id=org, explorer_view_id=view,
               created_at=float(created), starts_at=float(starts), ends_at=float(ends),
               outcome=outcome)


class RedisStore:
    """The ``Store`` in a Redis database (``redis://HOST:PORT/DB``)."""

    def __init__(self, url: str, *, start_after: float, run_for: float,
                 known_organizations: list[str] | None, arrival_log_size: int) -> None:
        self.url = url
        self.start_after = start_after
        self.run_for = run_for
        self.arrival_log_size = arrival_log_size
        self._initial_organizations = known_organizations
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=POOL_SIZE, timeout=POOL_WAIT_S,
            socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=CONNECT_TIMEOUT_S,
            # One immediate retry on a broken connection: a pooled connection that a Redis
            # restart closed is replaced at once rather than costing a client a 503.
            retry=Retry(NoBackoff(), 1), decode_responses=False)
        self.redis = aioredis.Redis(connection_pool=pool)
        self._create = self.redis.register_script(CREATE)
        self._k = {name: PREFIX + name for name in
                   ("offset", "seq", "pending", "jobs", "arrivals", "orgs")}
        self._job_prefix = PREFIX + "job:"
        # What every create sends that never changes, encoded once (the client passes
        # bytes through as they are).
        self._create_keys = [key.encode() for key in (
            self._k["offset"], self._k["seq"], self._k["pending"], self._k["jobs"],
            self._k["arrivals"], self._job_prefix, self._k["orgs"])]
        self._start_after, self._run_for = repr(start_after).encode(), repr(run_for).encode()
        self._log_size = str(arrival_log_size).encode()

    async def open(self) -> None:
        """Check that Redis answers; set the known organizations when the config names them."""
        try:
            await self.redis.ping()
            if self._initial_organizations is not None:
                await self.set_known_organizations(self._initial_organizations)
        except (RedisError, OSError, GraphError) as exc:
            raise StoreUnreachable(f"cannot reach the Redis store at {self.url}: {exc}") from None

    @_unavailable
    async def now(self) -> float:
        return time.time() + await self._offset()

    async def _offset(self) -> float:
        return float(await self.redis.get(self._k["offset"]) or 0.0)

    @_unavailable
    async def clock_offset(self) -> float:
        return await self._offset()

    @_unavailable
    async def advance_clock(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        return float(await self.redis.incrbyfloat(self._k["offset"], seconds))

    @_unavailable
    async def create(self, organization_id: str, explorer_view_id: str,
                     arrival: Arrival) -> tuple[Job, bool]:
        return await self._run_create(organization_id, explorer_view_id, arrival, force=False)

    @_unavailable
    async def create_racy(self, organization_id: str, explorer_view_id: str,
                          arrival: Arrival, window_s: float) -> tuple[Job, bool]:
        known = await self._known()
        if known is not None and organization_id.lower() not in known:  # the script says 404
            return await self._run_create(organization_id, explorer_view_id, arrival, force=False)
        pair = f"{organization_id.lower()} {explorer_view_id.lower()}"
        existing = await self.redis.hget(self._k["pending"], pair)
        if existing is not None:
            job = await self._get_number(existing)
            if job is not None and await self.now() < job.ends_at:
                return await self._run_create(organization_id, explorer_view_id, arrival, force=False)
        await asyncio.sleep(window_s)
        return await self._run_create(organization_id, explorer_view_id, arrival, force=True)

    async def _run_create(self, organization_id: str, explorer_view_id: str, arrival: Arrival,
                          *, force: bool) -> tuple[Job, bool]:
        organization = organization_id.lower()
        result = await self._create(
            keys=self._create_keys,
            args=[f"{organization} {explorer_view_id.lower()}", repr(time.time()),
                  self._start_after, self._run_for, organization_id, explorer_view_id,
                  random.randrange(8_000_000, 9_000_000), "1" if force else "0",
                  arrival.monotonic_us, _json_text(arrival.client_request_id),
                  self._log_size, organization])
        if result[0] == -1:  # the script found the organization unknown and logged a 404
            arrival.status = 404
            raise unknown_organization()
        created, number, *fields = result
        job = _job(number, fields)
        arrival.status, arrival.job_id = (201 if created else 409), job.id
        return job, bool(created)

    @_unavailable
    async def record_arrival(self, arrival: Arrival) -> None:
        entry = json.dumps({"m": arrival.monotonic_us, "s": arrival.status,
                            "j": job_number(arrival.job_id) if arrival.job_id else None,
                            "c": arrival.client_request_id}, separators=(",", ":"))
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.rpush(self._k["arrivals"], entry)
            pipe.ltrim(self._k["arrivals"], -self.arrival_log_size, -1)
            await pipe.execute()

    @_unavailable
    async def arrivals(self) -> list[Arrival]:
        entries = []
        for raw in await self.redis.lrange(self._k["arrivals"], 0, -1):
            e = json.loads(raw)
            entries.append(Arrival(e["m"], e["s"], None if e["j"] is None else encode_job_id(e["j"]),
                                   e["c"]))
        return entries

    @_unavailable
    async def clear_arrivals(self) -> None:
        await self.redis.delete(self._k["arrivals"])

    async def _get_number(self, number: str | bytes | int) -> Job | None:
        fields = await self.redis.hmget(self._job_prefix + str(int(number)), list(_FIELDS))
        return None if fields[0] is None else _job(number, fields)

    @_unavailable
    async def get(self, job_id: str) -> Job | None:
        number = job_number(job_id)
        return None if number is None else await self._get_number(number)

    @_unavailable
    async def list_jobs(self, organization_id: str | None = None) -> list[Job]:
        numbers = await self.redis.lrange(self._k["jobs"], 0, -1)
        async with self.redis.pipeline(transaction=False) as pipe:
            for number in numbers:
                pipe.hmget(self._job_prefix + str(int(number)), list(_FIELDS))
            rows = await pipe.execute()
        jobs = [_job(n, f) for n, f in zip(numbers, rows) if f[0] is not None]
        if organization_id is None:
            return jobs
        org = organization_id.lower()
        return [j for j in jobs if j.organization_id.lower() == org]

    @_unavailable
    async def count(self) -> int:
        return int(await self.redis.llen(self._k["jobs"]))

    @_unavailable
    async def fail(self, job_id: str, *, immediately: bool) -> tuple[Job, float] | None:
        number = job_number(job_id)
        job = None if number is None else await self._get_number(number)
        if job is None:
            return None
        now = time.time() + await self._offset()
        job.fail(now, immediately=immediately)
        await self.redis.hset(self._job_prefix + str(number), mapping={
            "starts": repr(job.starts_at), "ends": repr(job.ends_at), "outcome": job.outcome})
        return job, now

    @_unavailable
    async def organization_known(self, organization_id: str) -> bool:
        known = await self._known()
        return known is None or organization_id.lower() in known

    async def _known(self) -> list[str] | None:
        raw = await self.redis.get(self._k["orgs"])
        return None if raw is None else json.loads(raw)

    @_unavailable
    async def known_organizations(self) -> list[str] | None:
        return await self._known()

    @_unavailable
    async def set_known_organizations(self, organizations: list[str] | None) -> None:
        if organizations is None:
            await self.redis.delete(self._k["orgs"])
        else:
            await self.redis.set(self._k["orgs"], json.dumps(sorted({o.lower() for o in organizations})))

    @_unavailable
    async def reset(self) -> None:
        numbers = await self.redis.lrange(self._k["jobs"], 0, -1)
        keys = [self._job_prefix + str(int(n)) for n in numbers]
        await self.redis.delete(self._k["jobs"], self._k["pending"], self._k["arrivals"], *keys)

    async def close(self) -> None:
        await self.redis.aclose()
