"""``exportjobs demo``: the duplicate-create race against the embedded emulator, narrated."""

from __future__ import annotations

import asyncio
import time
import uuid

import aiohttp

from simulator.auth import fake_token
from simulator.emulator import EmulatorConfig, start_emulator

COLLECTION = "/beta/employeeExperience/goals/exportJobs"


def _say(step: str, status: int, detail: str) -> None:
    print(f"  {step:<34} -> {status} {detail}", flush=True)


async def run_demo(burst: int = 20) -> int:
    emulator = await start_emulator(EmulatorConfig(start_after=0.5, run_for=1.5))
    print(f"Emulator listening on {emulator.url}{COLLECTION}")
    headers = {"Authorization": f"Bearer {fake_token()}"}
    body = {"goalsOrganizationId": str(uuid.uuid4()), "explorerViewId": str(uuid.uuid4())}
    failures = 0
    try:
        async with aiohttp.ClientSession(emulator.url, headers=headers) as http:
            async with http.post(COLLECTION, json=body) as r:
                job = await r.json()
                _say("create", r.status, f"id={job['id'][:16]}... status={job['status']}")
                location = r.headers["Location"]
            async with http.post(COLLECTION, json=body) as r:
                err = (await r.json())["error"]
                _say("create again (same pair)", r.status,
                     f"{err['code']}, target is the first job: {err['target'] == job['id']}")
                failures += r.status != 409 or err["target"] != job["id"]

            race = {"goalsOrganizationId": body["goalsOrganizationId"],
                    "explorerViewId": str(uuid.uuid4())}

            async def create() -> int:
                async with http.post(COLLECTION, json=race) as resp:
                    await resp.read()
                    return resp.status

            statuses = await asyncio.gather(*(create() for _ in range(burst)))
            created, conflicts = statuses.count(201), statuses.count(409)
            _say(f"{burst} concurrent identical creates", 201,
                 f"x{created}, 409 x{conflicts} (expected exactly one 201)")
            failures += created != 1 or conflicts != burst - 1

            started = time.monotonic()
            while True:
                async with http.get(location) as r:
                    state = (await r.json())["value"]["status"]
                    wait = float(r.headers.get("Retry-After", 0))
                _say("poll", r.status, f"status={state}"
                     + (f", Retry-After {wait:g}s" if wait else ""))
                if state not in ("notStarted", "running") or time.monotonic() - started > 30:
                    break
                await asyncio.sleep(min(wait, 1.0) or 0.5)
            async with http.get(f"{location}/content") as r:
                lines = (await r.text()).count("\n")
                _say("download content", r.status, f"{r.content_type}, {lines} lines")
            async with http.post(COLLECTION, json=body) as r:
                _say("create again after completion", r.status, "a new job may start")
                failures += r.status != 201
    finally:
        await emulator.close()
    print("Demo finished: every outcome was as Graph documents it." if not failures
          else f"Demo finished with {failures} unexpected outcome(s).")
    return 0 if not failures else 1
