"""Values the emulator tests share."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator

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


@contextlib.contextmanager
def serve_process(*args: str) -> Iterator[str]:
    """``exportjobs serve --port 0 --quiet ARGS`` in its own process; yields its base URL."""
    proc = subprocess.Popen([sys.executable, "-m", "exportjobs", "serve", "--port", "0", "--quiet", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        found = re.search(r"http://127\.0\.0\.1:\d+", proc.stdout.readline() if proc.stdout else "")
        assert found, f"exportjobs serve did not start: {proc.stderr.read() if proc.stderr else ''}"
        yield found[0]
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
