"""Values the emulator tests share."""

from __future__ import annotations

import uuid

import pytest

from exportjobs.graph import COLLECTION_PATH

COLLECTION = COLLECTION_PATH

def new_pair() -> dict[str, str]:
    """A create body for a fresh (organization, view) pair."""
    return {"goalsOrganizationId": str(uuid.uuid4()), "explorerViewId": str(uuid.uuid4())}


@pytest.fixture(params=["memory", "redis"], name="emulator_store")
def every_store(request: pytest.FixtureRequest) -> str:
    """Import into a test module to run its emulator tests against the in-memory store and
    against a real Redis (the module's ``emulator_store`` replaces conftest's)."""
    return request.param


async def advance(http, seconds: float) -> None:
    """Move the emulator clock through the control API (the clock may live in Redis)."""
    async with http.post("/_emulator/clock/advance", json={"seconds": seconds}) as r:
        assert r.status == 200
