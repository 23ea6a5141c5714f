"""Graph's error responses: the body every error has, generic codes, and ``GraphError``.

Raise ``GraphError`` anywhere; the server (or the proxy) renders it once.
"""

from __future__ import annotations

import json
from typing import Any

from exportjobs.graph.dates import graph_date
from exportjobs.graph.ids import new_request_id

# Graph's error code and message for statuses that are not particular to exportJobs.
HTTP_ERRORS: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "The request could not be read."),
    405: ("BadRequest", "The HTTP method is not allowed for the request URI."),
    413: ("RequestEntityTooLarge", "The request body is larger than the service accepts."),
    415: ("unsupportedMediaType", "The request body's media type or content encoding is not supported."),
    417: ("BadRequest", "Only 'Expect: 100-continue' is supported."),
    431: ("BadRequest", "The request's headers are larger than the service accepts."),
    429: ("TooManyRequests", "Please retry again later."),
    503: ("ServiceUnavailable", "The service is temporarily unavailable. Please retry later."),
    504: ("GatewayTimeout", "The service did not respond in time. Please retry later."),
}


def error_body(
    code: str,
    message: str,
    *,
    inner_code: str | None = None,
    target: str | None = None,
    request_id: str | None = None,
    client_request_id: str | None = None,
    inner_key: str = "innerError",
) -> dict[str, Any]:
    """A Graph error body: ``{"error": {code, message, target?, innerError: {...}}}``.

    ``inner_key`` is ``innerError`` (Graph's error format; the SDKs read only that spelling);
    it exists because the docs' own 409 example spells it ``innererror``, which the
    emulator reproduces on request (``quirks="documented"``).
    """
    inner: dict[str, Any] = {}
    if inner_code is not None:
        inner["code"] = inner_code
    inner["date"] = graph_date()[:19]
    inner["request-id"] = request_id or new_request_id()
    inner["client-request-id"] = client_request_id or inner["request-id"]
    error: dict[str, Any] = {"code": code, "message": message}
    if target is not None:
        error["target"] = target
    error[inner_key] = inner
    return {"error": error}


# JSON's string form as compact_json writes it (ASCII, escaped): the C function json uses.
_json_str = json.encoder.encode_basestring_ascii


def error_json(
    code: str,
    message: str,
    *,
    inner_code: str | None = None,
    target: str | None = None,
    request_id: str | None = None,
    client_request_id: str | None = None,
    inner_key: str = "innerError",
) -> bytes:
    """``error_body`` encoded as compact UTF-8 JSON bytes: the same bytes as
    ``compact_json(error_body(...))``, written directly, since every error response (a
    409 most of all) has one, and building the dicts to encode costs more than the text."""
    request_id = request_id or new_request_id()
    target_part = "" if target is None else f',"target":{_json_str(target)}'
    inner_code_part = "" if inner_code is None else f'"code":{_json_str(inner_code)},'
    return (
        f'{{"error":{{"code":{_json_str(code)},"message":{_json_str(message)}{target_part},'
        f'{_json_str(inner_key)}:{{{inner_code_part}"date":{_json_str(graph_date()[:19])},'
        f'"request-id":{_json_str(request_id)},'
        f'"client-request-id":{_json_str(client_request_id or request_id)}}}}}}}'
    ).encode()


class GraphError(Exception):
    """A Graph error response waiting to be rendered: raise it, let the server render it."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        inner_code: str | None = None,
        target: str | None = None,
        headers: dict[str, str] | None = None,
        inner_key: str = "innerError",
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.inner_code = inner_code
        self.target = target
        self.headers = headers or {}
        self.inner_key = inner_key

    def body(self, request_id: str | None = None, client_request_id: str | None = None) -> bytes:
        return error_json(
            self.code,
            self.message,
            inner_code=self.inner_code,
            target=self.target,
            request_id=request_id,
            client_request_id=client_request_id,
            inner_key=self.inner_key,
        )
