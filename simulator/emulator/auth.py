"""Bearer-token checks as Graph applies them to exportJobs, and fake tokens for tests.

Signatures are not verified (there is no tenant to verify against); what a client can
observe is reproduced: a missing token is 401, an expired or unreadable JWT is 401, and a
JWT whose ``scp`` lacks the permission the call needs is 403. Opaque tokens pass.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass

from exportjobs.graph import load_json

READ_WRITE = "Goals-Export.ReadWrite.All"
READ = "Goals-Export.Read.All"
_WRITE_SCOPES = frozenset({READ_WRITE.lower()})
_READ_SCOPES = frozenset({READ.lower(), READ_WRITE.lower()})


@dataclass(frozen=True, slots=True)
class AuthFailure:
    status: int
    code: str
    message: str


_NO_TOKEN = AuthFailure(401, "InvalidAuthenticationToken", "Access token is empty.")
_BAD_TOKEN = AuthFailure(401, "InvalidAuthenticationToken", "Access token validation failure.")
_EXPIRED = AuthFailure(
    401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired."
)
_DENIED = AuthFailure(
    403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
)


def _b64json(segment: str) -> object:
    """A JWT segment's JSON; any failure (bad base64, UTF-8 or JSON, nesting past
    ``MAX_JSON_DEPTH``) is a ``ValueError`` (``binascii.Error`` is one)."""
    return load_json(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def check_authorization(header: str | None, *, write: bool) -> AuthFailure | None:
    """None when ``header`` may make the call (``write`` for POST), else the failure."""
    if not header:
        return _NO_TOKEN
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return _NO_TOKEN
    parts = token.split(".")
    if len(parts) != 3:
        return None  # opaque token
    try:
        header_obj = _b64json(parts[0])
    except ValueError:
        return None  # three dots but not a JWT: treat as opaque
    if not isinstance(header_obj, dict):
        return None
    try:
        claims = _b64json(parts[1])
    except ValueError:
        return _BAD_TOKEN
    if not isinstance(claims, dict):
        return _BAD_TOKEN
    exp = claims.get("exp")
    if isinstance(exp, (int, float)) and exp < time.time():
        return _EXPIRED
    scopes = {s.lower() for s in str(claims.get("scp", "")).split()}
    if not scopes & (_WRITE_SCOPES if write else _READ_SCOPES):
        return _DENIED
    return None


def fake_token(scopes: str = READ_WRITE, *, lifetime_s: int = 3600, **claims: object) -> str:
    """An unsigned JWT carrying ``scp`` = ``scopes``; the emulator reads its claims."""

    def seg(obj: object) -> str:
        raw = json.dumps(obj, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    now = int(time.time())
    body = {"aud": "https://graph.microsoft.com", "iat": now, "exp": now + lifetime_s,
            "scp": scopes, **claims}
    return f"{seg({'typ': 'JWT', 'alg': 'none'})}.{seg(body)}.unsigned"
