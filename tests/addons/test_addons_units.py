"""Fast unit tests of the addons with mitmproxy's own test helpers (``taddons``, ``tflow``):
no sockets, each a few milliseconds. The end-to-end tests (test_proxy_*.py, test_gate.py,
test_faults_proxy.py) prove the same addons through a real proxy."""

from __future__ import annotations

import json
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
from mitmproxy import http
from mitmproxy.test import taddons, tflow

import exportjobs.addons.traffic as traffic_module
from exportjobs.addons.cassette import new_header, request_doc, response_doc
from exportjobs.addons.faults import FAULT_HEADER, Faults
from exportjobs.addons.gate import RaceGate
from exportjobs.addons.guard import FailClosed
from exportjobs.addons.options import OptionError, declared
from exportjobs.addons.proxy import proxy_addons
from exportjobs.addons.recordreplay import ExportJobs
from exportjobs.addons.redaction import Redactor
from exportjobs.addons.replay import REPLAY_HEADER
from exportjobs.addons.serializer import dump_document
from exportjobs.addons.traffic import TRAFFIC_META, Traffic, traffic
from exportjobs.cli import build_parser
from exportjobs.graph import COLLECTION_PATH
from exportjobs.graph.headers import volatile_headers
from exportjobs.graph.media import ERROR_CONTENT_TYPE

GRAPH = "graph.microsoft.com"
JOB = f"{COLLECTION_PATH}/job-1"
CREATE = {"goalsOrganizationId": "org", "explorerViewId": "view"}


def graph_flow(method: str = "GET", path: str = COLLECTION_PATH, *, host: str = GRAPH,
               port: int = 443, body: bytes = b"", client_request_id: str | None = None
               ) -> http.HTTPFlow:
    flow = tflow.tflow()
    request = flow.request
    request.method, request.scheme, request.host, request.port, request.path = (
        method, "https", host, port, path)
    request.headers.clear()
    request.headers["Host"] = host
    if client_request_id:
        request.headers["client-request-id"] = client_request_id
    if body:
        request.headers["Content-Type"] = "application/json"
    request.content = body
    return flow


def error_of(response: http.Response) -> dict:
    return json.loads(response.get_content())["error"]


# --- options: declared once, refused by name --------------------------------------------------


def _proxy_options() -> dict:
    return {name: o for name, o in declared(proxy_addons()).items() if name.startswith("exportjobs_")}


def test_every_declared_option_is_a_flag_of_the_proxy_command_with_its_default():
    """The command line is derived from the declarations: an option added to an addon's
    load() without a flag, or a flag whose default differs from the declaration, fails."""
    parser = build_parser()
    args = parser.parse_args(["proxy", "--mode", "record"])
    options = _proxy_options()
    flags = args.proxy_flags
    assert set(options) <= set(flags), set(options) - set(flags)
    for name, option in options.items():
        if name != "exportjobs_mode":  # the command makes the mode explicit
            assert getattr(args, name) == option.default, name


def test_a_flag_takes_the_declared_type_and_choices():
    parser = build_parser()
    args = parser.parse_args(["proxy", "--mode", "replay", "--gate", "3", "--gate-timeout", "0.5",
                              "--host", "a", "--host", "b:81", "--fault-seed", "7"])
    assert (args.exportjobs_gate, args.exportjobs_gate_timeout) == (3, 0.5)
    assert args.exportjobs_hosts == ["a", "b:81"] and args.exportjobs_fault_seed == 7
    with pytest.raises(SystemExit):
        parser.parse_args(["proxy", "--mode", "replay", "--miss-policy", "never"])


@pytest.mark.parametrize("addon, settings, option", [
    (ExportJobs, {"exportjobs_mode": "record"}, "exportjobs_cassette"),
    (ExportJobs, {"exportjobs_upstream": "ftp://x"}, "exportjobs_upstream"),
    (RaceGate, {"exportjobs_gate": 1}, "exportjobs_gate"),
    (RaceGate, {"exportjobs_gate": 2, "exportjobs_gate_timeout": float("inf")}, "exportjobs_gate_timeout"),
    (RaceGate, {"exportjobs_gate": 2, "exportjobs_gate_timeout": 0.0}, "exportjobs_gate_timeout"),
    (Faults, {"exportjobs_faults": "create:500@1"}, "exportjobs_faults"),
])
def test_configure_refuses_a_value_naming_its_option(addon, settings, option):
    instance = addon()
    with taddons.context(instance) as tctx:
        with pytest.raises(OptionError) as caught:
            tctx.configure(instance, **settings)
    assert caught.value.option == option
    assert str(caught.value) == f"{option}: {caught.value.problem}"
    assert option not in caught.value.problem  # each front end names it its own way


