"""Every response in Graph's shape: the error middleware and aiohttp's own protocol errors.

Handlers raise ``GraphError`` (or anything else, for a bug); ``graph_middleware`` renders
it once as a Graph error body, drains a body nobody read, and stamps ``request-id`` and
``client-request-id`` on every response. ``GraphRequestHandler`` does the same for the
errors aiohttp answers before any middleware runs (a bad request line, huge headers).
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import ContentEncodingError, LineTooLong
from aiohttp.web_protocol import RequestHandler

from exportjobs.graph import ERROR_CONTENT_TYPE, HTTP_ERRORS, GraphError, new_request_id
from exportjobs.simulator.emulator.reading import (
    ClientGone,
    check_expect,
    client_request_id,
    read_body,
)

log = logging.getLogger("exportjobs.emulator")

INTERNAL = GraphError(500, "generalException", "An internal emulator error occurred.")
_UNSUPPORTED_ENCODING = GraphError(
    415,
    "unsupportedMediaType",
    "The request's Content-Encoding is not supported; send gzip, deflate, br or identity.",
)
# The codings decoded (docs/emulator.md). aiohttp decodes zstd too where backports.zstd (a
# dependency of mitmproxy 12) or Python 3.14 provides it: refused the same everywhere.
_DECODED = frozenset({"", "identity", "gzip", "deflate", "br"})


def error_response(err: GraphError, request_id: str, client_request_id: str) -> web.Response:
    """``err`` as a response: its status, its Graph error body, its headers."""
    return web.Response(
        status=err.status,
        body=err.body(request_id, client_request_id),
        headers={"Content-Type": ERROR_CONTENT_TYPE, **err.headers},
    )


@web.middleware
async def graph_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    request_id = new_request_id()
    echoed_id = client_request_id(request, request_id)
    try:
        check_expect(request)
        if request.body_exists and request.headers.get("Content-Encoding", "").lower() not in _DECODED:
            raise _UNSUPPORTED_ENCODING
        response = await handler(request)
    except Exception as exc:  # noqa: BLE001 - the one place errors become Graph errors
        response = _error_for(exc, request, request_id, echoed_id)
    if not request.content.is_eof() or request.content.exception() is not None:
        # A body nobody read (a GET's, or one behind an earlier error) is drained here,
        # through read_body, never by aiohttp: its failures are ours to answer. A failure
        # replaces a success; an error already chosen stands.
        try:
            await read_body(request)
        except Exception as exc:  # noqa: BLE001 - rendered like the handler's own errors
            if response.status < 400 or not isinstance(exc, (GraphError, ClientGone)):
                response = _error_for(exc, request, request_id, echoed_id)
    if request.content.exception() is not None:  # its body failed: the stream is unusable
        response.force_close()
    response.headers["request-id"] = request_id
    response.headers["client-request-id"] = echoed_id
    return response


def _error_for(
    exc: Exception, request: web.Request, request_id: str, echoed_id: str
) -> web.Response:
    """The Graph error response for whatever a handler (or read_body) raised."""
    if isinstance(exc, GraphError):
        err = exc
    elif isinstance(exc, ClientGone):  # nobody is left to answer; this goes nowhere
        log.info("client closed the connection mid-request: %s %s", request.method, request.path)
        err = GraphError(400, "BadRequest", "The request body ended early.")
    elif isinstance(exc, web.HTTPException):
        code, message = HTTP_ERRORS.get(exc.status, ("BadRequest", exc.reason))
        err = GraphError(exc.status, code, message)
    else:  # a bug of ours: still a Graph error, and logged for us to fix
        log.error("unhandled error for %s %s", request.method, request.path, exc_info=exc)
        err = INTERNAL
    return error_response(err, request_id, echoed_id)


class GraphRequestHandler(RequestHandler):
    """aiohttp's connection protocol, answering the errors it finds itself in Graph's shape.

    A bad request line, a header line over 8 KiB, too many headers, a Content-Encoding
    aiohttp cannot decode at all: aiohttp answers these before any application code runs,
    through ``handle_error``, with a plain-text body. Here they are Graph error bodies,
    logged as one line (they are the client's mistakes, not ours).
    """

    __slots__ = ()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:  # the response has begun: nothing left to send
            return super().handle_error(request, status, exc, message)
        if status >= 500:
            self.logger.error("Error handling request", exc_info=exc)
            err = INTERNAL
        elif isinstance(exc, ContentEncodingError):
            self.logger.info("refused request: %s", _one_line(exc))
            err = _UNSUPPORTED_ENCODING
        else:
            self.logger.info("refused request: %s", _one_line(exc))
            detail = "a header line is too long" if isinstance(exc, LineTooLong) else (
                "malformed HTTP request")
            err = GraphError(status, "BadRequest", f"The request could not be read: {detail}.")
        request_id = new_request_id()
        response = error_response(err, request_id, request_id)
        response.headers["request-id"] = request_id
        response.headers["client-request-id"] = request_id
        response.force_close()
        return response


def _one_line(exc: BaseException | None) -> str:
    return " ".join(str(exc).split())[:200] if exc is not None else "unknown"
