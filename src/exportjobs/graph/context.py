"""``@odata.context``: the URL naming what a JSON response body is, as Graph writes it.

Graph answers with ``odata.metadata=minimal``, and OData's JSON format puts the context URL
first in every entity and collection body: ``{service root}/$metadata#{entity set}``, then
``(p1,p2)`` for a ``$select`` and ``/$entity`` for a single entity. The service root is the
one the client called (scheme, host and version), so the URL points back where it came from.
"""

from __future__ import annotations

from collections.abc import Sequence

# The entity set's path in Graph's metadata (its names, not the spelling a client sent).
ENTITY_SET = "employeeExperience/goals/exportJobs"


def odata_context(
    base_url: str, version: str, *, select: Sequence[str] | None = None, entity: bool = False
) -> str:
    """The context URL of a job (``entity``) or a list of jobs, trimmed to ``select``.

    >>> odata_context("https://graph.microsoft.com", "beta", select=["id", "status"])
    'https://graph.microsoft.com/beta/$metadata#employeeExperience/goals/exportJobs(id,status)'
    """
    projection = f"({','.join(select)})" if select else ""
    suffix = "/$entity" if entity else ""
    return f"{base_url}/{version.lower()}/$metadata#{ENTITY_SET}{projection}{suffix}"
