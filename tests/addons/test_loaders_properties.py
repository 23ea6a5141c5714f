"""Property-based: the loaders give a valid load or their own clear error, for any input.

- Cassettes built from generated interactions by the writer (``dump_document``) load, in LF
  and CRLF, to the same interactions, and index.
- Those bytes mutated (flips, cuts, splices of hostile YAML), and generated YAML bodies in
  a hand-edited cassette: ``load_index`` succeeds or raises ``CassetteError``, nothing else,
  within a memory bound.
- Generated scenario and fault-plan YAML through ``read_yaml``: a document or ``YamlError``.

Bounded: few examples, no deadline (the machine is shared), small inputs.
"""

from __future__ import annotations

import tracemalloc

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exportjobs.addons.cassette import CassetteError, new_header
from exportjobs.addons.matching import ReplayIndex, load_index
from exportjobs.addons.serializer import dump_document
from exportjobs.yamldoc import YamlDocument, YamlError, read_yaml

SETTINGS = settings(max_examples=60, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
MEMORY_BOUND = 64 * 1024 * 1024  # far above what a few-kB input may honestly need

# Text the writer carries faithfully (a lone surrogate is written as U+FFFD, on purpose).
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | TEXT
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12)
PATHS = st.sampled_from([
    "/beta/employeeExperience/goals/exportJobs", "/v1.0/employeeExperience/goals/exportJobs/AbC",
    "/beta/employeeExperience/goals/exportJobs/x%2Fy/content", "/other", "/"])
QUERY = st.lists(st.tuples(st.sampled_from(["$filter", "a", "b"]), TEXT), max_size=2)
HEADERS = st.lists(st.lists(TEXT, min_size=2, max_size=2), max_size=3)


@st.composite
def messages(draw, request: bool) -> dict:
    body = draw(st.sampled_from(["json", "text", "base64", None]))
    message: dict = {}
    if request:
        query = "&".join(f"{k}={v}" for k, v in draw(QUERY))
        message["method"] = draw(st.sampled_from(["GET", "POST", "patch"]))
        message["url"] = "https://graph.microsoft.com" + draw(PATHS) + (f"?{query}" if query else "")
    else:
        message["status"] = draw(st.integers(100, 599))
    message["headers"] = draw(HEADERS)
    if body == "json":
        message["json"] = draw(JSON)
    elif body == "text":
        message["text"] = draw(TEXT)
    elif body == "base64":
        message["base64"] = draw(st.sampled_from(["", "/wA=", "aGVsbG8="]))
    return message


@st.composite
def interactions(draw) -> list[dict]:
    count = draw(st.integers(0, 4))
    return [{"interaction": n, "started": n / 10, "request": draw(messages(True)),
             "response": draw(messages(False))} for n in range(1, count + 1)]


def _cassette(items: list[dict]) -> bytes:
    blob = dump_document(new_header("Tue, 01 Dec 2026 12:00:00 GMT", "test"))
    return blob + b"".join(dump_document(item) for item in items)


def _load_or_refuse(path) -> None:
    """``load_index`` on ``path``: a load or a CassetteError naming the file, nothing else,
    and within the memory bound (a YAML alias bomb expanded would pass it by far)."""
    tracemalloc.start()
    try:
        try:
            loaded, index = load_index(path)
        except CassetteError as exc:
            assert str(path) in str(exc) and "\n" not in str(exc)
        else:
            assert index.size == len(loaded.interactions)
            for item in loaded.interactions:  # every loaded request can be looked up
                index.take(item["request"])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_BOUND, f"{peak:,} bytes for a {path.stat().st_size:,}-byte file"


@SETTINGS
@given(items=interactions(), crlf=st.booleans())
def test_written_cassettes_load_as_written_and_index(tmp_path_factory, items, crlf):
    path = tmp_path_factory.mktemp("p") / "c.yaml"
    data = _cassette(items)
    path.write_bytes(data.replace(b"\n", b"\r\n") if crlf else data)
    loaded, index = load_index(path)
    assert loaded.interactions == items and loaded.torn is None
    assert index.size == len(items)
    assert ReplayIndex(loaded.interactions).size == len(items)


HOSTILE = st.sampled_from([
    b"&a", b"*a", b"!!binary aGk=", b"!!set {a}", b"2026-01-01", b"!!float x", b"!!int y",
    b"<<: *a", b"[" * 300, b"{" * 3000, b"9" * 5000, b"\\ud800", b"\"\\ud800\"", b"\r\n", b"\r",
    b"\x00", b"\xff\xfe", b"\xe9", b"...\n", b"---\n", b"\n...\n", b"- ", b": ", b"? ", b"%YAML 1.1\n",
    b"!!python/object:os.system", b"\t", b"'", b"\"", b"#", b"|\n", b">-\n", b"\xef\xbb\xbf",
])


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(_cassette(draw(interactions())))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["flip", "cut", "splice", "truncate"]))
        if kind == "flip" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[at:at + draw(st.integers(1, 20))]
        elif kind == "splice":
            data[at:at] = draw(HOSTILE)
        else:
            del data[at:]
    return bytes(data)


