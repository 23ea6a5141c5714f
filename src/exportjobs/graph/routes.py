"""Which URL paths are exportJobs paths.

The emulator routes with this and the proxy addon scopes with it, so the two can never
disagree about what counts as exportJobs traffic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote

# Graph paths are case-insensitive; clients send both employeeExperience and employeeexperience.
_EXPORTJOBS_RE = re.compile(
    r"^(?P<prefix>/(?P<version>beta|v1\.0)/employeeexperience/goals/exportjobs)"
    r"(?:/(?P<job_id>[^/]+?)(?P<content>/content)?)?/?$",
    re.IGNORECASE,
)

# The documented path; clients may spell it in other cases and with v1.0 (see the pattern).
COLLECTION_PATH = "/beta/employeeExperience/goals/exportJobs"

Resource = Literal["collection", "job", "content"]


@dataclass(frozen=True, slots=True)
class ExportJobsRoute:
    """A parsed exportJobs path. ``prefix`` keeps the spelling the client sent."""

    version: str
    prefix: str
    job_id: str | None
    resource: Resource

    def kind(self, method: str) -> str:
        """What the request does: ``create``, ``list``, ``get``, ``content`` or ``other``."""
        method = method.upper()
        if self.resource == "collection":
            return {"POST": "create", "GET": "list"}.get(method, "other")
        if method != "GET":
            return "other"
        return "get" if self.resource == "job" else "content"


def match_exportjobs(path: str) -> ExportJobsRoute | None:
    """Parse ``path`` (no query string) as an exportJobs path, or return None."""
    m = _EXPORTJOBS_RE.match(path)
    if m is None:
        return None
    job_id = m["job_id"]
    if job_id is None:
        resource: Resource = "collection"
    else:
        job_id = unquote(job_id)
        resource = "content" if m["content"] else "job"
    return ExportJobsRoute(m["version"], m["prefix"], job_id, resource)
