"""Where the emulator keeps its state: the ``Store`` the handlers and the control API await.

Two stores keep the same state (jobs, the arrival log of creates, the clock offset, the
known organizations) and answer the same way: ``MemoryStore``, one process's memory (the
default), and ``redis_store.RedisStore``, a Redis database several ``exportjobs serve``
processes share (``EmulatorConfig(store_url="redis://HOST:PORT/DB")``).

The one guarantee both stores keep, and the one place it is stated: ``create`` checks for
the pending job of an (organization, view) pair and inserts a new one as ONE indivisible
step, so of any number of concurrent identical creates, however many processes serve
them, exactly one gets ``created=True`` and every other one gets that winner. The memory
store keeps it by having no ``await`` between the check and the insert (one event loop);
the Redis store by doing both in one Lua script, which Redis runs alone.
``create_racy`` breaks it on purpose (a read, a sleep, a write) so race tests can show
they catch a store that does not keep it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Protocol

from exportjobs.graph import GraphError
from exportjobs.simulator.emulator.arrivals import Arrival, ArrivalLog
from exportjobs.simulator.emulator.jobs import Clock, Job, JobStore


class StoreUnreachable(Exception):
    """The store the config names does not answer at start (or its client is not installed)."""


def unknown_organization() -> GraphError:
    """Graph's 404 for a create naming an organization the known list lacks."""
    return GraphError(
        404, "notFound", "Goals organization not found", inner_code="goalsOrganizationIdNotFound"
    )


class Store(Protocol):
    """The emulator's state, as the handlers and the control API use it."""

    async def now(self) -> float:
        """The emulator clock: wall time plus the offset the control API moved it by."""
        ...

    async def clock_offset(self) -> float: ...

    async def advance_clock(self, seconds: float) -> float:
        """Move the clock forward by ``seconds`` (>= 0); the new offset."""
        ...

    async def create(self, organization_id: str, explorer_view_id: str,
                     arrival: Arrival) -> tuple[Job, bool]:
        """The pending job of the pair, or a new one: ``(job, created)``, atomically (above).

        ``arrival`` is logged with its outcome (201 or 409 and the job's id). An organization
        the known list lacks is checked in the same step: its arrival is logged as a 404 and
        ``unknown_organization()`` is raised."""
        ...

    async def create_racy(self, organization_id: str, explorer_view_id: str,
                          arrival: Arrival, window_s: float) -> tuple[Job, bool]:
        """DELIBERATELY BROKEN ``create``: check, sleep ``window_s``, insert."""
        ...

    async def record_arrival(self, arrival: Arrival) -> None:
        """Log a create that ended before ``create`` (bad body, unknown organization...)."""
        ...

    async def arrivals(self) -> list[Arrival]: ...

    async def clear_arrivals(self) -> None: ...

    async def get(self, job_id: str) -> Job | None: ...

    async def list_jobs(self, organization_id: str | None = None) -> list[Job]:
        """Every job in creation order, or those of one organization (case-insensitive)."""
        ...

    async def count(self) -> int: ...

    async def fail(self, job_id: str, *, immediately: bool) -> tuple[Job, float] | None:
        """Make a job end as failed (see ``Job.fail``): the job and the time, or None."""
        ...

    async def organization_known(self, organization_id: str) -> bool: ...

    async def known_organizations(self) -> list[str] | None:
        """The known organizations, sorted and lower-case; None when every one exists."""
        ...

    async def set_known_organizations(self, organizations: list[str] | None) -> None: ...

    async def reset(self) -> None:
        """Forget every job and arrival (ids keep counting; clock and organizations stay)."""
        ...

    async def open(self) -> None:
        """Check the store answers before the emulator listens; else ``StoreUnreachable``."""
        ...

    async def close(self) -> None: ...


class MemoryStore:
    """The state in this process's memory: a ``JobStore``, a ``Clock`` and an ``ArrivalLog``.

    Every method runs to its end without awaiting anything but ``create_racy``'s sleep, so
    the async interface costs one coroutine per call and no thread hop."""

    def __init__(self, *, start_after: float, run_for: float,
                 known_organizations: list[str] | None, arrival_log_size: int,
                 clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.job_store = JobStore(self.clock, start_after=start_after, run_for=run_for,
                                  known_organizations=known_organizations)
        self.arrival_log = ArrivalLog(deque(maxlen=arrival_log_size))

    async def now(self) -> float:
        return self.clock.now()

    async def clock_offset(self) -> float:
        return self.clock.offset

    async def advance_clock(self, seconds: float) -> float:
        self.clock.advance(seconds)
        return self.clock.offset

    async def create(self, organization_id: str, explorer_view_id: str,
                     arrival: Arrival) -> tuple[Job, bool]:
        self._check_organization(organization_id, arrival)
        job, created = self.job_store.create(organization_id, explorer_view_id)
        self._log(arrival, job, created)
        return job, created

    async def create_racy(self, organization_id: str, explorer_view_id: str,
                          arrival: Arrival, window_s: float) -> tuple[Job, bool]:
        self._check_organization(organization_id, arrival)
        pending = self.job_store.pending_job(organization_id, explorer_view_id)
        if pending is not None:
            self._log(arrival, pending, False)
            return pending, False
        await asyncio.sleep(window_s)
        job = self.job_store.insert(organization_id, explorer_view_id)
        self._log(arrival, job, True)
        return job, True

    def _check_organization(self, organization_id: str, arrival: Arrival) -> None:
        if not self.job_store.organization_known(organization_id):
            arrival.status = 404
            self.arrival_log.entries.append(arrival)
            raise unknown_organization()

    def _log(self, arrival: Arrival, job: Job, created: bool) -> None:
        arrival.status, arrival.job_id = (201 if created else 409), job.id
        self.arrival_log.entries.append(arrival)

    async def record_arrival(self, arrival: Arrival) -> None:
        self.arrival_log.entries.append(arrival)

    async def arrivals(self) -> list[Arrival]:
        return list(self.arrival_log.entries)

    async def clear_arrivals(self) -> None:
        self.arrival_log.entries.clear()

    async def get(self, job_id: str) -> Job | None:
        return self.job_store.jobs.get(job_id)

    async def list_jobs(self, organization_id: str | None = None) -> list[Job]:
        return self.job_store.list(organization_id)

    async def count(self) -> int:
        return len(self.job_store.jobs)

    async def fail(self, job_id: str, *, immediately: bool) -> tuple[Job, float] | None:
        job = self.job_store.jobs.get(job_id)
        if job is None:
            return None
        now = self.clock.now()
        job.fail(now, immediately=immediately)
        return job, now

    async def organization_known(self, organization_id: str) -> bool:
        return self.job_store.organization_known(organization_id)

    async def known_organizations(self) -> list[str] | None:
        known = self.job_store.known_organizations
        return None if known is None else sorted(known)

    async def set_known_organizations(self, organizations: list[str] | None) -> None:
        self.job_store.known_organizations = (
            None if organizations is None else {o.lower() for o in organizations})

    async def reset(self) -> None:
        self.job_store.reset()
        self.arrival_log.entries.clear()

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None
