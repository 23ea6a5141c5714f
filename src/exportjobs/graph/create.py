"""What makes a valid exportJobs create, as Graph words each refusal.

A create is a JSON object (``Content-Type: application/json``) naming two GUIDs,
``goalsOrganizationId`` and ``explorerViewId``, and nothing else but an optional
``@odata.type``. Graph compares the GUIDs case-insensitively: two creates are the same
create when their ``key`` is equal. The emulator answers with these rules; the race gate
decides with them which creates are identical.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from exportjobs.graph.errors import GraphError
from exportjobs.graph.ids import is_guid
from exportjobs.graph.jsontext import MAX_JSON_DEPTH, JsonTooDeep, load_json
from exportjobs.graph.media import REQUEST_JSON

# Each field a create must name, and the inner error code Graph gives when it does not.
CREATE_FIELDS: dict[str, str] = {
    "goalsOrganizationId": "invalidGoalsOrganizationId",
    "explorerViewId": "invalidExplorerViewId",
}

BAD_JSON = GraphError(
    400,
    "BadRequest",
    "Unable to read JSON request payload. Please ensure Content-Type header is set and "
    "payload is of valid JSON format.",
)
TOO_DEEP = GraphError(
    400,
    "BadRequest",
    f"The request payload nests JSON deeper than {MAX_JSON_DEPTH} levels.",
)


@dataclass(frozen=True, slots=True)
class CreateBody:
    """The two GUIDs of a valid create, as the client spelled them."""

    organization_id: str
    view_id: str

    @property
    def key(self) -> tuple[str, str]:
        """What Graph deduplicates on: the pair, lower-cased (GUIDs compare without case)."""
        return self.organization_id.lower(), self.view_id.lower()


def parse_create(raw: bytes, media_type: str = REQUEST_JSON) -> CreateBody:
    """The create ``raw`` asks for; a ``GraphError`` as Graph words it when it is not one.

    ``media_type`` is the request's Content-Type without parameters. The checks run in
    Graph's order: media type (415), JSON (400), then the fields (400).
    """
    if media_type != REQUEST_JSON:
        raise GraphError(
            415,
            "unsupportedMediaType",
            f"Content-Type must be '{REQUEST_JSON}', not '{media_type}'.",
        )
    try:
        body = load_json(raw)
    except JsonTooDeep:
        raise TOO_DEEP from None
    except ValueError:  # bad syntax or UTF-8 (UnicodeDecodeError is a ValueError)
        raise BAD_JSON from None
    if not isinstance(body, dict):
        raise BAD_JSON
    return validate_create(body)


def validate_create(body: dict[str, Any]) -> CreateBody:
    """The create a decoded JSON object names, else the first refusal Graph gives."""
    organization_id = body.get("goalsOrganizationId")
    view_id = body.get("explorerViewId")
    if len(body) == 2 and is_guid(organization_id) and is_guid(view_id):
        return CreateBody(str(organization_id), str(view_id))  # the usual create: skip the search below
    for name, inner_code in CREATE_FIELDS.items():
        if not is_guid(body.get(name)):
            label = name[0].upper() + name[1:]
            raise GraphError(
                400,
                "badRequest",
                f"'{label}' must be specified in 'Export Job', and it should be a valid GUID.",
                inner_code=inner_code,
            )
    extra = [k for k in body if k not in CREATE_FIELDS and k != "@odata.type"]
    if extra:
        raise GraphError(
            400,
            "badRequest",
            f"The property '{extra[0]}' does not exist on type 'microsoft.graph.goalsExportJob'.",
        )
    return CreateBody(str(organization_id), str(view_id))


def create_key(raw: bytes) -> tuple[str, str] | None:
    """The ``key`` of the create ``raw`` holds, or None when Graph would refuse the body."""
    try:
        return parse_create(raw).key
    except GraphError:
        return None
