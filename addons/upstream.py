"""Upstream: send exportJobs traffic to another base URL (e.g. the local emulator).

The client keeps seeing its own URLs; the upstream is told the original host and scheme in
``X-Forwarded-Host`` / ``X-Forwarded-Proto``, so the Locations it writes point back there.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from mitmproxy import http


@dataclass(frozen=True, slots=True)
class Upstream:
    scheme: str
    host: str
    port: int
    base_path: str  # prefix put before the client's path, "" or "/something"

    @classmethod
    def parse(cls, text: str) -> Upstream:
        """A base URL like ``http://127.0.0.1:8000``; ValueError says what is wrong."""
        try:
            parts = urlsplit(text.strip())
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"{text!r} is not a URL ({exc})") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{text!r} is not a base URL like http://127.0.0.1:8000")
        if parts.query or parts.fragment:
            raise ValueError(f"{text!r} must not carry a query or fragment")
        default = 443 if parts.scheme == "https" else 80
        return cls(parts.scheme, parts.hostname, port or default, parts.path.rstrip("/"))

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}{self.base_path}"

    def redirect(self, request: http.Request) -> None:
        """Point ``request`` at this upstream, telling it where the client meant to go."""
        original_host = request.host_header or request.host
        request.headers["X-Forwarded-Host"] = original_host
        request.headers["X-Forwarded-Proto"] = request.scheme
        request.scheme = self.scheme
        request.host = self.host  # also rewrites the Host header
        request.port = self.port
        if self.base_path:
            request.path = self.base_path + request.path
