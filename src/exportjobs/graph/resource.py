"""The goalsExportJob resource: its OData type, properties and pending statuses."""

from __future__ import annotations

ODATA_TYPE = "#microsoft.graph.goalsExportJob"

# Properties of goalsExportJob, in the order Graph documents them. lastActionDateTime and
# statusDetail are inherited from longRunningOperation: Graph's query layer knows them.
JOB_PROPERTIES = (
    "id",
    "status",
    "createdDateTime",
    "lastActionDateTime",
    "statusDetail",
    "expirationDateTime",
    "goalsOrganizationId",
    "explorerViewId",
    "resourceLocation",
)

PENDING_STATUSES = frozenset({"notStarted", "running"})
