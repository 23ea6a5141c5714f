"""``exportjobs conform``: a session recorded through the real proxy conforms to a fresh
emulator, and every difference planted in a copy of its cassette is found and named."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from exportjobs.addons.cassette import load_cassette
from exportjobs.cli import main
from exportjobs.simulator.emulator.app import EmulatorConfig, start_emulator
from exportjobs.simulator.emulator.auth import fake_token
from tests.support.proxy import COLLECTION, RACE_PAIR, ProxiedClient, auth_headers

FAST = ["--start-after", "0.3", "--run-for", "0.3"]
_recorded: dict[str, Path] = {}


async def _record(folder: Path, proxies: Any) -> Path:
    """Create, a 409 for the same pair, get, list, poll until succeeded, content."""
    emulator = await start_emulator(EmulatorConfig(start_after=0.3, run_for=0.3))
    cassette = folder / "session.yaml"
    proxy = await proxies("record", cassette, emulator.url)
    try:
        async with aiohttp.ClientSession() as session:
            client = ProxiedClient(session, proxy.url, "http://graph.microsoft.com")
            headers = auth_headers()
            created = await client.call("POST", COLLECTION, json=RACE_PAIR, headers=headers)
            assert created.status == 201
            job = created.json["id"]
            assert (await client.call("POST", COLLECTION, json=RACE_PAIR, headers=headers)).status == 409
            assert (await client.call("GET", f"{COLLECTION}/{job}", headers=headers)).status == 200
            listed = await client.call(
                "GET", f"{COLLECTION}?$filter=goalsOrganizationId eq '{RACE_PAIR['goalsOrganizationId']}'",
                headers=headers)
            assert listed.status == 200
            for _ in range(100):
                polled = await client.call("GET", f"{COLLECTION}/{job}", headers=headers)
                if polled.json["status"] == "succeeded":
                    break
                await asyncio.sleep(0.1)
            content = await client.call("GET", f"{COLLECTION}/{job}/content", headers=headers)
            assert content.status == 200
    finally:
        await proxy.close()
        await emulator.close()
    return cassette


@pytest.fixture
async def recorded(tmp_path_factory: pytest.TempPathFactory, proxies: Any) -> Path:
    """One recorded session per test module (recording takes a second)."""
    if "path" not in _recorded:
        _recorded["path"] = await _record(tmp_path_factory.mktemp("conform"), proxies)
    return _recorded["path"]


def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _write(path: Path, documents: list[dict[str, Any]]) -> Path:
    path.write_text("".join("---\n" + json.dumps(d) + "\n...\n" for d in documents))
    return path


def _find(documents: list[dict[str, Any]], method: str, status: int, tail: str = "") -> dict[str, Any]:
    return next(d for d in documents[1:] if d["request"]["method"] == method
                and d["response"]["status"] == status and d["request"]["url"].endswith(tail))


def _conform(cassette: Path, *extra: str) -> tuple[int, str, str]:
    """The command in a thread of its own (it runs its own event loop)."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["conform", str(cassette), *FAST, *extra])
    return code, out.getvalue(), err.getvalue()


async def run_conform(cassette: Path, *extra: str) -> tuple[int, str, str]:
    return await asyncio.to_thread(_conform, cassette, *extra)


async def test_recorded_session_conforms_to_a_fresh_emulator(recorded: Path, tmp_path: Path) -> None:
    cassette = load_cassette(recorded)
    statuses = [i["response"]["status"] for i in cassette.interactions]
    assert {201, 409, 200} <= set(statuses) and len(statuses) >= 6
    report = tmp_path / "report.json"
    code, out, err = await run_conform(recorded, "--report-json", str(report))
    assert (code, err) == (0, ""), out
    assert "conforms" in out
    written = json.loads(report.read_text())
    assert written["conforms"] is True and written["compared"] == len(statuses)


async def test_volatile_values_are_compared_by_shape_not_value(recorded: Path, tmp_path: Path) -> None:
    """Every id, date and GUID of the recording differs from what a fresh emulator issues;
    changing them further (new GUIDs, new dates) still conforms."""
    documents = _documents(recorded)
    for doc in documents[1:]:
        body = doc["response"].get("json")
        job = body if isinstance(body, dict) and "createdDateTime" in body else None
        if job is not None:
            job["createdDateTime"] = "2001-02-03T04:05:06Z"
        inner = (body or {}).get("error", {}).get("innerError") if isinstance(body, dict) else None
        if inner is not None:
            inner["request-id"] = "00000000-0000-4000-8000-000000000000"
            inner["date"] = "1999-12-31T23:59:59"
        doc["response"]["headers"] = [
            [k, "Mon, 01 Jan 2001 00:00:00 GMT" if k.lower() == "date" else v]
            for k, v in doc["response"]["headers"]]
    code, out, _ = await run_conform(_write(tmp_path / "volatile.yaml", documents))
    assert code == 0, out


def _plant_status(documents: list[dict[str, Any]]) -> tuple[str, str]:
    _find(documents, "POST", 409)["response"]["status"] = 400
    return "status", "400"


