"""Values the emulator tests share."""

from __future__ import annotations

import uuid

from exportjobs.graph import COLLECTION_PATH

COLLECTION = COLLECTION_PATH

def new_pair() -> dict[str, str]:
    """A create body for a fresh (organization, view) pair."""
    return {"goalsOrganizationId": str(uuid.uuid4()), "explorerViewId": str(uuid.uuid4())}
