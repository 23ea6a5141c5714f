"""Export jobs, their clock-driven lifecycle, and the store that creates them atomically.

A job's status is never stored: it is derived from the emulator clock and the job's
schedule (``notStarted`` until ``starts_at``, ``running`` until ``ends_at``, then its
outcome). Advancing the clock therefore moves every job at once, and tests never sleep.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import itertools
import json
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass

from exportjobs.graph import ODATA_TYPE, PENDING_STATUSES, graph_time

# Graph's documented example keeps results available for about 40 days.
RESULT_LIFETIME_S = 40 * 24 * 3600


class Clock:
    """Wall-clock time plus an offset that tests and the control API can advance."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self.offset += seconds
        return self.now()


def encode_job_id(number: int) -> str:
    """An opaque id shaped like Graph's (base64url of a small JSON key, no padding)."""
    # The compact JSON of {"_type": "ExportJob", "id": str(number)}, formatted directly
    # because every create makes one.
    key = f'{{"_type":"ExportJob","id":"{number:d}"}}'
    return base64.urlsafe_b64encode(key.encode()).rstrip(b"=").decode()


def job_number(job_id: str) -> int | None:
    """The number ``encode_job_id`` made ``job_id`` from, or None for any other string."""
    raw = job_id.encode()
    if len(raw) > 64:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4)))
        number = int(key["id"])
    except (binascii.Error, ValueError, UnicodeDecodeError, TypeError, KeyError):
        return None
    return number if number >= 0 and encode_job_id(number) == job_id else None


def is_well_formed_job_id(job_id: str) -> bool:
    """True when ``job_id`` decodes as a Graph job key (optionally ``j!``-prefixed)."""
    raw = job_id[2:] if job_id.startswith("j!") else job_id
    if not raw or len(raw) > 512:
        return False
    try:
        key = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return False
    return isinstance(key, dict) and isinstance(key.get("_type"), str) and "id" in key


@dataclass(slots=True)
class Job:
    id: str
    organization_id: str
    explorer_view_id: str
    created_at: float
    starts_at: float
    ends_at: float
    outcome: str = "succeeded"

    def status(self, now: float) -> str:
        if now < self.starts_at:
            return "notStarted"
        if now < self.ends_at:
            return "running"
        return self.outcome

    def seconds_to_completion(self, now: float) -> float:
        return max(0.0, self.ends_at - now)

    def is_expired(self, now: float) -> bool:
        return now >= self.ends_at + RESULT_LIFETIME_S

    def fail(self, now: float, *, immediately: bool) -> None:
        """Make the job end as ``failed``: now, or when its run would have ended."""
        self.outcome = "failed"
        if immediately and now < self.ends_at:
            self.starts_at = min(self.starts_at, now)
            self.ends_at = now

    def to_graph(self, now: float, job_url: str) -> dict[str, object]:
        """The job as Graph serialises a goalsExportJob."""
        status = self.status(now)
        done = status not in PENDING_STATUSES
        return {
            "@odata.type": ODATA_TYPE,
            "id": self.id,
            "status": status,
            "createdDateTime": graph_time(self.created_at),
            # Inherited from longRunningOperation; the docs never show a value, so null.
            "lastActionDateTime": None,
            "statusDetail": None,
            "expirationDateTime": graph_time(self.ends_at + RESULT_LIFETIME_S) if done else None,
            "goalsOrganizationId": self.organization_id,
            "explorerViewId": self.explorer_view_id,
            "resourceLocation": f"{job_url}/content" if status == "succeeded" else None,
        }


class JobStore:
    """All jobs, plus an index of the one pending job per (organization, view) pair."""

    def __init__(
        self,
        clock: Clock,
        *,
        start_after: float,
        run_for: float,
        known_organizations: Iterable[str] | None = None,
    ) -> None:
        self.clock = clock
        self.start_after = start_after
        self.run_for = run_for
        self.known_organizations = (
            None if known_organizations is None else {o.lower() for o in known_organizations}
        )
        self.jobs: dict[str, Job] = {}
        self._pending: dict[tuple[str, str], Job] = {}
        # Ids keep counting across resets so a recorded id never names two jobs.
        self._numbers = itertools.count(random.randrange(8_000_000, 9_000_000))

    def reset(self) -> None:
        self.jobs.clear()
        self._pending.clear()

    def organization_known(self, organization_id: str) -> bool:
        return self.known_organizations is None or organization_id.lower() in self.known_organizations

    def pending_job(self, organization_id: str, explorer_view_id: str) -> Job | None:
        """The job still ``notStarted`` or ``running`` for this pair, if any."""
        return self._pending_at((organization_id.lower(), explorer_view_id.lower()))

    def _pending_at(self, key: tuple[str, str]) -> Job | None:
        job = self._pending.get(key)
        if job is not None and job.status(self.clock.now()) not in PENDING_STATUSES:
            del self._pending[key]
            return None
        return job

    def insert(self, organization_id: str, explorer_view_id: str) -> Job:
        """Add a new job unconditionally; callers check ``pending_job`` first."""
        return self._insert_at((organization_id.lower(), explorer_view_id.lower()),
                               organization_id, explorer_view_id)

    def _insert_at(self, key: tuple[str, str], organization_id: str, explorer_view_id: str) -> Job:
        now = self.clock.now()
        starts_at = now + self.start_after
        job = Job(
            id=encode_job_id(next(self._numbers)),
            organization_id=organization_id,
            explorer_view_id=explorer_view_id,
            created_at=now,
            starts_at=starts_at,
            ends_at=starts_at + self.run_for,
        )
        self.jobs[job.id] = job
        self._pending[key] = job
        return job

    def create(self, organization_id: str, explorer_view_id: str) -> tuple[Job, bool]:
        """Atomically create a job, or return the pending one: ``(job, created)``.

        The guarantee is stated in ``store``; this method keeps it by having no await
        between the check and the insert.
        """
        key = (organization_id.lower(), explorer_view_id.lower())  # one key for both steps
        pending = self._pending_at(key)
        if pending is not None:
            return pending, False
        return self._insert_at(key, organization_id, explorer_view_id), True

    def list(self, organization_id: str | None = None) -> list[Job]:
        jobs = self.jobs.values()
        if organization_id is None:
            return list(jobs)
        org = organization_id.lower()
        return [j for j in jobs if j.organization_id.lower() == org]


def export_csv(job: Job) -> bytes:
    """The export content of a succeeded job: a small, deterministic CSV of goals."""
    rng = random.Random(job.id)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["Id", "Title", "Owner", "Status", "Progress", "StartDate", "EndDate"])
    statuses = ["On track", "Behind", "At risk", "Closed"]
    for n in range(1, 6):
        writer.writerow([
            f"{job.explorer_view_id[:8]}-{n}",
            f"Objective {n}",
            f"owner{rng.randrange(1, 50)}@contoso.com",
            rng.choice(statuses),
            f"{rng.randrange(0, 101)}%",
            "2026-01-01",
            "2026-12-31",
        ])
    return out.getvalue().encode()
