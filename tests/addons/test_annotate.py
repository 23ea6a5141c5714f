"""Every outcome of the addons is written on the flow (``flow.marked``, ``flow.comment``),
driven through the real addons with mitmproxy's test helpers (``taddons``, ``tflow``)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from mitmproxy import http
from mitmproxy.test import taddons, tflow
from mitmproxy.utils.emoji import emoji

from exportjobs.addons import annotate
from exportjobs.addons.cassette import new_header, request_doc, response_doc
from exportjobs.addons.faults import Faults
from exportjobs.addons.gate import RaceGate
from exportjobs.addons.guard import FailClosed
from exportjobs.addons.recordreplay import ExportJobs
from exportjobs.addons.redaction import Redactor
from exportjobs.addons.serializer import dump_document
from exportjobs.graph import COLLECTION_PATH

GRAPH = "graph.microsoft.com"
CREATE = json.dumps({"goalsOrganizationId": "9ab0fcab-c1d4-4b26-963b-a3c33155f853",
                     "explorerViewId": "1b2c3d4e-c1d4-4b26-963b-a3c33155f853"}).encode()


def graph_flow(method: str = "GET", path: str = COLLECTION_PATH, body: bytes = b"") -> http.HTTPFlow:
    flow = tflow.tflow()
    request = flow.request
    request.method, request.scheme, request.host, request.port, request.path = (
        method, "https", GRAPH, 443, path)
    request.headers.clear()
    request.headers["Host"] = GRAPH
    if body:
        request.headers["Content-Type"] = "application/json"
    request.content = body
    flow.response = None
    return flow


def cassette(path: Path, *numbers: int) -> Path:
    request = request_doc("GET", f"https://{GRAPH}{COLLECTION_PATH}", [("Host", GRAPH)], b"",
                          Redactor())
    response = response_doc(200, [("Content-Type", "application/json")], b'{"value":[]}',
                            Redactor())
    path.write_bytes(dump_document(new_header("2026-01-01T00:00:00Z", "test")) + b"".join(
        dump_document({"interaction": n, "request": request, "response": response})
        for n in numbers))
    return path


def test_the_marks_are_distinct_and_known_to_mitmproxy():
    """Each outcome its own mark, and one mitmproxy draws (an unknown one is a red dot)."""
    assert len(set(annotate.MARKS)) == len(annotate.MARKS) == 9
    for mark in annotate.MARKS:
        assert mark in emoji, mark


def test_replay_hit_then_repeat_then_a_miss_naming_the_difference(tmp_path):
    addon = ExportJobs()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, exportjobs_mode="replay",
                       exportjobs_cassette=str(cassette(tmp_path / "c.yaml", 7)))
        hit, repeat = graph_flow(), graph_flow()
        addon.request(hit)
        addon.request(repeat)
        assert (hit.marked, hit.comment) == (annotate.REPLAYED, "replayed #7")
        assert repeat.marked == annotate.REPEATED
        assert repeat.comment == "replayed #7 (repeat: recordings used up)"

        miss = graph_flow("GET", COLLECTION_PATH + "?$top=5")
        addon.request(miss)
        assert miss.response is not None and miss.response.status_code == 404
        assert miss.marked == annotate.MISSED
        assert miss.comment.startswith("MISS: not recorded; ") and "$top" in miss.comment


def test_a_recording_is_numbered(tmp_path):
    addon = ExportJobs()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, exportjobs_mode="record", exportjobs_cassette=str(tmp_path / "r.yaml"))
        flows = [graph_flow() for _ in range(2)]
        for flow in flows:
            addon.request(flow)
            flow.response = http.Response.make(200, b'{"value":[]}',
                                               {"Content-Type": "application/json"})
            asyncio.run(addon.response(flow))
        asyncio.run(addon.done())
    assert [(f.marked, f.comment) for f in flows] == [
        (annotate.RECORDED, "recorded #1"), (annotate.RECORDED, "recorded #2")]


def test_an_injected_fault_says_which_and_keeps_its_mark_when_recorded(tmp_path):
    faults, addon = Faults(), ExportJobs()
    with taddons.context(faults, addon) as tctx:
        tctx.configure(faults, exportjobs_faults="create:429(2s)#1, list:latency(5ms)@1",
                       exportjobs_fault_seed=1)
        tctx.configure(addon, exportjobs_mode="record", exportjobs_cassette=str(tmp_path / "f.yaml"))
        flow = graph_flow("POST", body=CREATE)
        faults.request(flow)
        assert (flow.marked, flow.comment) == (annotate.FAULT, "FAULT injected: 429 rule 1")
        addon.request(flow)
        asyncio.run(addon.response(flow))
        assert flow.marked == annotate.FAULT  # recorded as injected, still shown as the fault
        assert flow.comment == "FAULT injected: 429 rule 1; recorded #1"

        enforced = graph_flow("POST", body=CREATE)
        faults.request(enforced)
        assert enforced.marked == annotate.FAULT and "retry-after-window" in enforced.comment

        slow = graph_flow("GET")
        asyncio.run(faults.request(slow))  # type: ignore[arg-type]
        assert (slow.marked, slow.comment) == (annotate.SLOWED, "FAULT latency +5ms")
        asyncio.run(addon.done())


def test_the_gate_marks_held_then_released():
    gate = RaceGate()

    async def race() -> list[http.HTTPFlow]:
        flows = [graph_flow("POST", body=CREATE) for _ in range(2)]
        first = gate.request(flows[0])
        assert first is not None
        assert (flows[0].marked, flows[0].comment) == (annotate.HELD, "GATE held 1 of 2")
        second = gate.request(flows[1])
        assert second is not None
        await asyncio.gather(first, second)
        return flows

    with taddons.context(gate) as tctx:
        tctx.configure(gate, exportjobs_gate=2)
        flows = asyncio.run(race())
    assert [(f.marked, f.comment) for f in flows] == [
        (annotate.RELEASED, "GATE held 1 of 2, released (count)"),
        (annotate.RELEASED, "GATE held 2 of 2, released (count)")]


def test_refusals_fail_closed_and_say_why():
    class Broken(FailClosed):
        def request(self, flow: http.HTTPFlow) -> None:
            raise RuntimeError("boom")

    addon = ExportJobs()  # not configured: it refuses
    broken = Broken()
    # One context: mitmproxy 12's closes the event loop it made on exit but leaves its log
    # handler installed, so a second context in one test would log into a closed loop.
    with taddons.context(addon, broken):
        flow = graph_flow()
        addon.request(flow)
        assert flow.marked == annotate.REFUSED
        assert flow.comment == "refused: the exportjobs addon is not configured yet"

        flow = graph_flow()
        broken.request(flow)
        assert flow.marked == annotate.REFUSED
        assert flow.comment.startswith("refused: The exportjobs proxy failed")
        assert "RuntimeError in Broken.request" in flow.comment


def test_a_comment_the_user_wrote_is_kept():
    flow = graph_flow()
    flow.comment = "mine"
    annotate.recorded(flow, 3)
    assert flow.comment == "mine; recorded #3"