# --- classification: once per flow ------------------------------------------------------------


@pytest.mark.parametrize("method, path, host, port, hosts, expected", [
    ("POST", COLLECTION_PATH, GRAPH, 443, [], Traffic(True, True, "create")),
    ("GET", COLLECTION_PATH.lower(), GRAPH.upper(), 443, [], Traffic(True, True, "list")),
    ("GET", f"{JOB}/content?x=1", GRAPH, 443, [], Traffic(True, True, "content")),
    ("GET", "/v1.0/me", GRAPH, 443, [], Traffic(True, True, None)),
    ("GET", COLLECTION_PATH, "example.com", 443, [], Traffic(False, False, None)),
    ("GET", JOB, "127.0.0.1", 8000, ["127.0.0.1:8000"], Traffic(True, False, "get")),
    ("GET", JOB, "127.0.0.1", 8001, ["127.0.0.1:8000"], Traffic(False, False, None)),
])
def test_classification(method, path, host, port, hosts, expected):
    addon = ExportJobs()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, exportjobs_hosts=hosts)
        assert traffic(graph_flow(method, path, host=host, port=port), addon.scope) == expected


def test_each_flow_is_classified_once_whichever_addons_read_it(monkeypatch):
    calls = []

    def counting(path):
        calls.append(path)
        return real(path)

    real = traffic_module.match_exportjobs
    monkeypatch.setattr(traffic_module, "match_exportjobs", counting)
    faults, gate, addon = proxy_addons()
    with taddons.context(faults, gate, addon) as tctx:
        tctx.configure(faults, exportjobs_faults="list:503#5")
        tctx.configure(gate, exportjobs_gate=2)
        flow = graph_flow("GET")
        for hook_owner in (faults, gate, addon):
            assert hook_owner.request(flow) is None
    assert len(calls) == 1 and flow.metadata[TRAFFIC_META] == Traffic(True, True, "list")


def test_a_flow_loaded_from_a_file_is_classified_again():
    """Saved flows keep plain values: the Traffic comes back as a list, and is redone."""
    addon = ExportJobs()
    with taddons.context(addon):
        flow = graph_flow("POST")
        flow.metadata[TRAFFIC_META] = [False, False, None]
        assert traffic(flow, addon.scope) == Traffic(True, True, "create")


# --- the guard -------------------------------------------------------------------------------


class _Broken(FailClosed):
    def __init__(self) -> None:
        self.responses = 0

    def request(self, flow: http.HTTPFlow) -> None:
        raise RuntimeError("boom")

    def response(self, flow: http.HTTPFlow) -> None:
        self.responses += 1


def test_a_hook_that_raises_answers_a_graph_error_and_ends_the_flow_for_our_addons():
    broken = _Broken()
    with taddons.context(broken):
        flow = graph_flow("POST", body=json.dumps(CREATE).encode(), client_request_id="c-1")
        broken.request(flow)
        assert flow.response is not None and flow.response.status_code == 502
        error = error_of(flow.response)
        assert error["code"] == "proxyFailed" and "not forwarded" in error["message"]
        assert flow.response.headers["client-request-id"] == "c-1"
        assert error["innerError"]["request-id"] == flow.response.headers["request-id"]
        assert flow.response.headers["Content-Type"] == ERROR_CONTENT_TYPE
        broken.response(flow)
        assert broken.responses == 0  # later hooks of our addons are skipped


def test_a_failed_flow_sent_again_is_answered_not_let_through():
    """mitmproxy's replay button keeps a flow's metadata and clears its response: a flow
    the guard once failed must be answered again, not skipped by our addons and forwarded."""
    broken = _Broken()
    with taddons.context(broken):
        flow = graph_flow("POST", body=json.dumps(CREATE).encode())
        broken.request(flow)
        flow.response = None  # as mitmproxy's client replay leaves it
        broken.request(flow)
        assert flow.response is not None and flow.response.status_code == 502


# --- replay ------------------------------------------------------------------------------------


def _cassette(path: Path) -> Path:
    request = request_doc("GET", f"https://{GRAPH}{COLLECTION_PATH}", [("Host", GRAPH)], b"",
                          Redactor())
    response = response_doc(200, [("Content-Type", "application/json"), ("request-id", "old"),
                                  ("Date", "Thu, 01 Jan 2026 00:00:00 GMT")],
                            b'{"value":[]}', Redactor())
    path.write_bytes(dump_document(new_header("2026-01-01T00:00:00Z", "test"))
                     + dump_document({"interaction": 1, "request": request, "response": response}))
    return path


