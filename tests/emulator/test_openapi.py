"""The shipped OpenAPI description matches what the emulator really sends.

Every operation is driven to every status the description lists (but the ones marked
``x-emulator-produces: false``); each real response's status must be listed for its
operation, its body must validate against the listed schema (jsonschema, draft 2020-12,
as OpenAPI 3.1 uses), and its required headers must be there.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

import aiohttp
import pytest
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from exportjobs.simulator.emulator.auth import READ, fake_token
from tests.support.emulator import COLLECTION, new_pair

SPEC_URI = "urn:exportjobs:openapi"


def load_spec() -> dict[str, Any]:
    text = resources.files("exportjobs.simulator.emulator").joinpath("openapi.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


SPEC = load_spec()
REGISTRY = Registry().with_resource(SPEC_URI, Resource.from_contents(SPEC, DRAFT202012))


def pointer(*parts: str) -> str:
    return "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    """Follow a local ``$ref`` (siblings such as ``description`` override, as in 3.1)."""
    while "$ref" in node:
        target: Any = SPEC
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def validator(schema_pointer: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": SPEC_URI + schema_pointer}, registry=REGISTRY,
                                format_checker=Draft202012Validator.FORMAT_CHECKER)


def operations() -> dict[str, tuple[str, str, dict[str, Any]]]:
    """operationId -> (method, path template, operation)."""
    found = {}
    for path, item in SPEC["paths"].items():
        for method, op in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                found[op["operationId"]] = (method.upper(), path, op)
    return found


OPERATIONS = operations()


def operation_for(method: str, path: str) -> str:
    for op_id, (op_method, template, _) in OPERATIONS.items():
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
        if op_method == method and re.match(pattern, path):
            return op_id
    raise AssertionError(f"no operation in the description for {method} {path}")


def documented_statuses(op_id: str) -> set[int]:
    responses = OPERATIONS[op_id][2]["responses"]
    return {int(s) for s, r in responses.items()
            if resolve(r).get("x-emulator-produces", True) is not False}


# --- the description itself ----------------------------------------------------------------


def test_it_is_openapi_3_1_with_the_five_operations():
    assert SPEC["openapi"].startswith("3.1.")
    assert set(OPERATIONS) == {"createExportJob", "listExportJobs", "countExportJobs",
                               "getExportJob", "getExportJobContent"}


def test_every_schema_is_valid_json_schema_and_every_ref_resolves():
    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                resolve(node)  # raises KeyError if it points nowhere
            if where.endswith("/schema") or ("/schemas/" in where and where.count("/") == 3):
                Draft202012Validator.check_schema(node)
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}/{i}")

    walk(SPEC, "")


def test_it_ships_with_the_package():
    assert resources.files("exportjobs.simulator.emulator").joinpath("openapi.yaml").is_file()


# --- real responses against it ---------------------------------------------------------------


class Checker:
    """Checks each real response against the description and notes what it covered."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        self.covered: set[tuple[str, int]] = set()

    async def call(self, method: str, path: str, *, token: str | None = "opaque",
                   expect: int, **kwargs: Any) -> Any:
        headers = kwargs.pop("headers", {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        async with self.session.request(method, path, headers=headers, **kwargs) as r:
            raw = await r.read()
            status, response_headers = r.status, r.headers
        assert status == expect, (method, path, status, raw[:300])
        op_id = operation_for(method, path.partition("?")[0])
        self.check(op_id, status, response_headers, raw)
        self.covered.add((op_id, status))
        return json.loads(raw) if raw.startswith(b"{") else raw

    def check(self, op_id: str, status: int, headers: Any, raw: bytes) -> None:
        method, template, op = OPERATIONS[op_id]
        assert str(status) in op["responses"], f"{op_id} sent {status}, not in the description"
        response = resolve(op["responses"][str(status)])
        media = headers["Content-Type"].split(";")[0].strip()
        assert media in response["content"], f"{op_id} {status}: {media} not described"
        if media == "text/plain":
            errors = list(Draft202012Validator(resolve(response["content"][media]["schema"]))
                          .iter_errors(raw.decode()))
            assert not errors, f"{op_id} {status}: {[e.message for e in errors]}"
        if media == "application/json":
            body = json.loads(raw)
            where = self.schema_pointer(op_id, template, method, status, media)
            errors = sorted(validator(where).iter_errors(body), key=str)
            assert not errors, f"{op_id} {status}: {[e.message for e in errors]}"
        for name, header in response.get("headers", {}).items():
            header = resolve(header)
            if header.get("required"):
                assert name in headers, f"{op_id} {status}: header {name} missing"
            if name in headers:
                value: Any = headers[name]
                if resolve(header["schema"]).get("type") == "integer":
                    value = int(value)
                errors = list(Draft202012Validator(
                    resolve(header["schema"]), format_checker=Draft202012Validator.FORMAT_CHECKER
                ).iter_errors(value))
                assert not errors, f"{op_id} {status}: header {name}={value!r}: {errors}"

    @staticmethod
    def schema_pointer(op_id: str, template: str, method: str, status: int, media: str) -> str:
        raw = SPEC["paths"][template][method.lower()]["responses"][str(status)]
        if "$ref" in raw:  # a shared response: its schema lives under components
            return raw["$ref"] + pointer("content", media, "schema")[1:]
        return pointer("paths", template, method.lower(), "responses", str(status), "content",
                       media, "schema")


@pytest.fixture
async def checker(emulator):
    async with aiohttp.ClientSession(emulator.url) as session:
        yield Checker(session)


async def test_real_responses_match_the_description(emulator, checker):
    c = checker
    no_scope = fake_token("")
    # create
    created = await c.call("POST", COLLECTION, json=(pair := new_pair()), expect=201)
    job_path = f"{COLLECTION}/{created['id']}"
    await c.call("POST", COLLECTION, json=pair, expect=409)
    await c.call("POST", COLLECTION, json={"goalsOrganizationId": "x"}, expect=400)
    await c.call("POST", COLLECTION, token=None, json=new_pair(), expect=401)
    await c.call("POST", COLLECTION, token=fake_token(READ), json=new_pair(), expect=403)
    await c.call("POST", COLLECTION, data=b"{" + b" " * (2 << 20) + b"}",
                 headers={"Content-Type": "application/json"}, expect=413)
    await c.call("POST", COLLECTION, data=b"x", headers={"Content-Type": "text/plain"}, expect=415)
    await c.call("POST", COLLECTION, json=new_pair(), headers={"Expect": "nope"}, expect=417)
    async with c.session.put("/_emulator/organizations", json={"known": [new_pair()["explorerViewId"]]}):
        pass
    await c.call("POST", COLLECTION, json=new_pair(), expect=404)
    async with c.session.put("/_emulator/organizations", json={"known": None}):
        pass
    # list
    await c.call("GET", COLLECTION, expect=200)
    await c.call("GET", f"{COLLECTION}?$select=id,status", expect=200)
    await c.call("GET", f"{COLLECTION}?$select=id,lastActionDateTime,statusDetail&$count=true", expect=200)
    await c.call("GET", f"{COLLECTION}?$filter=explorerViewId eq 'x'", expect=400)
    await c.call("GET", f"{COLLECTION}?$top=1", expect=400)
    await c.call("GET", COLLECTION, token=None, expect=401)
    await c.call("GET", COLLECTION, token=no_scope, expect=403)
    # count
    assert int(await c.call("GET", f"{COLLECTION}/$count", expect=200)) >= 1
    await c.call("GET", f"{COLLECTION}/$count?$filter=nope", expect=400)
    await c.call("GET", f"{COLLECTION}/$count", token=None, expect=401)
    await c.call("GET", f"{COLLECTION}/$count", token=no_scope, expect=403)
    # get one, while pending (Retry-After) and after
    await c.call("GET", job_path, expect=200)
    await c.call("GET", f"{job_path}?$select=id", expect=200)
    await c.call("GET", f"{COLLECTION}/not-a-job-key", expect=400)
    await c.call("GET", f"{COLLECTION}/eyJfdHlwZSI6IkV4cG9ydEpvYiIsImlkIjoiMCJ9", expect=404)
    await c.call("GET", job_path, token=None, expect=401)
    await c.call("GET", job_path, token=no_scope, expect=403)
    # content
    await c.call("GET", f"{job_path}/content", expect=400)
    await c.call("GET", f"{job_path}/content", token=None, expect=401)
    await c.call("GET", f"{job_path}/content", token=no_scope, expect=403)
    await c.call("GET", f"{COLLECTION}/eyJfdHlwZSI6IkV4cG9ydEpvYiIsImlkIjoiMCJ9/content", expect=404)
    async with c.session.post("/_emulator/clock/advance", json={"seconds": 60}):
        pass
    done = await c.call("GET", job_path, expect=200)
    assert done["status"] == "succeeded"
    await c.call("GET", COLLECTION, expect=200)  # a succeeded job in a list
    csv = await c.call("GET", f"{job_path}/content", expect=200)
    assert csv.startswith(b"Id,")

    documented = {(op_id, s) for op_id in OPERATIONS for s in documented_statuses(op_id)}
    assert c.covered == documented, (
        f"described but never seen: {sorted(documented - c.covered)}; "
        f"seen but not described: {sorted(c.covered - documented)}")
