"""The cassette reader and writer: round trips, group commit, torn tails, bad files."""

from __future__ import annotations

import asyncio

import pytest
import yaml

from exportjobs.addons.cassette import (
    CassetteError,
    body_bytes,
    body_fields,
    load_cassette,
    new_header,
    request_doc,
    response_doc,
)
from exportjobs.addons.persister import CassetteWriter
from exportjobs.addons.redaction import Redactor

CSV = "id,name\r\n1,\"comma, quoted\"\r\n2,ünïcödé\n---\n...\n  indented\n"


def _interaction(n: int) -> dict:
    return {
        "interaction": n, "started": n / 10, "duration": 0.01, "concurrent": [n + 1],
        "request": request_doc("POST", f"https://graph.microsoft.com/beta/x?n={n}",
                               [("Content-Type", "application/json")],
                               b'{"b": 1, "a": [true, null, 1.5]}', Redactor()),
        "response": response_doc(200, [("Content-Type", "text/csv"), ("Content-Length", "9")],
                                 CSV.encode(), Redactor()),
    }


async def _write(path, count: int) -> None:
    writer = CassetteWriter(path, new_header("2026-01-01T00:00:00Z", "test"))
    await asyncio.gather(*(writer.append(_interaction(n)) for n in range(1, count + 1)))
    assert writer.written == count
    await writer.close()


async def test_round_trip_keeps_every_interaction_and_body(tmp_path):
    path = tmp_path / "c.yaml"
    await _write(path, 25)  # concurrent appends share fsyncs (group commit)
    loaded = load_cassette(path)
    assert loaded.torn is None and loaded.header["format"] == "exportjobs-cassette"
    assert sorted(i["interaction"] for i in loaded.interactions) == list(range(1, 26))
    first = loaded.interactions[0]
    assert first["request"]["json"] == {"b": 1, "a": [True, None, 1.5]}
    assert body_bytes(first["response"]) == CSV.encode()
    assert "Content-Length" not in dict(first["response"]["headers"])


def test_bodies_are_json_text_or_base64():
    r = Redactor()
    assert body_fields(b"", "application/json", r) == {}
    assert body_fields(b'{"a":1}', "application/json", r) == {"json": {"a": 1}}
    assert body_fields(b'{"a":1}', None, r) == {"json": {"a": 1}}  # JSON-looking, no type
    assert body_fields(b"{not json", "application/json", r) == {"text": "{not json"}
    assert body_fields(b"\xff\x00", "application/octet-stream", r) == {"base64": "/wA="}
    assert body_bytes({"base64": "/wA="}) == b"\xff\x00"


async def test_a_torn_last_document_is_dropped_and_reported(tmp_path):
    path = tmp_path / "c.yaml"
    await _write(path, 3)
    whole = path.read_bytes()
    last_start = whole.rindex(b"\n---\n") + 1
    # cut the last document at every line boundary and mid-line: always detected
    cuts = [i + 1 for i in range(last_start, len(whole) - 1) if whole[i:i + 1] == b"\n"]
    cuts += [last_start + 7, len(whole) - 2]
    for cut in cuts:
        path.write_bytes(whole[:cut])
        loaded = load_cassette(path)
        assert len(loaded.interactions) == 2, cut
        assert loaded.torn and "incomplete" in loaded.torn


async def test_the_torn_check_has_teeth(tmp_path):
    """A cut at a line boundary still parses as YAML: only the end marker reveals it."""
    path = tmp_path / "c.yaml"
    await _write(path, 2)
    whole = path.read_bytes()
    cut = whole.rindex(b"\nresponse:") + 1
    naive = [d for d in yaml.safe_load_all(whole[:cut]) if d is not None]
    assert len(naive) == 3 and "response" not in naive[-1]  # a plain loader is fooled
    path.write_bytes(whole[:cut])
    assert len(load_cassette(path).interactions) == 1


@pytest.mark.parametrize("content, problem", [
    (None, "no such file"),
    (b"", "empty"),
    (b"--- {a: [\n...\n", "not valid YAML"),
    (b"--- {a: 1}\n...\n", "not an exportjobs cassette"),
    (b"--- {format: exportjobs-cassette, version: 99}\n...\n", "format version 99"),
    (b"--- {format: exportjobs-cassette, version: 1}\n...\n--- {request: {}}\n...\n",
     "document 2 has no request"),
])
def test_unusable_cassettes_say_which_file_and_what_to_do(tmp_path, content, problem):
    path = tmp_path / "bad.yaml"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CassetteError) as caught:
        load_cassette(path)
    message = str(caught.value)
    assert str(path) in message and problem in message and "\n" not in message
    assert "; " in message  # then what to do


def test_the_documented_example_is_a_valid_cassette(tmp_path):
    import re
    from pathlib import Path

    doc = (Path(__file__).parent.parent.parent / "docs" / "cassette.md").read_text()
    path = tmp_path / "example.yaml"
    path.write_text(re.search(r"```yaml\n(.*?)```", doc, re.S).group(1))
    loaded = load_cassette(path)
    assert loaded.torn is None and [i["response"]["status"] for i in loaded.interactions] == [201, 409]


