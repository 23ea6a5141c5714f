"""Files people write or share, made hostile: each is a clear error naming the file and the
line, or a valid load; never another exception, a hang or memory beyond a bound.

Cassettes go through ``exportjobs.addons.matching.load_index`` (load and index: what replay needs);
scenarios and fault plans through the one YAML reader, ``simulator.yamldoc.read_yaml``.
"""

from __future__ import annotations

import os
import threading
import tracemalloc

import pytest

from exportjobs.addons.cassette import CassetteError, load_cassette, new_header
from exportjobs.addons.faultplan import FaultPlanError, load_file
from exportjobs.addons.matching import ReplayIndex, load_index
from exportjobs.addons.serializer import dump_document, load_own_format
from exportjobs.yamldoc import YamlError, read_yaml

HEADER = "--- {format: exportjobs-cassette, version: 1}\n...\n"
URL = "https://graph.microsoft.com/beta/employeeExperience/goals/exportJobs"


# The header and one interaction as the writer lays them out (the fast reader's format);
# the request body (line 12) is filled in.
OWN = (dump_document(new_header("Tue, 01 Dec 2026 12:00:00 GMT", "test")).decode().replace("%", "%%")
       + '---\nrequest:\n  method: "GET"\n  url: "u"\n  json: %s\nresponse:\n  status: 200\n...\n')


def test_the_fast_reader_takes_the_own_format_cases_below():
    assert load_own_format((OWN % '{"n": [[1]]}').encode()) is not None


def _hand(body: str, url: str = URL) -> str:
    """A hand-edited cassette: one interaction whose request body line is ``body`` (line 7)."""
    return HEADER + f"---\nrequest:\n  method: POST\n  url: {url}\n  {body}\nresponse:\n  status: 201\n...\n"


def _bomb(levels: int, indent: str = "") -> str:
    """A billion-laughs mapping: each level lists the previous one ten times (10**levels)."""
    rows = [f"{indent}l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    rows += [f"{indent}l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, levels + 1)]
    return "\n".join(rows) + "\n"


def _refused(path, says: str, line: int | None) -> CassetteError:
    with pytest.raises(CassetteError) as info:
        load_index(path)
    message = str(info.value)
    assert str(path) in message and says in message, message
    assert "; " in message and "\n" not in message  # then what to do, on one line
    if line is not None:
        assert info.value.line == line and f", line {line}:" in message, message
    return info.value


# Each of these loaded, then failed while being indexed or replayed (or never loaded at all).
@pytest.mark.parametrize("content, says, line", [
    (_hand("json: {dueDate: 2026-01-01}"), "a timestamp value", 7),
    (_hand("json: {x: !!binary aGVsbG8=}"), "a binary value", 7),
    (_hand("json: !!set {a, b}"), "a set mapping", 7),
    (_hand("json: &a [1, *a]"), "alias refers to the node that holds it", 7),
    (_hand("json: {}", url='"http://["'), "url that is not a URL", 4),
    (_hand("json: {n: " + "9" * 5000 + "}"), "more than 4000 digits", 7),
    (_hand("json: {1: one}"), "a key that is not text", 7),
    (_hand("json: {<<: {a: 1}}"), "a key that is not text", 7),
    (_hand("json: {x: !!float abc}"), "'abc' is not a valid float", 7),
    (_hand("json: [2026-13-45]"), "a timestamp value", 7),
    (_hand("json: " + "[" * 300 + "]" * 300), "nested too deeply", 7),
    (_hand("json: " + "[" * 5000 + "]" * 5000), "nested", 7),
    (_hand("json:\n" + "".join("  " * (i + 2) + "-\n" for i in range(1500))), "nested", None),
    (_hand('json: "\\ud800"'), "not valid YAML", 7),
    (HEADER + "---\nrequest: {method: GET, url: u}\nresponse: {status: 0}\n...\n", "no response status", 4),
    # the writer's own format (the fast reader): each sends the file to the checking reader
    (OWN % ("[" * 5000 + "]" * 5000), "nested", 12),
    (OWN % ("[" * 250 + "]" * 250), "nested too deeply", 12),
    (OWN % ('{"n": ' + "7" * 5000 + "}"), "more than 4000 digits", 12),
    (OWN % '{"s": "\\udc00"}', "not valid YAML", 12),
])
def test_values_the_matcher_or_replay_could_not_use_are_refused_on_load_with_the_line(tmp_path, content, says, line):
    path = tmp_path / "hostile.yaml"
    path.write_text(content)
    _refused(path, says, line)