@SETTINGS
@given(data=mutated())
def test_mutated_cassettes_load_or_say_what_is_wrong(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("p") / "c.yaml"
    path.write_bytes(data)
    _load_or_refuse(path)


@SETTINGS
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_load_or_say_what_is_wrong(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("p") / "c.yaml"
    path.write_bytes(data)
    _load_or_refuse(path)


# Generated YAML: scalars of every kind PyYAML resolves or is told (tags), flow and block
# collections, anchors and aliases (so cycles and bombs), deep nesting.
SCALARS = st.sampled_from([
    "1", "-0", "0x1F", "0o17", "1_000", "1:30", "1.5", ".inf", "-.Inf", ".nan", "1e5", "yes", "no",
    "~", "null", "''", '"\\ud800"', '"\\x00"', "2026-01-01", "2026-13-45", "2001-12-14t21:59:43.10-05:00",
    "!!binary aGVsbG8=", "!!binary '***'", "!!float abc", "!!int 12x", "!!str 1", "!!bool maybe",
    "!!timestamp x", "!!null a", "9" * 4400, "!!int " + "9" * 4400, "abc", "'quoted'", "é",
])


@st.composite
def yaml_values(draw, depth: int = 0, anchors: list[str] | None = None) -> str:
    anchors = [] if anchors is None else anchors
    kind = draw(st.sampled_from(["scalar", "scalar", "alias", "flow-list", "flow-map", "set", "omap", "deep"]
                                if depth < 3 else ["scalar", "alias"]))
    if kind == "alias":
        return f"*{draw(st.sampled_from(anchors))}" if anchors else draw(SCALARS)
    if kind == "deep":
        n = draw(st.sampled_from([5, 199, 201, 260]))  # deeper: test_loaders_hostile
        return "[" * n + "]" * n
    if kind == "scalar":
        text = draw(SCALARS)
    elif kind == "set":
        text = "!!set {a, b}"
    elif kind == "omap":
        text = "!!omap [a: 1]"
    else:
        items = []
        for _ in range(draw(st.integers(0, 4))):
            if draw(st.booleans()):  # an anchor here, which later items may name
                name = f"a{len(anchors)}"
                anchors.append(name)
                items.append(f"&{name} {draw(yaml_values(depth + 1, anchors))}")
            else:
                items.append(draw(yaml_values(depth + 1, anchors)))
        if kind == "flow-list":
            text = "[" + ", ".join(items) + "]"
        else:
            keys = draw(st.lists(st.sampled_from(["k", "1", "<<", "? [x]", "2026-01-01", "'k'"]),
                                 min_size=len(items), max_size=len(items)))
            text = "{" + ", ".join(f"{k}: {v}" for k, v in zip(keys, items, strict=True)) + "}"
    return text


@SETTINGS
@given(body=yaml_values(), field=st.sampled_from(["json", "text", "base64", "headers", "method", "url"]),
       crlf=st.booleans())
def test_hand_edited_cassettes_with_any_yaml_value_load_or_say_what_is_wrong(tmp_path_factory, body,
                                                                               field, crlf):
    path = tmp_path_factory.mktemp("p") / "c.yaml"
    text = ("--- {format: exportjobs-cassette, version: 1}\n...\n---\nrequest:\n  method: GET\n"
            f"  url: u\n  {field}: &top {body}\nresponse:\n  status: 200\n  json: *top\n...\n")
    path.write_bytes((text.replace("\n", "\r\n") if crlf else text).encode())
    _load_or_refuse(path)


@st.composite
def plans(draw) -> str:
    """Scenario- and fault-plan-shaped YAML, block style, with generated values."""
    rows = [f"name: {draw(yaml_values())}", "steps:"]
    for _ in range(draw(st.integers(0, 3))):
        rows.append(f"- request: {draw(yaml_values())}")
        rows.append(f"  {draw(st.sampled_from(['path', 'count', 'status', 'path']))}: {draw(yaml_values())}")
    rows.append(f"faults: {draw(yaml_values())}")
    return "\n".join(rows) + "\n"


@SETTINGS
@given(text=plans())
def test_scenario_and_fault_plan_yaml_is_a_document_or_a_yaml_error(text):
    tracemalloc.start()
    try:
        try:
            document = read_yaml(text)
        except YamlError as exc:
            assert exc.message and exc.line >= 0
        else:
            assert isinstance(document, YamlDocument)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_BOUND


@SETTINGS
@given(text=st.text(max_size=200))
def test_any_text_is_a_document_or_a_yaml_error(text):
    try:
        read_yaml(text)
    except YamlError:
        pass


@SETTINGS
@given(value=yaml_values(), key=st.sampled_from(["kind", "status", "rate", "nth", "latency",
                                                  "retry_after", "method", "note"]))
def test_fault_plan_files_load_or_name_the_problem(tmp_path_factory, value, key):
    from exportjobs.addons.faultplan import FaultPlanError, load_file

    path = tmp_path_factory.mktemp("p") / "plan.yaml"
    path.write_text(f"seed: 1\nfaults:\n- kind: create\n  status: 429\n  {key}: {value}\n")
    try:
        load_file(str(path))
    except FaultPlanError as exc:
        assert str(path) in str(exc)