def test_replay_answers_from_the_cassette_with_fresh_volatile_headers(tmp_path):
    addon = ExportJobs()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, exportjobs_mode="replay", exportjobs_cassette=str(_cassette(tmp_path / "c.yaml")),
                       exportjobs_miss_policy="error")
        flow = graph_flow("GET", client_request_id="mine")
        addon.request(flow)
        response = flow.response
        assert response is not None and response.status_code == 200
        assert response.get_content() == b'{"value":[]}'
        assert response.headers[REPLAY_HEADER] == "hit 1/1"
        request_ids, dates = response.headers.get_all("request-id"), response.headers.get_all("Date")
        assert len(request_ids) == 1 and request_ids[0] != "old"  # refreshed, not repeated
        assert len(dates) == 1 and dates[0] != "Thu, 01 Jan 2026 00:00:00 GMT"
        assert response.headers.get_all("client-request-id") == ["mine"]

        again = graph_flow("GET")
        addon.request(again)
        assert again.response is not None and again.response.status_code == 404
        assert error_of(again.response)["innerError"]["code"] == "exportJobsCassetteExhausted"
        assert again.response.headers["Content-Type"] == ERROR_CONTENT_TYPE

        elsewhere = graph_flow("GET", "/v1.0/me")  # Graph, not exportJobs: replay sends nothing out
        addon.request(elsewhere)
        assert elsewhere.response is not None and elsewhere.response.status_code == 502
        assert error_of(elsewhere.response)["code"] == "badGateway"

        other_host = graph_flow("GET", "/v1.0/me", host="example.org")
        addon.request(other_host)
        assert other_host.response is None  # not ours: untouched


# --- faults --------------------------------------------------------------------------------------


def test_a_fault_rule_answers_and_retry_after_is_enforced_per_client_and_kind():
    faults = Faults()
    with taddons.context(faults) as tctx:
        tctx.configure(faults, exportjobs_faults="create:429(2s)#1", exportjobs_fault_seed=1)
        first = graph_flow("POST", body=json.dumps(CREATE).encode())
        assert faults.request(first) is None
        assert first.response is not None and first.response.status_code == 429
        assert first.response.headers["Retry-After"] == "2"
        assert first.response.headers[FAULT_HEADER] == "429 rule 1"
        assert first.response.headers["Content-Type"] == ERROR_CONTENT_TYPE
        assert error_of(first.response)["code"] == "TooManyRequests"

        early = graph_flow("POST", body=json.dumps(CREATE).encode())
        faults.request(early)
        assert early.response is not None and early.response.status_code == 429
        assert early.response.headers[FAULT_HEADER] == "429 retry-after-window"

        listing = graph_flow("GET")
        faults.request(listing)
        assert listing.response is None  # another kind: its own window, no rule


# --- Graph's volatile headers ------------------------------------------------------------------


def test_volatile_headers_echo_the_client_request_id_or_repeat_the_request_id():
    (rid, own), (cid, echoed), (date, when) = volatile_headers("abc")
    assert (rid, cid, date, echoed) == ("request-id", "client-request-id", "Date", "abc")
    assert own != "abc" and parsedate_to_datetime(when).tzinfo is not None
    (_, rid2), (_, cid2), _ = volatile_headers(None)
    assert cid2 == rid2 and rid2 != own


# --- addons that are off ---------------------------------------------------------------------


def test_faults_and_the_gate_take_no_part_in_flows_while_off():
    """Off, their flow hooks are not there for mitmproxy to call (no per-flow cost); on,
    they are, and off again removes them."""
    faults, gate = Faults(), RaceGate()
    with taddons.context(faults, gate) as tctx:
        for addon in (faults, gate):
            for hook in ("request", "response", "error"):
                assert getattr(addon, hook, None) is None, (type(addon).__name__, hook)
        tctx.configure(faults, exportjobs_faults="create:429@1")
        tctx.configure(gate, exportjobs_gate=2)
        assert callable(faults.request)
        assert callable(gate.request) and callable(gate.response) and callable(gate.error)
        tctx.configure(faults, exportjobs_faults=None)
        tctx.configure(gate, exportjobs_gate=0)
        assert faults.request is None and gate.request is None and gate.response is None
