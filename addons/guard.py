"""Fail closed: whatever goes wrong in one of our hooks, a flow is answered, never forwarded.

mitmproxy logs an exception raised by an addon hook ("Addon error") and carries on with the
flow as if nothing happened: a request a replay hook failed on would go to the real service,
with the client's token. So every addon of this package derives from ``FailClosed``, whose
``__init_subclass__`` wraps each flow hook (and ``server_connect``) once, when the class is
made: one guard at the hook boundary, for every hook of every addon, present and future.

- A flow hook that raises (or whose coroutine raises) ends the flow: the proxy answers a
  Graph error (502 ``proxyFailed``, with ``request-id``, ``client-request-id`` and ``Date``),
  logs one line, and the flow's later hooks in our addons are skipped (so nothing of it is
  recorded). Set in ``responseheaders`` or ``response``, the error replaces the upstream's
  answer.
- A ``server_connect`` hook that raises refuses the connection.
- When the upstream cannot be reached or dies mid-response, mitmproxy would send its own
  HTML error page; a flow one of our addons marked with ``answer_with`` gets the Graph error
  instead (``install_error_answers``).

(Plain functions and classes: mitmproxy runs ``-s`` scripts outside sys.modules.)
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Generator
from typing import Any

from mitmproxy import http

from exportjobs.addons import annotate
from exportjobs.addons.replay import PROXY_ERROR_HEADER, proxy_error_response

log = logging.getLogger("exportjobs.proxy")

FLOW_HOOKS = ("requestheaders", "request", "responseheaders", "response", "error")
# flow.metadata (plain values: mitmproxy may save flows): [status, code, message] the proxy
# answers this flow with instead of forwarding it or sending mitmproxy's error page.
ANSWER = "exportjobs_answer"
FAILED_STATUS = 502
FAILED_CODE = "proxyFailed"


def answer_with(flow: http.HTTPFlow, status: int, code: str, message: str) -> None:
    """Mark ``flow``: if it cannot be completed, the client gets this Graph error."""
    flow.metadata[ANSWER] = [status, code, message]


def answer_response(flow: http.HTTPFlow) -> http.Response | None:
    """The Graph error ``flow`` was marked with, if any."""
    answer = flow.metadata.get(ANSWER)
    if answer is None:
        return None
    status, code, message = answer
    return proxy_error_response(flow.request, status, code, message)


def _what(exc: BaseException) -> str:
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _fail(addon: object, hook: str, flow: http.HTTPFlow, exc: BaseException) -> None:
    """End ``flow`` with a Graph error because ``addon``'s ``hook`` raised ``exc``."""
    request = flow.request
    first = ANSWER not in flow.metadata or flow.metadata[ANSWER][1] != FAILED_CODE
    answer_with(flow, FAILED_STATUS, FAILED_CODE,
                f"The exportjobs proxy failed while handling this request ({type(exc).__name__} "
                f"in {type(addon).__name__}.{hook}); it was not forwarded.")
    if hook != "error":
        flow.response = answer_response(flow)
    if first:
        annotate.refused(flow, flow.metadata[ANSWER][2])
        log.error("FAILED %s %s: %s.%s raised %s; the client gets a %d %s, nothing was forwarded "
                  "or recorded", request.method, request.path.partition("?")[0],
                  type(addon).__name__, hook, _what(exc), FAILED_STATUS, FAILED_CODE)
        log.debug("traceback of the failure above", exc_info=exc)


def _failed(flow: http.HTTPFlow) -> bool:
    answer = flow.metadata.get(ANSWER)
    return answer is not None and answer[1] == FAILED_CODE


async def _awaited(addon: object, hook: str, flow: http.HTTPFlow, result: Awaitable[Any]) -> None:
    try:
        await result
    except Exception as exc:  # noqa: BLE001 - the guard: any failure ends the flow
        _fail(addon, hook, flow, exc)


