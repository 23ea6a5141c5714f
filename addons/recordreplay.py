"""Record and replay Microsoft Graph exportJobs traffic; fail closed offline.

Load with ``mitmdump -s "$(exportjobs addon)" --set exportjobs_mode=record --set
exportjobs_cassette=run.yaml``. Only exportJobs requests (see ``addons.scope``) are touched:
in ``record`` mode each exchange is redacted and appended to the cassette before the client
gets the response; in ``replay`` mode answers come from the cassette and no upstream
connection is ever opened (a request with no recording gets a Graph error, never the
network); ``passthrough`` only forwards and logs. Everything else passes untouched.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Sequence
from importlib import metadata
from typing import Any, Optional

from mitmproxy import ctx, exceptions, http

from exportjobs.addons import annotate
from exportjobs.addons.cassette import new_header, request_doc, response_doc
from exportjobs.addons.faults import INJECTED_META, injected_note, lose, lost_answer, lost_mark
from exportjobs.addons.guard import ANSWER, FailClosed, answer_with, install_error_answers
from exportjobs.addons.matching import (
    EXHAUSTION_POLICIES,
    INJECTED,
    REPEAT_LAST,
    Outcome,
    ReplayIndex,
    explain_miss,
    load_index,
)
from exportjobs.addons.options import OptionError
from exportjobs.addons.persister import CassetteError, CassetteWriter
from exportjobs.addons.redaction import Redactor
from exportjobs.addons.replay import (
    graph_error,
    not_recorded_response,
    proxy_error_response,
    recorded_response,
    replay_failed_response,
    response_json,
)
from exportjobs.addons.scope import Scope
from exportjobs.addons.summary import exchange_line, shown
from exportjobs.addons.timeline import Timeline
from exportjobs.addons.traffic import traffic
from exportjobs.addons.upstream import Upstream
from exportjobs.graph import graph_date

log = logging.getLogger("exportjobs.proxy")

MODES = ("record", "replay", "passthrough")
# VCR.py's record modes (as pytest-recording spells them); --mode is shorthand for two.
RECORD_MODES = ("none", "once", "new_episodes", "all")
SHORTHANDS = {"record": "all", "replay": "none"}
_META = "exportjobs"
# The internal modes that write what happens to the cassette (new_episodes: what missed).
_RECORDING = ("record", "new_episodes")
# On stop, how long in-flight recordings may take to reach the cassette before it is closed.
STOP_GRACE_SECONDS = 30.0
UNAVAILABLE = 503
# A recorded interaction whose response the client never got (a ``lost`` fault): ``response``
# is what the service sent, ``lost`` what the client got instead (docs/faults.md).
LOST = "lost"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


class _Exchange:
    """What the addon knows about one exportJobs flow while it is in flight.

    Kept by flow id in the addon, not in ``flow.metadata``, which mitmproxy serializes
    (saving flows, mitmweb) and which therefore holds only plain values (the tag).

    (A plain class: mitmproxy runs scripts outside sys.modules, where @dataclass fails.)
    """

    __slots__ = ("injected", "method", "note", "number", "path", "request", "tag")

    def __init__(self, tag: str, method: str, path: str) -> None:
        self.tag = tag
        self.method = method
        self.path = path
        self.number = 0
        self.request: dict[str, Any] | None = None
        self.note = ""
        self.injected: dict[str, Any] | None = None  # set by the Faults addon (addons/faults.py)


class ExportJobs(FailClosed):
    """Record, replay or pass through exportJobs flows; fail closed.

    Until a configuration has been applied in full (and again after one failed, or once
    the proxy is stopping) ``refusal`` says why, and every in-scope request gets a Graph
    error and no connection to an in-scope host is opened.
    """

    def __init__(self) -> None:
        self.refusal: str | None = "the exportjobs addon is not configured yet"
        self.stopping = False
        self._recording = 0  # appends under way
        self.mode = "passthrough"  # or record, replay, new_episodes (replay, record the misses)
        self.record_mode: str | None = None
        self._last_number = 0  # the highest interaction number of the cassette last loaded
        self._complete_size = 0  # bytes of its complete documents (where new_episodes appends)
        self.scope = Scope()
        self.redactor = Redactor()
        self.upstream: Upstream | None = None
        self.cassette_name = ""
        self.writer: CassetteWriter | None = None
        self.index: ReplayIndex | None = None
        self.timeline = Timeline()
        self.started_at = time.time()
        self._announced: object = None
        self._exchanges: dict[str, _Exchange] = {}

    def load(self, loader) -> None:
        loader.add_option("exportjobs_mode", str, "passthrough",
                          "record: write exportJobs exchanges to the cassette; replay: answer "
                          "them from it, never from the network; passthrough: forward and log.",
                          choices=MODES)
        loader.add_option("exportjobs_cassette", Optional[str], None,
                          "Cassette file (YAML). Record mode replaces it (once it has recorded its "
                          "first interaction); replay mode reads it.")
        loader.add_option("exportjobs_record_mode", Optional[str], None,
                          "VCR.py's record modes: none replays only; once records if the cassette "
                          "is missing or empty, else replays; new_episodes replays what is "
                          "recorded and records (appends) what is not; all records afresh. "
                          "Given, it overrides exportjobs_mode (record = all, replay = none).")
        loader.add_option("exportjobs_upstream", Optional[str], None,
                          "Base URL that exportJobs traffic for graph.microsoft.com goes to instead "
                          "of Graph, e.g. http://127.0.0.1:8000 (the emulator). Clients still see "
                          "their own URLs; hosts added with exportjobs_hosts are not redirected.")
        loader.add_option("exportjobs_miss_policy", str, REPEAT_LAST,
                          "Replay: when the recorded responses of a request are used up, repeat "
                          "the last one or answer a Graph error.", choices=EXHAUSTION_POLICIES)
        loader.add_option("exportjobs_hosts", Sequence[str], [],
                          "Hosts besides graph.microsoft.com whose exportJobs paths are in scope "
                          "(name or name:port).")
        loader.add_option("exportjobs_redact_headers", Sequence[str], [],
                          "Headers to redact besides Authorization, Cookie, Set-Cookie and "
                          "Proxy-Authorization.")
        loader.add_option("exportjobs_redact_query", Sequence[str], [],
                          "Query (and form) parameters to redact.")
        loader.add_option("exportjobs_redact_json", Sequence[str], [],
                          "JSON fields to redact, at any depth, in request and response bodies.")

    def configure(self, updated: set[str]) -> None:
        if not any(name.startswith("exportjobs_") or name == "stream_large_bodies"
                   for name in updated):
            return
        install_error_answers()  # once per process; before any flow can meet an upstream error
        # Closed while the new settings are applied; open again only once all of them are.
        self.refusal = "the exportjobs settings are being applied"
        self.scope = Scope(ctx.options.exportjobs_hosts)
        try:
            self._configure(updated)
        except Exception as exc:  # noqa: BLE001 - any failure to apply settings refuses traffic
            refused = (exc if isinstance(exc, exceptions.OptionsError) else exceptions.OptionsError(
                f"exportjobs: cannot apply the settings ({type(exc).__name__}: {exc})"))
            self.refusal = str(refused)
            try:
                asyncio.get_running_loop().call_soon(self._stop_if_refusing)
            except RuntimeError:  # no loop: nothing serves yet
                pass
            raise refused from None
        self.refusal = None

    def _stop_if_refusing(self) -> None:
        """Settings that failed and were not rolled back to working ones (``mitmdump -s``
        logs a script's configure error and carries on, then brings its servers up): refuse
        to serve, and exit 2 before anything is served (from the event loop, which stops)."""
        if self.refusal is None:
            return
        log.error("exportjobs: %s; refusing to start", self.refusal)
        raise SystemExit(2)

    def _record_mode(self) -> str | None:
        """The record mode asked for: ``exportjobs_record_mode``, else ``exportjobs_mode``'s
        shorthand (record = all, replay = none); None passes through."""
        opts = ctx.options
        asked = opts.exportjobs_record_mode
        if asked is None or asked == "":
            return SHORTHANDS.get(opts.exportjobs_mode)
        if asked not in RECORD_MODES:
            raise OptionError("exportjobs_record_mode",
                              f"{asked!r} is not a record mode; use one of {', '.join(RECORD_MODES)}")
        return str(asked)

    def _load(self, cassette: str) -> ReplayIndex:
        """The replay index of ``cassette``; any failure refuses to start (no half-loaded replay)."""
        try:
            loaded, index = load_index(cassette, ctx.options.exportjobs_miss_policy)
        except CassetteError as exc:
            raise exceptions.OptionsError(str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - rendered once, as the cassette's error
            raise exceptions.OptionsError(
                f"cassette {cassette}: cannot be replayed ({type(exc).__name__}: "
                f"{str(exc)[:200]}); fix that file or re-record it with --mode record") from None
        if loaded.torn:
            log.warning("cassette %s: %s", cassette, loaded.torn)
        self._last_number = max((i.get("interaction", 0) for i in loaded.interactions), default=0)
        self._complete_size = loaded.complete_size
        return index

    def _open(self, record_mode: str, cassette: str) -> tuple[str, ReplayIndex | None,
                                                            CassetteWriter | None]:
        """The internal mode, replay index and writer for ``record_mode`` on ``cassette``.

        Nothing here destroys a cassette: ``all`` writes beside it and replaces it on the
        first interaction, ``once`` records only where nothing is recorded, ``new_episodes``
        appends after the file's complete documents."""
        # none replays only: a missing cassette is an error (named by the loader), not a recording
        load = record_mode == "none" or (record_mode != "all" and os.path.exists(cassette))
        index = self._load(cassette) if load else None
        if record_mode == "none" or (record_mode == "once" and index is not None and index.size):
            return "replay", index, None
        header = new_header(graph_date(), f"exportjobs {_version('exportjobs')}, "
                                          f"mitmproxy {_version('mitmproxy')}")
        try:
            if record_mode == "new_episodes" and index is not None:
                writer = CassetteWriter.appending(cassette, self._complete_size)
            else:
                writer = CassetteWriter(cassette, header)
        except OSError as exc:
            raise exceptions.OptionsError(
                f"cassette {cassette}: cannot be written ({exc.strerror}); "
                "check the folder exists and is writable") from None
        if record_mode == "new_episodes":
            return "new_episodes", index or ReplayIndex([], ctx.options.exportjobs_miss_policy), writer
        return "record", None, writer

    def _configure(self, updated: set[str]) -> None:
        opts = ctx.options
        if getattr(opts, "stream_large_bodies", None):
            # A streamed request goes upstream before any request hook can answer it, and a
            # streamed response reaches the client before it is recorded; mitmproxy decides
            # that per body, after our hooks, so it cannot be turned off per flow.
            raise exceptions.OptionsError(
                "stream_large_bodies: the exportjobs addons need whole bodies to answer, record "
                "or refuse a request before anything goes upstream; unset stream_large_bodies")
        record_mode = self._record_mode()
        cassette = opts.exportjobs_cassette
        if record_mode is not None and not cassette:
            raise OptionError("exportjobs_cassette",
                              f"record mode {record_mode} ({opts.exportjobs_mode} mode) needs a cassette file")
        upstream = None
        if opts.exportjobs_upstream:
            try:
                upstream = Upstream.parse(opts.exportjobs_upstream)
            except ValueError as exc:
                raise OptionError("exportjobs_upstream", str(exc)) from None
        redactor = Redactor.configured(opts.exportjobs_redact_headers, opts.exportjobs_redact_query,
                                       opts.exportjobs_redact_json)
        # Reopen the cassette only when it or the mode changed: other options may change live
        # (mitmproxy's UI) without cutting a recording short or restarting replay sequences.
        reopen = bool({"exportjobs_mode", "exportjobs_cassette", "exportjobs_record_mode"} & updated)
        if record_mode is None:
            mode, index, writer = "passthrough", None, None
        elif not reopen and record_mode == self.record_mode:
            mode, index, writer = self.mode, self.index, self.writer
            if index is not None:
                index.exhausted = opts.exportjobs_miss_policy
        else:
            assert cassette is not None
            mode, index, writer = self._open(record_mode, cassette)
            if writer is not None:
                self.timeline = Timeline()
                self.started_at = time.time()
                if mode == "new_episodes" and index is not None and index.size:
                    # appended interactions are numbered on from the cassette's last
                    self.timeline._next = self._last_number + 1
        if self.writer is not None and self.writer is not writer:
            self.writer.close_now()
        self.mode, self.upstream, self.redactor, self.index, self.writer = (
            mode, upstream, redactor, index, writer)
        self.record_mode = record_mode
        self.cassette_name = cassette or ""
        if (mode in ("replay", "new_episodes") or upstream is not None) \
                and "connection_strategy" in opts and opts.connection_strategy != "lazy":
            # mitmproxy connects upstream on CONNECT by default: replay must never connect, and
            # with an upstream the real Graph must not be contacted either.
            opts.connection_strategy = "lazy"
        announced = (index, writer)
        if mode != "passthrough" and announced != self._announced:
            self._announced = announced
            self._announce(mode, str(record_mode), cassette or "", upstream)

    def _announce(self, mode: str, record_mode: str, cassette: str, upstream: Upstream | None) -> None:
        source = f" from {upstream.url}" if upstream else ""
        if mode == "replay":
            assert self.index is not None
            log.info("exportjobs: replaying %d interaction(s) from %s (record mode %s, miss policy %s)",
                     self.index.size, cassette, record_mode, self.index.exhausted)
        elif mode == "new_episodes":
            assert self.index is not None
            log.info("exportjobs: replaying %d interaction(s) from %s and recording what is not "
                     "there%s (record mode new_episodes)", self.index.size, cassette, source)
        else:
            assert self.writer is not None
            keeping = (" (the previous file is kept until the first interaction is recorded)"
                       if self.writer.replacing else "")
            log.info("exportjobs: recording to %s%s%s (record mode %s)", cassette, keeping, source,
                     record_mode)

    # --- hooks ---------------------------------------------------------------------------------

    def request(self, flow: http.HTTPFlow) -> None:
        req = flow.request
        injected = flow.metadata.get(INJECTED_META)
        answered = flow.response is not None
        seen = traffic(flow, self.scope)
        if seen.kind is None:
            if seen.covered and not answered:
                self._refuse_other(flow, seen.graph)
            return
        if answered and not injected:
            return
        if self.refusal is not None or self.stopping:
            if not answered:
                why = "it is stopping" if self.stopping else self.refusal
                log.warning("REFUSED %s %s: the proxy does not serve exportJobs traffic: %s",
                            req.method, req.path.partition("?")[0], why)
                flow.response = proxy_error_response(
                    req, UNAVAILABLE, "proxyUnavailable",
                    f"The exportjobs proxy does not serve this request: {why}.")
                annotate.refused(flow, str(why))
            return
        tag = {"record": "REC", "replay": "REPLAY", "new_episodes": "REPLAY",
               "passthrough": "PASS"}[self.mode]
        exchange = _Exchange(tag, req.method, req.path.partition("?")[0])
        self._exchanges[flow.id] = exchange
        if self.mode != "passthrough":
            # Replay keys on the path and query, never the host (addons.matching), so it skips
            # pretty_url (the Host header's name), one of the dearest steps of a replay.
            url = req.url if self.mode == "replay" else req.pretty_url
            body = (req.get_content(strict=False) or b"") if req.raw_content else b""
            exchange.request = request_doc(req.method, url, list(req.headers.items(True)), body,
                                           self.redactor)
        if injected:  # the Faults addon answered or delayed this request
            exchange.injected, exchange.note = injected, injected_note(injected)
            if answered:
                exchange.tag = "FAULT"
                if self.mode in _RECORDING:  # an injected answer is part of the session
                    exchange.number = self.timeline.begin()
                return
        if self.mode in ("replay", "new_episodes"):
            try:
                self._answer(flow, exchange)
            except Exception as exc:  # noqa: BLE001 - fail closed: an unanswered flow would go out
                log.error("cassette %s: cannot replay %s %s (%s)", self.cassette_name, req.method,
                          exchange.path, exc)
                flow.response = replay_failed_response(flow.request, self.cassette_name, exc)
                exchange.tag = "MISS"
                exchange.note = "recording unusable"
                annotate.missed(flow, exchange.note)
            if exchange.tag != "REC":  # answered from the cassette; a new episode goes on
                return
        if self.mode == "record":
            exchange.number = self.timeline.begin()
        if self.upstream is not None and seen.graph:
            self.upstream.redirect(req)

    def _refuse_other(self, flow: http.HTTPFlow, graph: bool) -> None:
        """Other paths on an in-scope host, answered here where they must not go out: in
        replay (and new_episodes, where only a missed exportJobs request may), while
        refusing, and on Graph itself with an upstream. The connection-level lock refuses
        them too; answering per flow also covers a connection some other flow opened."""
        if self.mode in ("replay", "new_episodes") or self.refusal is not None:
            why = (f"the proxy is not serving ({self.refusal})" if self.refusal is not None
                   else f"in {self.mode.replace('_', ' ')} mode it forwards nothing to this host")
        elif self.upstream is not None and graph:
            why = f"Graph's traffic goes to {self.upstream.url}, never to Graph itself"
        else:
            return
        req = flow.request
        log.warning("REFUSED %s %s: %s", req.method, req.path.partition("?")[0], why)
        flow.response = proxy_error_response(req, 502, "badGateway",
                                             f"The exportjobs proxy did not forward this request: {why}.")
        annotate.refused(flow, why)

    def _answer(self, flow: http.HTTPFlow, exchange: _Exchange) -> None:
        assert self.index is not None and exchange.request is not None
        take = self.index.take(exchange.request)
        if take.interaction is not None:
            flow.response = recorded_response(take, flow.request, self.index.answers)
            lost = take.interaction.get(LOST)
            if isinstance(lost, dict):  # the client got the lost answer then: so it does now
                mark = {"lost": str(lost.get("answer")), "rule": lost.get("rule"),
                        "text": lost.get("text", ""), "kind": lost.get("kind")}
                flow.metadata[INJECTED_META] = mark
                exchange.injected, exchange.note = mark, injected_note(mark)
                annotate.fault(flow, exchange.note)
            annotate.replayed(flow, take.interaction.get("interaction"), take.outcome is Outcome.REPEAT)
            if take.outcome is Outcome.REPEAT:
                exchange.note = f"used up: repeating the last of {take.recorded}"
            elif take.recorded > 1:
                exchange.note = f"{take.position}/{take.recorded}"
        elif self.mode == "new_episodes" and take.outcome is Outcome.MISS:
            # A new episode: it goes upstream and is appended to the cassette (response hook).
            exchange.tag = "REC"
            exchange.note = "new episode"
            exchange.number = self.timeline.begin()
        else:
            diagnosis = explain_miss(self.index, exchange.request) \
                if take.outcome is Outcome.MISS else ""
            flow.response = not_recorded_response(take, flow.request, self.cassette_name, diagnosis)
            exchange.tag = "MISS"
            exchange.note = (f"not recorded; {diagnosis}" if take.outcome is Outcome.MISS
                             else f"all {take.recorded} recorded response(s) used")
            annotate.missed(flow, exchange.note)

    async def response(self, flow: http.HTTPFlow) -> None:
        exchange = self._exchanges.pop(flow.id, None)
        real = flow.response
        if real is None:
            return
        # A lost response (addons/faults.py): the real one is recorded, then the client gets
        # the lost answer instead, whatever else happened to the flow (unless recording failed,
        # which the client hears about as such).
        mark = lost_mark(flow)
        answer = lost_answer(flow, mark) if mark else None
        if exchange is None:
            if mark:
                lose(flow, answer)
            return
        flow.metadata[_META] = exchange.tag
        body = None
        if self.writer is not None and (exchange.tag == "REC" or (
                exchange.tag == "FAULT" and self.mode in _RECORDING)):
            body = await self._record(flow, exchange, answer)
        if mark and flow.response is real:
            lose(flow, answer)
            body = None
        self._log(flow, exchange, body)

    async def _record(self, flow: http.HTTPFlow, exchange: _Exchange,
                      lost: http.Response | None = None) -> Any:
        """Append the exchange to the cassette; returns the (redacted) JSON body, if any."""
        self._recording += 1
        try:
            return await self._append(flow, exchange, lost)
        finally:
            self._recording -= 1

    async def _append(self, flow: http.HTTPFlow, exchange: _Exchange,
                      lost: http.Response | None = None) -> Any:
        writer = self.writer
        if writer is None:  # closed: a response must not reach the client unrecorded
            raise RuntimeError(f"the cassette {self.cassette_name} is closed")
        assert flow.response is not None
        res = flow.response
        started = flow.request.timestamp_start
        ended = res.timestamp_end or time.time()
        doc: dict[str, Any] = {
            "interaction": exchange.number,
            "started": round(started - self.started_at, 6),
            "duration": round(ended - started, 6),
            "concurrent": self.timeline.end(exchange.number),
            "request": exchange.request,
            "response": response_doc(res.status_code, list(res.headers.items(True)),
                                     res.get_content(strict=False) or b"", self.redactor),
        }
        injected = exchange.injected or {}
        if exchange.tag == "FAULT":  # marked, so replay never serves it as the service's answer
            doc[INJECTED] = {k: v for k, v in injected.items() if k != "rules"}
        else:
            if "latency_ms" in injected:
                doc["injected_latency_ms"] = injected["latency_ms"]
            if "lost" in injected:  # the service's answer above; what the client got here
                doc[LOST] = {"answer": injected["lost"], "rule": injected["rule"],
                             "text": injected.get("text", ""), "kind": injected.get("kind")}
                if lost is not None:
                    doc[LOST]["response"] = response_doc(
                        lost.status_code, list(lost.headers.items(True)),
                        lost.get_content(strict=False) or b"", self.redactor)
        try:
            await writer.append(doc)
        except OSError as exc:
            log.error("cassette %s: cannot write interaction %d (%s); the client gets a 502",
                      self.cassette_name, exchange.number, exc.strerror)
            flow.response = graph_error(
                flow.request, 502, "cassetteWriteFailed",
                f"The proxy could not record this response to cassette '{self.cassette_name}': "
                f"{exc.strerror}.", "exportJobsCassetteWriteFailed")
            annotate.refused(flow, f"not recorded: cannot write the cassette ({exc.strerror})")
            return None
        annotate.recorded(flow, exchange.number)
        return doc["response"].get("json")

    def error(self, flow: http.HTTPFlow) -> None:
        """The upstream could not be reached or failed mid-response (or the client left):
        nothing is recorded, and an in-scope client gets a Graph error, not mitmproxy's page."""
        exchange = self._exchanges.pop(flow.id, None)
        req = flow.request
        if exchange is None and not traffic(flow, self.scope).covered:
            return
        message = flow.error.msg if flow.error else "no response"
        timeout = "timed out" in message.lower() or "timeout" in message.lower()
        status, code = (504, "gatewayTimeout") if timeout else (502, "badGateway")
        if ANSWER not in flow.metadata:
            answer_with(flow, status, code, f"The proxy got no answer from the service for this "
                                            f"request: {message}")
        if exchange is None:
            log.warning("ERR    %s %s: %s (the client gets a %d %s)", req.method,
                        req.path.partition("?")[0], message, status, code)
            return
        flow.metadata[_META] = exchange.tag
        if exchange.number:
            self.timeline.end(exchange.number)
        started = flow.request.timestamp_start
        log.warning("%s", exchange_line(exchange.tag, exchange.method, exchange.path, "ERR", None,
                                        time.time() - started,
                                        f"{message}; the client gets a {status} {code}"))

    def forget(self, flow: http.HTTPFlow) -> None:
        exchange = self._exchanges.pop(flow.id, None)
        if exchange is not None and exchange.number:
            self.timeline.end(exchange.number)

    def server_connect(self, data: Any) -> None:
        """The connection-level lock: replay (and a proxy that is not configured) never
        connects to an in-scope host, and with an upstream nothing connects to Graph itself,
        whatever any hook did to a flow."""
        address = data.server.address
        if not address:
            return
        host, port = str(address[0]), int(address[1])
        # The address and the TLS server name: a tunnel to Graph's IP still names Graph.
        names = {host, *([data.server.sni] if data.server.sni else [])}
        if (self.mode == "replay" or self.refusal is not None or (
                self.mode == "new_episodes" and not self._episodes_in_flight())) \
                and any(self.scope.covers(name, port) for name in names):
            why = ("not serving" if self.refusal is not None
                   else f"{self.mode.replace('_', ' ')} mode")
        elif self.upstream is not None and any(self.scope.is_graph(name) for name in names):
            why = f"exportJobs traffic goes to {self.upstream.url}"
        else:
            return
        data.server.error = f"exportjobs: {why}: the proxy never connects to {host}:{port}"
        log.warning("REFUSED connection to %s:%d (%s)", host, port, why)

    def _log(self, flow: http.HTTPFlow, exchange: _Exchange, body: Any = None) -> None:
        level = logging.WARNING if exchange.tag == "MISS" else logging.INFO
        if not shown(log, level):  # e.g. mitmdump -q: no line, and no add_log fan-out
            return
        res = flow.response
        assert res is not None
        seconds = (res.timestamp_end or time.time()) - flow.request.timestamp_start
        line = exchange_line(exchange.tag, exchange.method, exchange.path, res.status_code,
                             response_json(res) if body is None else body, seconds, exchange.note)
        log.log(level, "%s", line)

    async def done(self) -> None:
        """A graceful stop loses nothing: refuse new exportJobs requests, let every recording
        in flight reach the cassette (bounded by STOP_GRACE_SECONDS), then close it."""
        self.stopping = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STOP_GRACE_SECONDS
        while self._in_flight() and loop.time() < deadline:
            await asyncio.sleep(0.01)
        left = self._in_flight()
        if left:
            log.warning("exportjobs: %d exchange(s) still in flight after %gs were not recorded; "
                        "their clients get an error", left, STOP_GRACE_SECONDS)
        if self.writer is not None:
            writer, self.writer = self.writer, None
            await writer.close()

    def _episodes_in_flight(self) -> bool:
        """new_episodes: whether a request that missed is on its way upstream; only such a
        request may open a connection (a request answered from the cassette never needs one)."""
        return any(e.tag == "REC" for e in self._exchanges.values())

    def _in_flight(self) -> int:
        """Exchanges that will be recorded once answered, plus appends under way."""
        if self.writer is None:
            return 0
        return self._recording + sum(1 for e in self._exchanges.values() if e.number)

