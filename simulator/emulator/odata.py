"""The OData query options exportJobs supports: ``$filter`` on goalsOrganizationId only,
``$select`` of the job's properties, ``$count``. Any other system query option, and bad
values of these, raise ``GraphError`` as Graph words them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from exportjobs.graph import JOB_PROPERTIES, GraphError

_FILTER_CLAUSE = re.compile(r"^\s*([A-Za-z_@.]+)\s+(\w+)\s+'([^']*)'\s*$")

# OData's system query options, by the names Graph's query validator gives them in its
# "Query option 'Top' is not allowed" message (ASP.NET OData's AllowedQueryOptions).
SYSTEM_QUERY_OPTIONS = {
    "$filter": "Filter", "$select": "Select", "$count": "Count", "$top": "Top",
    "$skip": "Skip", "$orderby": "OrderBy", "$expand": "Expand", "$search": "Search",
    "$format": "Format", "$skiptoken": "SkipToken", "$deltatoken": "DeltaToken",
    "$apply": "Apply", "$compute": "Compute", "$levels": "Levels", "$index": "Index",
}

# The options each read accepts; every other system option is refused.
LIST_OPTIONS = frozenset({"$filter", "$select", "$count"})
GET_OPTIONS = frozenset({"$select"})
COUNT_OPTIONS = frozenset({"$filter"})
CONTENT_OPTIONS: frozenset[str] = frozenset()


def check_query_options(names: Iterable[str], allowed: frozenset[str]) -> None:
    """Refuse a system query option (``$`` and a known name, any case) not in ``allowed``.

    Graph's wording (its OData query validator): 400 "The query specified in the URI is
    not valid. Query option 'Top' is not allowed. ..." Other parameters are left alone.
    """
    for name in names:
        key = name.lower()
        if key in SYSTEM_QUERY_OPTIONS and key not in allowed:
            raise GraphError(
                400,
                "BadRequest",
                f"The query specified in the URI is not valid. Query option "
                f"'{SYSTEM_QUERY_OPTIONS[key]}' is not allowed. To allow it, set the "
                "'AllowedQueryOptions' property on EnableQueryAttribute or QueryValidationSettings.",
            )


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
    """The properties a ``$select`` keeps (None: all of them); an empty one is refused."""
    if raw is None:
        return None
    wanted = list(dict.fromkeys(p.strip() for p in raw.split(",") if p.strip()))
    if not wanted:
        raise GraphError(400, "BadRequest", "The value for OData query '$select' cannot be empty.")
    for prop in wanted:
        if prop not in JOB_PROPERTIES:
            raise GraphError(
                400,
                "BadRequest",
                f"Could not find a property named '{prop}' on type 'microsoft.graph.goalsExportJob'.",
            )
    return wanted


def parse_count(raw: str | None) -> bool:
    """Whether a list asks for ``@odata.count`` (``$count=true``); OData allows true or false."""
    if raw is None:
        return False
    value = raw.strip().lower()
    if value not in ("true", "false"):
        raise GraphError(400, "BadRequest", f"'{raw}' is not a valid count option.")
    return value == "true"


def project(job: dict[str, object], select: list[str] | None) -> dict[str, object]:
    """``job`` trimmed to ``select`` (its @odata.type always stays)."""
    if select is None:
        return job
    return {"@odata.type": job["@odata.type"], **{p: job[p] for p in select}}