def _plant_header(documents: list[dict[str, Any]]) -> tuple[str, str]:
    response = _find(documents, "POST", 201)["response"]
    response["headers"] = [p for p in response["headers"] if p[0].lower() != "request-id"]
    return "header request-id", "(absent)"


def _plant_key(documents: list[dict[str, Any]]) -> tuple[str, str]:
    body = _find(documents, "POST", 201)["response"]["json"]
    body["explorerViewID"] = body.pop("explorerViewId")
    return "json explorerViewID", "22222222-2222-4222-8222-222222222222"


def _plant_type(documents: list[dict[str, Any]]) -> tuple[str, str]:
    response = _find(documents, "GET", 200, "/content")
    job_get = next(d for d in documents[1:] if d["request"]["method"] == "GET"
                   and "createdDateTime" in (d["response"].get("json") or {}) and d is not response)
    job_get["response"]["json"]["createdDateTime"] = 1234
    return "json createdDateTime", "number 1234"


def _plant_error_code(documents: list[dict[str, Any]]) -> tuple[str, str]:
    error = _find(documents, "POST", 409)["response"]["json"]["error"]
    error["innerError"]["code"] = "exportJobAlreadyRunning"
    return "json error.innerError.code", "exportJobAlreadyRunning"


@pytest.mark.parametrize("plant", [_plant_status, _plant_header, _plant_key, _plant_type,
                                   _plant_error_code])
async def test_each_planted_difference_is_found_and_named(recorded: Path, tmp_path: Path,
                                                         plant: Any) -> None:
    documents = _documents(recorded)
    where, recorded_value = plant(documents)
    report = tmp_path / "report.json"
    code, out, _ = await run_conform(_write(tmp_path / "planted.yaml", documents),
                                     "--report-json", str(report))
    assert code == 1, out
    differences = json.loads(report.read_text())["differences"]
    assert (where, recorded_value) in [(d["where"], d["recorded"]) for d in differences], out
    # Nothing else: a renamed key is also a key the target has and the recording lacks.
    assert all(d["where"] == where or "explorerViewId" in d["where"] for d in differences), out
    assert where in out and "recorded" in out.splitlines()[0]


async def test_injected_interactions_are_skipped_and_counted(recorded: Path, tmp_path: Path) -> None:
    documents = _documents(recorded)
    fake = json.loads(json.dumps(_find(documents, "POST", 201)))
    fake.update(interaction=999, injected={"status": 503, "rule": "create:503#1"})
    fake["response"]["status"] = 503
    code, out, _ = await run_conform(_write(tmp_path / "injected.yaml", [*documents, fake]))
    assert code == 0, out
    assert "1 injected by the proxy skipped" in out


async def test_bad_cassette_and_unreachable_target(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("---\nformat: nope\n...\n")
    code, _, err = await run_conform(bad)
    assert code == 2 and str(bad) in err and "Traceback" not in err
    code, _, err = await run_conform(bad, "--target", "ftp://x")
    assert code == 2
    good = tmp_path / "good.yaml"
    _write(good, [{"format": "exportjobs-cassette", "version": 1},
                  {"interaction": 1, "request": {"method": "GET", "url": f"http://graph.microsoft.com{COLLECTION}"},
                   "response": {"status": 200}}])
    with socket_closed() as port:
        code, _, err = await run_conform(good, "--target", f"http://127.0.0.1:{port}")
    assert code == 3 and "cannot reach" in err


class socket_closed:
    """A port on 127.0.0.1 that nothing listens on (bound, then closed)."""

    def __enter__(self) -> int:
        import socket

        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        return port

    def __exit__(self, *exc: object) -> None:
        return None


async def test_the_documented_quirks_are_found(recorded: Path) -> None:
    """The docs' example shapes (get-one wrapped in ``value``, ``innererror``) are exactly
    what a client would notice, so conform names them."""
    code, out, _ = await run_conform(recorded, "--quirks", "documented")
    assert code == 1, out
    rows = {line.split("  ")[0].strip() + " " + where
            for line in out.splitlines() for where in ("json error.innererror ", "json value ")
            if where in line + " "}
    assert {"2 json error.innererror ", "3 json value "} <= rows, out
    # A key absent on one side is one row, not one per key below it.
    assert "json error.innererror.code" not in out and "json value.id" not in out


async def test_token_env_is_used_and_never_printed(recorded: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = await run_conform(recorded, "--token-env", "EXPORTJOBS_TEST_UNSET_TOKEN")
    assert code == 2 and "EXPORTJOBS_TEST_UNSET_TOKEN" in err
    # The token is the one sent: one without the export scopes gets the target's 403s.
    monkeypatch.setenv("EXPORTJOBS_TEST_TOKEN", fake_token("User.Read"))
    code, out, _ = await run_conform(recorded, "--token-env", "EXPORTJOBS_TEST_TOKEN")
    assert code == 1 and "403" in out, out
    secret = "opaque-secret-token-6f1c2"
    monkeypatch.setenv("EXPORTJOBS_TEST_TOKEN", secret)
    report = tmp_path / "report.json"
    code, out, err = await run_conform(recorded, "--token-env", "EXPORTJOBS_TEST_TOKEN",
                                       "--report-json", str(report))
    assert code == 0, out
    assert secret not in out + err + report.read_text()
