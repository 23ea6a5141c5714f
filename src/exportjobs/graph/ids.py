"""Ids: GUIDs as Graph writes them, and request ids for every response."""

from __future__ import annotations

import os
import random
import re

_GUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)


def is_guid(value: object) -> bool:
    """True for a GUID string in Graph's 8-4-4-4-12 form (braces are not accepted)."""
    return isinstance(value, str) and _GUID_RE.match(value) is not None


# Request ids need to be unique, not secret: a generator seeded once from the OS draws
# them without a system call per response (``os.urandom`` costs a create about 10 µs).
_request_ids = random.Random()
if hasattr(os, "register_at_fork"):  # POSIX only; elsewhere there is no fork to guard
    os.register_at_fork(after_in_child=_request_ids.seed)  # a forked child must not repeat ours
_VERSION_4 = (0x4000 << 64) | (0x8000 << 48)  # the version nibble and the RFC 4122 variant
_NOT_VERSION_BITS = ~((0xF000 << 64) | (0xC000 << 48))


def new_request_id() -> str:
    """A random version-4 GUID in ``str(uuid.uuid4())`` form (every response needs one)."""
    h = f"{_request_ids.getrandbits(128) & _NOT_VERSION_BITS | _VERSION_4:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