def test_an_alias_bomb_in_a_cassette_is_refused_before_it_is_expanded(tmp_path):
    """An 828-byte cassette of this kind passed 3 GB at replay start-up."""
    path = tmp_path / "bomb.yaml"
    path.write_text(HEADER + "---\nrequest:\n  method: POST\n  url: u\n  json:\n" + _bomb(7, "    ")
                    + "response:\n  status: 201\n  json:\n" + _bomb(3, "    ").replace("l", "r") + "...\n")
    assert path.stat().st_size < 1000
    tracemalloc.start()
    try:
        error = _refused(path, "once its YAML aliases are written out", None)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert 7 <= error.line <= 13  # the level that passes the budget (10**6 values), not line 0
    assert peak < 20 * 1024 * 1024


def test_a_small_alias_in_a_hand_edited_cassette_still_loads(tmp_path):
    path = tmp_path / "alias.yaml"
    path.write_text(HEADER + "---\nrequest: {method: GET, url: u, headers: &h [[A, b]]}\n"
                    "response: {status: 200, headers: *h}\n...\n")
    loaded, index = load_index(path)
    assert loaded.interactions[0]["response"]["headers"] == [["A", "b"]] and index.size == 1


@pytest.mark.parametrize("kind, says, line", [
    ("utf16", "is UTF-16 text", None),
    ("utf16-no-bom", "NUL character", 1),
    ("binary", "NUL character", 1),
    ("garbage", "is not UTF-8 text", 2),
    ("latin1", "is not UTF-8 text", 7),
    ("directory", "is a folder", None),
    ("missing", "no such file", None),
])
def test_files_that_are_not_cassettes_are_named_as_what_they_are(tmp_path, kind, says, line):
    path = tmp_path / "odd.yaml"
    text = _hand('json: {"name": "café"}')
    if kind == "utf16":
        path.write_bytes(text.encode("utf-16"))
    elif kind == "utf16-no-bom":
        path.write_bytes(text.encode("utf-16-le"))
    elif kind == "binary":
        path.write_bytes(bytes(range(256)) * 8)
    elif kind == "garbage":
        path.write_bytes(bytes(range(1, 256)) * 8)
    elif kind == "latin1":
        path.write_bytes(text.encode("latin-1"))
    elif kind == "directory":
        path.mkdir()
    _refused(path, says, line)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are a POSIX thing")
def test_a_fifo_is_refused_at_once_not_waited_on(tmp_path):
    """Opening a FIFO for reading waits for a writer: start-up used to hang forever."""
    path = tmp_path / "pipe.yaml"
    os.mkfifo(path)
    outcome: list[BaseException] = []

    def load() -> None:
        try:
            load_index(path)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome.append(exc)

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    worker.join(20)
    if worker.is_alive():  # release the reader so the thread ends, then fail
        with open(path, "wb"):
            pass
        pytest.fail("loading a FIFO waited for a writer")
    assert len(outcome) == 1 and isinstance(outcome[0], CassetteError), outcome
    assert "not a regular file" in str(outcome[0])


def _recorded(count: int) -> bytes:
    """A cassette as the writer lays it out: a header, then ``count`` interactions."""
    blob = dump_document(new_header("Tue, 01 Dec 2026 12:00:00 GMT", "test"))
    for n in range(1, count + 1):
        blob += dump_document({
            "interaction": n, "started": n / 10,
            "request": {"method": "POST", "url": URL, "headers": [["Content-Type", "application/json"]],
                        "json": {"explorerViewId": str(n), "deep": [[{"a": None}]]}},
            "response": {"status": 201 if n == 1 else 409, "headers": [["request-id", f"r{n}"]],
                         "text": "a\r\nb"}})
    return blob


def test_crlf_line_endings_read_the_same_through_the_fast_reader(tmp_path):
    lf, crlf = tmp_path / "lf.yaml", tmp_path / "crlf.yaml"
    data = _recorded(5)
    lf.write_bytes(data)
    crlf.write_bytes(data.replace(b"\n", b"\r\n"))
    assert load_own_format(crlf.read_bytes()) == load_own_format(data) is not None
    assert load_cassette(crlf).interactions == load_cassette(lf).interactions
    assert load_cassette(crlf).torn is None
    # and a CRLF file with a torn last document: dropped and reported, as with LF
    crlf.write_bytes(data.replace(b"\n", b"\r\n") + b"---\r\ninteraction: 6\r\nrequ")
    loaded = load_cassette(crlf)
    assert len(loaded.interactions) == 5 and "incomplete (25 bytes" in loaded.torn


def test_crlf_hand_edited_yaml_and_a_torn_tail_cut_inside_a_character_load(tmp_path):
    path = tmp_path / "hand.yaml"
    text = HEADER + "---\n# edited\nrequest:\n  method: GET\n  url: u\nresponse:\n  status: 200\n  text: |\n    é\n...\n"
    path.write_bytes(text.replace("\n", "\r\n").encode() + "---\r\nrequest: é".encode()[:-1])
    loaded = load_cassette(path)
    assert loaded.interactions[0]["response"]["text"] == "é\n" and loaded.torn