def test_every_value_reads_back_as_written(tmp_path):
    """Values are written as JSON-syntax YAML: check the cases where YAML and JSON disagree."""
    import math

    from exportjobs.addons.serializer import dump_document

    tricky = ["yes", "no", "null", "~", "1.0", "0x1F", "---", "...", "a: b # c", "\x7f\x85\u2028\ufeff",
              "tab\there", "😀 é", "", " lead", "trail ", "\\", '"']
    data = {"s": tricky, "n": [0, -1, 1.5, 1e20, 1e-7, -0.0, 12345678901234567890, True, False, None],
            "weird key: #1": {"@odata.type": "x"}}
    doc = {"interaction": 1, "request": {"method": "GET", "url": "u", "headers": [["K", v] for v in tricky],
                                         "json": data},
           "response": {"status": 200, "headers": [], "text": "\r\n".join(tricky)}}
    loaded = yaml.load(dump_document(doc), Loader=yaml.CSafeLoader if hasattr(yaml, "CSafeLoader") else yaml.SafeLoader)
    assert loaded == doc
    nan = yaml.safe_load(dump_document({"json": {"x": float("nan")}}))
    assert math.isnan(nan["json"]["x"])


async def test_the_fast_reader_agrees_with_yaml_and_hand_edited_files_still_load(tmp_path):
    from exportjobs.addons.serializer import dump_document, load_own_format, load_yaml

    path = tmp_path / "c.yaml"
    await _write(path, 5)
    with path.open("ab") as f:  # plus every awkward value the writer can meet
        f.write(dump_document({"interaction": 6, "concurrent": [], "request": {
            "method": "GET", "url": "u", "headers": [], "json": {"f": [1.5e20, 1.5e-7, 0.5, -0.0], "s": "\x85\u2028\x7f", "k: v": None}},
            "response": {"status": 204, "headers": [["A", "b: c"]]}}))
    data = path.read_bytes()
    fast = load_own_format(data)
    assert fast is not None and fast == [doc for _, doc in load_yaml(data)[0]]
    # a value only PyYAML can write (NaN) sends the whole file to the YAML reader
    with path.open("ab") as f:
        f.write(dump_document({"interaction": 7, "request": {"method": "GET", "url": "u",
                                                             "json": [float("nan"), 1e20]},
                               "response": {"status": 200}}))
    assert load_own_format(path.read_bytes()) is None
    nan, big = load_cassette(path).interactions[-1]["request"]["json"]
    assert nan != nan and big == 1e20

    hand = tmp_path / "hand.yaml"  # block style, plain scalars, comments: the YAML reader's job
    hand.write_text("--- {format: exportjobs-cassette, version: 1}\n...\n---\n# edited\n"
                    "request:\n  method: GET\n  url: http://x/beta/employeeExperience/goals/exportJobs\n"
                    "response:\n  status: 200\n  text: |\n    line one\n    line two\n...\n")
    assert load_own_format(hand.read_bytes()) is None
    loaded = load_cassette(hand)
    assert loaded.interactions[0]["response"]["text"] == "line one\nline two\n"


@pytest.mark.parametrize(
    "edit, says",
    [
        ("headers: [[a]]", "headers are not a list of [name, value] pairs"),
        ("base64: '***'", "base64 body is not valid base64"),
        ("interaction: one", "interaction number that is not a whole number"),
    ],
)
def test_hand_edited_recordings_that_replay_could_not_send_are_refused_on_load(tmp_path, edit, says):
    from exportjobs.addons.cassette import CassetteError, load_cassette

    bad = tmp_path / "bad.yaml"
    key, _, value = edit.partition(": ")
    where = "response" if key != "interaction" else None
    doc = {"interaction": 1, "request": {"method": "GET", "url": "https://graph.microsoft.com/x"},
           "response": {"status": 200}}
    parsed = yaml.safe_load(f"{key}: {value}")
    (doc if where is None else doc["response"]).update(parsed)
    bad.write_text("---\nformat: exportjobs-cassette\nversion: 1\n...\n---\n"
                   + yaml.safe_dump(doc) + "...\n")
    with pytest.raises(CassetteError) as info:
        load_cassette(bad)
    assert says in str(info.value)


async def test_the_writer_commits_in_groups_tells_every_waiter_and_stops_its_thread(tmp_path):
    """Appends made while a write is under way go together in the next one (one fsync);
    a failed write fails every append of its batch, and only those; close stops the thread."""
    import threading

    writer = CassetteWriter(tmp_path / "c.yaml", new_header("2026-01-01T00:00:00Z", "test"))
    real, batches, gate = writer._write, [], threading.Event()

    def write(blob: bytes) -> None:  # the writer's thread: the first write waits for the gate
        batches.append(blob.count(b"\n...\n"))
        gate.wait(10)
        if len(batches) == 2:
            raise OSError(28, "No space left on device")
        real(blob)

    writer._write = write
    first = asyncio.ensure_future(writer.append(_interaction(1)))
    while not batches:
        await asyncio.sleep(0.001)
    rest = [asyncio.ensure_future(writer.append(_interaction(n))) for n in range(2, 6)]
    await asyncio.sleep(0.05)
    gate.set()
    outcomes = await asyncio.gather(first, *rest, return_exceptions=True)
    assert batches == [1, 4]
    assert outcomes[0] is None
    assert all(isinstance(o, OSError) and o.errno == 28 for o in outcomes[1:]), outcomes
    await writer.append(_interaction(6))
    assert batches == [1, 4, 1] and writer.written == 2
    threads = [t for t in threading.enumerate() if t.name.startswith("cassette writer")]
    await writer.close()
    for thread in threads:
        thread.join(5)
        assert not thread.is_alive()
    assert [i["interaction"] for i in load_cassette(tmp_path / "c.yaml").interactions] == [1, 6]
