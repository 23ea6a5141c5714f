"""The media types of Graph's exportJobs bodies, so every producer labels them alike.

A response's ``Content-Type`` says what its body is, not which code produced it: an error
body is an error body whether the emulator, the replaying proxy or an injected fault wrote
it, and a job is an OData entity wherever it comes from.
"""

from __future__ import annotations

# What a create must send (Graph refuses other media types with 415).
REQUEST_JSON = "application/json"

# A Graph error body (``{"error": {...}}``): plain JSON, as Graph labels its errors.
ERROR_CONTENT_TYPE = "application/json"

# An OData entity or collection body (a job, a list of jobs), as Graph labels them.
ODATA_CONTENT_TYPE = (
    "application/json;odata.metadata=minimal;odata.streaming=true;"
    "IEEE754Compatible=false;charset=utf-8"
)

# An export's content: the CSV of the exported goals.
CSV_CONTENT_TYPE = "text/csv; charset=utf-8"