async def test_a_recorded_cassette_converted_to_crlf_replays_the_same(tmp_path, proxies):
    """git's autocrlf turns a shared cassette's line ends into CRLF: it must still replay."""
    import aiohttp

    from tests.support.proxy import COLLECTION, RACE_PAIR, ProxiedClient, auth_headers, record_race

    cassette, _ = await record_race(tmp_path, proxies)
    crlf = tmp_path / "crlf.yaml"
    crlf.write_bytes(cassette.read_bytes().replace(b"\n", b"\r\n"))
    got = {}
    for name, path in (("lf", cassette), ("crlf", crlf)):
        player = await proxies("replay", path)
        async with aiohttp.ClientSession() as session:
            client = ProxiedClient(session, player.url, "http://graph.microsoft.com")
            got[name] = [await client.call("POST", COLLECTION, json=RACE_PAIR, headers=auth_headers())
                         for _ in range(11)]
    assert [r.status for r in got["crlf"]] == [r.status for r in got["lf"]]
    assert sorted(r.status for r in got["crlf"][:10]) == [201] + [409] * 9
    assert [r.comparable() for r in got["crlf"]] == [r.comparable() for r in got["lf"]]


def test_loaded_means_indexed_for_the_interactions_a_cassette_may_hold(tmp_path):
    """What load_cassette returns, ReplayIndex takes without error (the same check runs on
    generated files in test_loaders_properties)."""
    path = tmp_path / "ok.yaml"
    path.write_text(_hand('json: {"a": [1.5, -0.0, .nan, .inf, null, true, "x"], "b": {"c": []}}'))
    loaded = load_cassette(path)
    assert ReplayIndex(loaded.interactions).size == 1


# --- scenarios and fault plans: the one YAML reader -----------------------------------------


def test_an_alias_bomb_in_a_scenario_is_refused_with_its_line_before_it_is_expanded():
    """A 10-level bomb ran the scenario loader out of memory."""
    text = "name: bomb\nvariables:\n" + _bomb(10, "  ") + "steps: []\n"
    tracemalloc.start()
    try:
        with pytest.raises(YamlError) as info:
            read_yaml(text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "once its YAML aliases are written out" in info.value.message
    assert 3 <= info.value.line <= 13
    assert peak < 20 * 1024 * 1024


def test_an_alias_bomb_or_deep_nesting_in_a_fault_plan_names_file_and_line(tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text("seed: 1\nfaults:\n- kind: create\n  status: 429\n  note:\n" + _bomb(8, "    "))
    with pytest.raises(FaultPlanError) as info:
        load_file(str(plan))
    assert f"{plan}:" in str(info.value) and "aliases" in str(info.value)
    line = int(str(info.value).split(f"{plan}:")[1].split(":")[0])
    assert 6 <= line <= 14
    plan.write_text("seed: 1\nfaults:\n- kind: create\n  note:\n" + "    - \n" * 1 + "      " + "[" * 5000 + "\n")
    with pytest.raises(FaultPlanError) as info:
        load_file(str(plan))
    assert f"{plan}:6: " in str(info.value) and "nested too deeply" in str(info.value)


@pytest.mark.parametrize("text, line", [
    ("a: 1\nb:\n" + "".join("  " * (i + 1) + "- x\n" if False else "  " * (i + 1) + "-\n" for i in range(400)), None),
    ("a: 1\nb: " + "[" * 5000 + "]" * 5000 + "\n", 2),
    ("a: 1\nb: " + "{x: " * 300 + "1" + "}" * 300 + "\n", 2),
])
def test_deep_nesting_in_yaml_people_write_names_the_line(text, line):
    with pytest.raises(YamlError) as info:
        read_yaml(text)
    assert "nested too deeply" in info.value.message
    assert info.value.line == line if line is not None else info.value.line > 2


@pytest.mark.parametrize("text, says, line", [
    ("a: 1\nname: !!float abc\n", "'abc' is not a valid float", 2),
    ("a: 1\nn: !!int 12x\n", "'12x' is not a valid int", 2),
    ("a: 1\nd: 2026-13-45\n", "not a valid timestamp", 2),
    ("a: 1\nn: " + "1" * 5000 + "\n", "not a valid int", 2),
])
def test_a_value_its_tag_cannot_build_is_a_yaml_error_with_the_line(text, says, line):
    with pytest.raises(YamlError) as info:
        read_yaml(text)
    assert says in info.value.message and info.value.line == line
