"""One request and what came back for it, fit to show: the one record of an exchange that
the console (``-v`` and broken checks), the JSON report, JUnit and the HTML report all read.

Secrets are removed here, when the record is made, so no report can show them: the values
of ``Authorization``, ``Proxy-Authorization``, ``Cookie`` and ``Set-Cookie`` become
``REDACTED``, and credentials in a URL are replaced. Bodies are cut to ``BODY_CHARS``
characters, so a report stays readable and bounded whatever the server sent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from exportjobs.simulator.transport import Outcome, PreparedRequest
from exportjobs.simulator.values import shown_url

SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
REDACTED = "REDACTED"
BODY_CHARS = 2000
MAX_HEADERS = 50  # a response with more shows the first ones


def _headers(headers: dict[str, str]) -> dict[str, str]:
    shown = {}
    for name, value in list(headers.items())[:MAX_HEADERS]:
        shown[name] = REDACTED if name.lower() in SECRET_HEADERS else value[:BODY_CHARS]
    return shown


def _body(body: bytes) -> str:
    text = body[: BODY_CHARS * 4].decode("utf-8", errors="replace")
    if len(text) > BODY_CHARS or len(body) > BODY_CHARS * 4:
        return text[:BODY_CHARS] + f"... ({len(body):,} bytes in all)"
    return text


@dataclass(frozen=True, slots=True)
class Exchange:
    """A request and its response (or why there was none), secrets removed, bodies cut.

    Fields (also the keys of its JSON form, ``as_data``):
    ``method``, ``url`` (credentials replaced), ``request_headers`` (name to value, as sent,
    secrets ``REDACTED``), ``request_body`` (text, cut); ``status`` (None: no response),
    ``error`` (why there was none, else None), ``response_headers`` (lower-case names),
    ``response_body`` (text, cut), ``response_bytes`` (the body's full length),
    ``latency_ms``; ``copy`` (which copy of a burst, from 1; None outside bursts).
    """

    method: str
    url: str
    request_headers: dict[str, str]
    request_body: str
    status: int | None
    error: str | None
    response_headers: dict[str, str]
    response_body: str
    response_bytes: int
    latency_ms: float
    copy: int | None = None

    @classmethod
    def of(cls, request: PreparedRequest, outcome: Outcome, *, copy: int | None = None) -> Exchange:
        return cls(request.method, shown_url(request.url) or "", _headers(request.headers),
                   _body(request.body), outcome.status, outcome.error, _headers(outcome.headers),
                   _body(outcome.body), len(outcome.body), round(outcome.latency_s * 1000, 3), copy)

    def as_data(self) -> dict[str, Any]:
        return {"method": self.method, "url": self.url, "request_headers": self.request_headers,
                "request_body": self.request_body, "status": self.status, "error": self.error,
                "response_headers": self.response_headers, "response_body": self.response_body,
                "response_bytes": self.response_bytes, "latency_ms": self.latency_ms, "copy": self.copy}

    def text(self, indent: str = "") -> str:
        """The exchange as HTTP reads, like ``httpie -v``: request line, headers, body, then
        the status line, headers and body."""
        lines = [f"{self.method} {self.url}" + (f"  (copy {self.copy})" if self.copy else "")]
        lines += [f"{k}: {v}" for k, v in self.request_headers.items()]
        if self.request_body:
            lines += ["", *_pretty(self.request_body).splitlines()]
        lines.append("")
        if self.status is None:
            lines.append(f"(no response: {self.error})")
        else:
            lines.append(f"HTTP {self.status}  ({self.latency_ms:.1f} ms)")
            lines += [f"{k}: {v}" for k, v in self.response_headers.items()]
            if self.response_body:
                lines += ["", *_pretty(self.response_body).splitlines()]
        return "\n".join(indent + line if line else line for line in lines)


def _pretty(text: str) -> str:
    """JSON indented to read (when it is whole JSON), anything else as it is."""
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text
