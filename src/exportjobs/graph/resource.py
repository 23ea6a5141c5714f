"""The goalsExportJob resource: its OData type, properties and pending statuses."""

from __future__ import annotations

ODATA_TYPE = "#microsoft.graph.goalsExportJob"

# Properties of goalsExportJob, in the order Graph documents them.
JOB_PROPERTIES = (
    "id",
    "status",
    "createdDateTime",
    "expirationDateTime",
    "goalsOrganizationId",
    "explorerViewId",
    "resourceLocation",
)

PENDING_STATUSES = frozenset({"notStarted", "running"})
