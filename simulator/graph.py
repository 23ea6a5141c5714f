"""Microsoft Graph conventions shared by the emulator, the proxy addon and the simulator.

The one place that knows what a Graph error body looks like, which headers every Graph
response carries, and what the exportJobs resource calls its properties.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timezone
from typing import Any

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

_GUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)

JSON_CONTENT_TYPE = "application/json; charset=utf-8"


def is_guid(value: object) -> bool:
    """True for a GUID string in Graph's 8-4-4-4-12 form (braces are not accepted)."""
    return isinstance(value, str) and _GUID_RE.match(value) is not None


def new_request_id() -> str:
    return str(uuid.uuid4())


def graph_date(moment: datetime | None = None) -> str:
    """ISO 8601 UTC with a Z, as Graph writes timestamps (``2023-06-19T12:06:03.0024Z``)."""
    moment = moment or datetime.now(timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-2] + "Z"


def graph_time(epoch_s: float) -> str:
    """``graph_date`` of a Unix timestamp."""
    return graph_date(datetime.fromtimestamp(epoch_s, timezone.utc))


def error_body(
    code: str,
    message: str,
    *,
    inner_code: str | None = None,
    target: str | None = None,
    request_id: str | None = None,
    client_request_id: str | None = None,
    inner_key: str = "innerError",
) -> dict[str, Any]:
    """A Graph error body: ``{"error": {code, message, target?, innerError: {...}}}``.

    ``inner_key`` exists because Graph's own 409 example spells it ``innererror``.
    """
    inner: dict[str, Any] = {}
    if inner_code is not None:
        inner["code"] = inner_code
    inner["date"] = graph_date()[:19]
    inner["request-id"] = request_id or new_request_id()
    inner["client-request-id"] = client_request_id or inner["request-id"]
    error: dict[str, Any] = {"code": code, "message": message}
    if target is not None:
        error["target"] = target
    error[inner_key] = inner
    return {"error": error}


def error_json(*args: Any, **kwargs: Any) -> bytes:
    """``error_body`` encoded as compact UTF-8 JSON bytes."""
    return json.dumps(error_body(*args, **kwargs), separators=(",", ":")).encode()


def error_code(body: object) -> str | None:
    """``error.code`` of a Graph error body, or None when ``body`` is not one."""
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and isinstance(err.get("code"), str):
            return err["code"]
    return None


def inner_error(body: object) -> dict[str, Any]:
    """The inner error of a Graph error body, whichever spelling Graph used."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        for key in ("innerError", "innererror"):
            if isinstance(err.get(key), dict):
                return err[key]
    return {}


class GraphError(Exception):
    """A Graph error response waiting to be rendered: raise it, let the server render it."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        inner_code: str | None = None,
        target: str | None = None,
        headers: dict[str, str] | None = None,
        inner_key: str = "innerError",
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.inner_code = inner_code
        self.target = target
        self.headers = headers or {}
        self.inner_key = inner_key

    def body(self, request_id: str | None = None, client_request_id: str | None = None) -> bytes:
        return error_json(
            self.code,
            self.message,
            inner_code=self.inner_code,
            target=self.target,
            request_id=request_id,
            client_request_id=client_request_id,
            inner_key=self.inner_key,
        )
