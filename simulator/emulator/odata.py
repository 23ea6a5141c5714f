"""The OData query options exportJobs supports: ``$filter`` on goalsOrganizationId only,
and ``$select`` of the job's properties. Bad options raise ``GraphError`` as Graph words them.
"""

from __future__ import annotations

import re

from exportjobs.graph import JOB_PROPERTIES, GraphError

_FILTER_CLAUSE = re.compile(r"^\s*([A-Za-z_@.]+)\s+(\w+)\s+'([^']*)'\s*$")


def parse_filter(expr: str) -> set[str] | None:
    """The organization ids a ``$filter`` asks for (None: no filter); bad filters raise."""
    if not expr.strip():
        return None
    clauses = [_FILTER_CLAUSE.match(c) for c in re.split(r"\s+and\s+", expr.strip(), flags=re.I)]
    if any(m is None for m in clauses):
        raise GraphError(
            400,
            "badRequest",
            f"Invalid filter clause: {expr!r}. Use goalsOrganizationId eq '<guid>'.",
        )
    bad = [m[1] for m in clauses if m[1].lower() != "goalsorganizationid"]  # type: ignore[index]
    if bad:
        raise GraphError(400, "badRequest", f"Invalid filter keys found: {', '.join(bad)}")
    ops = [m[2] for m in clauses if m[2].lower() != "eq"]  # type: ignore[index]
    if ops:
        raise GraphError(400, "badRequest", f"Unsupported filter operator: {ops[0]}. Use eq.")
    return {m[3].lower() for m in clauses}  # type: ignore[index]


def parse_select(raw: str | None) -> list[str] | None:
    """The properties a ``$select`` keeps (None: all of them)."""
    if raw is None:
        return None
    wanted = [p.strip() for p in raw.split(",") if p.strip()]
    if not wanted:  # an empty $select selects nothing away
        return None
    for prop in wanted:
        if prop not in JOB_PROPERTIES:
            raise GraphError(
                400,
                "BadRequest",
                f"Could not find a property named '{prop}' on type 'microsoft.graph.goalsExportJob'.",
            )
    return wanted


def project(job: dict[str, object], select: list[str] | None) -> dict[str, object]:
    """``job`` trimmed to ``select`` (its @odata.type always stays)."""
    if select is None:
        return job
    return {"@odata.type": job["@odata.type"], **{p: job[p] for p in select}}
