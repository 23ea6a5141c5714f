"""Reading a request: its body (bounded, decoded), its Expect header, its client-request-id.

Every request body is read through ``read_body``, by a handler that wants it or by the
middleware that drains the rest, so each way a body can fail is answered one way.
"""

from __future__ import annotations

import re

from aiohttp import web
from aiohttp.http import HttpVersion11
from aiohttp.http_exceptions import DecompressSizeError, HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from exportjobs.graph import HTTP_ERRORS, GraphError
from exportjobs.simulator.emulator.keys import CONFIG


class ClientGone(Exception):
    """The client closed its connection before its request body was complete."""


# A client-request-id is echoed in a response header, so only text a header can carry
# comes back; anything else (non-ASCII, control characters, kilobytes) gets a fresh id.
_ECHOABLE_ID = re.compile(r"[\x21-\x7e][\x20-\x7e]{0,127}")


def client_request_id(request: web.BaseRequest, request_id: str) -> str:
    """The client's ``client-request-id`` when a header can echo it, else ``request_id``."""
    given = request.headers.get("client-request-id", "")
    return given if _ECHOABLE_ID.fullmatch(given) else request_id


def _undecodable(request: web.BaseRequest) -> GraphError:
    encoding = request.headers.get("Content-Encoding", "")
    return GraphError(
        400,
        "BadRequest",
        f"The request body could not be decoded as Content-Encoding {encoding!a}.",
    )


async def read_body(request: web.BaseRequest, limit: int | None = None) -> bytes:
    """The whole decoded body, at most ``max_body_bytes`` of it; else a GraphError.

    Every request body is read here (handlers that want one call it, the middleware
    drains the rest), so every way a body can fail is one of: 413 (too large), 400
    (a Content-Encoding that does not decode, broken chunked framing), or ``ClientGone``.
    The last byte's arrival is the moment a create arrives: a last-byte release
    synchronises on it, and the duplicate check runs after it. ``limit``: the config's
    ``max_body_bytes``, for a caller that has read the config already.
    """
    if limit is None:
        limit = request.config_dict[CONFIG].max_body_bytes if isinstance(request, web.Request) else 0
    if limit and request.content_length is not None and request.content_length > limit:
        raise GraphError(413, *HTTP_ERRORS[413])
    content = request.content
    if content.is_eof() and content.exception() is None:  # all here (the usual create)
        raw = content.read_nowait()
        if limit and len(raw) > limit:  # e.g. a gzip body that grew when decoded
            raise GraphError(413, *HTTP_ERRORS[413])
        return raw
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise GraphError(413, *HTTP_ERRORS[413]) from None
    except (RequestPayloadError, HttpProcessingError) as exc:
        # The rest of this body is unreadable: mark it ended, so aiohttp does not try to
        # drain it after the response (and log the same error again); the middleware
        # closes the connection.
        content.feed_eof()
        if isinstance(exc.__cause__, DecompressSizeError):
            raise GraphError(413, *HTTP_ERRORS[413]) from None
        if request.headers.get("Content-Encoding"):
            raise _undecodable(request) from None
        raise GraphError(400, "BadRequest", "The request body's framing is malformed.") from None
    except ConnectionError:
        raise ClientGone from None


def check_expect(request: web.Request) -> None:
    """Only ``Expect: 100-continue`` is understood (``continue_expected`` has answered it)."""
    expect = request.headers.get("Expect")
    if expect is not None and request.version >= HttpVersion11 and expect.lower() != "100-continue":
        raise GraphError(417, *HTTP_ERRORS[417])


async def continue_expected(request: web.Request) -> None:
    """Each route's Expect handler: send 100 Continue, leave every other value to the
    middleware (aiohttp's own handler raises a plain-text 417, or a 500 when the value
    is not UTF-8, before any middleware runs)."""
    expect = request.headers.get("Expect", "")
    if request.version >= HttpVersion11 and expect.lower() == "100-continue":
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0