def _guard_flow_hook(hook: str, func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def guarded(self: Any, flow: http.HTTPFlow) -> Awaitable[None] | None:
        if _failed(flow):  # ended by the guard: our addons are done with it
            if hook in ("requestheaders", "request") and flow.response is None:
                # e.g. a failed flow replayed from mitmproxy's UI, which keeps its metadata
                flow.response = answer_response(flow)
            if hook in ("response", "error"):
                self.forget(flow)
            if hook == "response" and (flow.response is None
                                       or PROXY_ERROR_HEADER not in flow.response.headers):
                flow.response = answer_response(flow)  # the upstream's body overwrote it
            return None
        try:
            result = func(self, flow)
        except Exception as exc:  # noqa: BLE001 - the guard: any failure ends the flow
            _fail(self, hook, flow, exc)
            return None
        if result is None:  # sync hooks stay sync: mitmproxy awaits only what is returned
            return None
        return _awaited(self, hook, flow, result)

    guarded.__exportjobs_guarded__ = True  # type: ignore[attr-defined]
    return guarded


def _refuse(addon: object, data: Any, exc: BaseException) -> None:
    data.server.error = (f"exportjobs: {type(addon).__name__}.server_connect failed "
                         f"({type(exc).__name__}); connection refused")
    log.error("FAILED connection to %s: %s.server_connect raised %s; refused",
              data.server.address, type(addon).__name__, _what(exc))


async def _awaited_connect(addon: object, data: Any, result: Awaitable[Any]) -> None:
    try:
        await result
    except Exception as exc:  # noqa: BLE001 - the guard: any failure refuses the connection
        _refuse(addon, data, exc)


def _guard_server_connect(func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def guarded(self: Any, data: Any) -> Awaitable[None] | None:
        try:
            result = func(self, data)
        except Exception as exc:  # noqa: BLE001 - the guard: any failure refuses the connection
            _refuse(self, data, exc)
            return None
        return None if result is None else _awaited_connect(self, data, result)

    guarded.__exportjobs_guarded__ = True  # type: ignore[attr-defined]
    return guarded


class FailClosed:
    """Base of every addon here: its flow hooks and ``server_connect`` are guarded."""

    # Called after ``take_part`` changed which hooks are on (set by ``addons.compose``).
    hooks_changed: Callable[[], None] | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for hook in (*FLOW_HOOKS, "server_connect"):
            func = cls.__dict__.get(hook)
            if func is None or getattr(func, "__exportjobs_guarded__", False):
                continue
            setattr(cls, hook, _guard_server_connect(func) if hook == "server_connect"
                    else _guard_flow_hook(hook, func))

    def forget(self, flow: http.HTTPFlow) -> None:
        """Drop what this addon keeps about ``flow``, which the guard ended."""

    def take_part(self, active: bool, hooks: tuple[str, ...] = FLOW_HOOKS) -> None:
        """Whether mitmproxy calls this addon's flow ``hooks`` at all. Off, they are shadowed
        by None on the instance: mitmproxy's hook lookup finds nothing to call and skips the
        addon, instead of building the hook's arguments and calling one that returns at once
        (an addon that is off then costs a flow nothing)."""
        for hook in hooks:
            if not any(hook in cls.__dict__ for cls in type(self).__mro__):
                continue
            if active:
                self.__dict__.pop(hook, None)
            else:
                setattr(self, hook, None)
        if self.hooks_changed is not None:
            self.hooks_changed()


# --- Graph errors instead of mitmproxy's HTML error page --------------------------------------


def install_error_answers() -> None:
    """Make mitmproxy answer a flow marked with ``answer_with`` by that Graph error when the
    upstream cannot be reached or fails mid-response, instead of its HTML error page.

    mitmproxy builds that page deep in its HTTP layer, after the ``error`` hook and with no
    hook to replace it. ``HttpStream.handle_protocol_error`` (run only on errors) is wrapped:
    where it would send the error to the client, a marked flow's Graph error is sent as an
    ordinary response (HTTP/1 and HTTP/2 alike). Installed once per process; a mitmproxy whose
    layer differs is left alone (its HTML page stays) and a warning says so.
    """
    try:
        from mitmproxy.net.http import status_codes
        from mitmproxy.proxy.layers import http as layers
        stream_cls = layers.HttpStream
        original = stream_cls.handle_protocol_error
        send, protocol_error = layers.SendHttp, layers.ResponseProtocolError
        headers_event, data_event, end_event = (layers.ResponseHeaders, layers.ResponseData,
                                                layers.ResponseEndOfMessage)
    except (ImportError, AttributeError):  # pragma: no cover - another mitmproxy
        log.warning("exportjobs: this mitmproxy's HTTP layer is unknown; upstream errors reach "
                    "clients as mitmproxy's HTML page")
        return
    if getattr(original, "__exportjobs_guarded__", False):
        return

    def handle_protocol_error(self: Any, event: Any) -> Generator[Any, Any, None]:
        commands = original(self, event)
        reply = None
        while True:
            try:
                command = commands.send(reply)
            except StopIteration:
                return
            reply = None
            if (isinstance(command, send) and command.event is event
                    and isinstance(event, protocol_error)
                    and event.code != status_codes.NO_RESPONSE
                    and self.server_state != self.state_stream_response_body):
                response = answer_response(self.flow)
                if response is not None:
                    if self.flow.request.http_version.startswith("HTTP/1"):
                        response.headers["Connection"] = "close"  # as mitmproxy's own page
                    self.flow.response = response
                    client = command.connection
                    yield send(headers_event(self.stream_id, response, end_stream=False), client)
                    yield send(data_event(self.stream_id, response.raw_content or b""), client)
                    yield send(end_event(self.stream_id), client)
                    continue
            reply = yield command

    handle_protocol_error.__exportjobs_guarded__ = True  # type: ignore[attr-defined]
    stream_cls.handle_protocol_error = handle_protocol_error  # type: ignore[method-assign]


__all__ = ["ANSWER", "FailClosed", "answer_response", "answer_with", "install_error_answers"]
