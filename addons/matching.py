"""The one request matcher: which recorded interaction answers a live request.

A request's key is its method, its path (Graph's fixed segments case-insensitive, the job
id as sent), its query (order-insensitive) and its body (JSON compared as data). Headers are
not part of the key. Recorded interactions with the same key form a sequence, served in the
order they arrived at the proxy while recording; the index is a dict, so a lookup costs the
same with 10 or 100,000 recordings.
"""

from __future__ import annotations

import enum
import gc
import json
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from exportjobs.addons.cassette import Cassette, load_cassette
from exportjobs.graph import match_exportjobs

Key = tuple[str, str, tuple[tuple[str, str], ...], tuple[str, str] | None]

REPEAT_LAST = "repeat-last"
ERROR = "error"
EXHAUSTION_POLICIES = (REPEAT_LAST, ERROR)
# Interactions the proxy made up itself (addons/faults.py) carry this key; they are not the
# service's answers, so they are never replayed.
INJECTED = "injected"


def _path_key(path: str) -> str:
    route = match_exportjobs(path)
    if route is None:
        return unquote(path).lower()
    key = f"/{route.version.lower()}/employeeexperience/goals/exportjobs"
    if route.job_id is not None:
        key += "/" + route.job_id  # ids are opaque and case-sensitive
        if route.resource == "content":
            key += "/content"
    return key


def _body_key(request: dict[str, Any]) -> tuple[str, str] | None:
    if "json" in request:
        return "json", json.dumps(request["json"], sort_keys=True, separators=(",", ":"),
                                  ensure_ascii=False)
    for kind in ("text", "base64"):
        if kind in request:
            return kind, str(request[kind])
    return None


def request_key(request: dict[str, Any]) -> Key:
    """The key of a request in cassette shape (``cassette.request_doc``)."""
    url = urlsplit(request["url"])
    query = tuple(sorted(parse_qsl(url.query, keep_blank_values=True)))
    return request["method"].upper(), _path_key(url.path), query, _body_key(request)


class Outcome(enum.Enum):
    HIT = "hit"  # the next recorded response of the sequence
    REPEAT = "repeat"  # sequence used up, last response again (policy repeat-last)
    EXHAUSTED = "exhausted"  # sequence used up, policy error
    MISS = "miss"  # nothing recorded for this request


@dataclass(frozen=True, slots=True)
class Take:
    outcome: Outcome
    interaction: dict[str, Any] | None
    position: int  # 1-based: this was the n-th request with this key
    recorded: int  # how many responses were recorded for this key


class _Sequence:
    __slots__ = ("items", "served")

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items
        self.served = 0


class ReplayIndex:
    """Recorded interactions by key; ``take`` hands out each sequence in recorded order."""

    def __init__(self, interactions: Iterable[dict[str, Any]], exhausted: str = REPEAT_LAST) -> None:
        if exhausted not in EXHAUSTION_POLICIES:
            raise ValueError(f"exhaustion policy must be one of {EXHAUSTION_POLICIES}, not {exhausted!r}")
        self.exhausted = exhausted
        groups: dict[Key, list[dict[str, Any]]] = {}
        count = 0
        collecting = gc.isenabled()
        gc.disable()  # a key per recording, none garbage: collections would only cost time
        try:
            for item in interactions:
                if INJECTED in item:
                    continue
                groups.setdefault(request_key(item["request"]), []).append(item)
                count += 1
        finally:
            if collecting:
                gc.enable()
        self._sequences: dict[Key, _Sequence] = {}
        for key, items in groups.items():
            items.sort(key=lambda i: i.get("interaction", 0))  # arrival order at the proxy
            self._sequences[key] = _Sequence(items)
        self.size = count
        self._lock = threading.Lock()  # take() is atomic even if called from several threads

    def take(self, request: dict[str, Any]) -> Take:
        sequence = self._sequences.get(request_key(request))
        if sequence is None:
            return Take(Outcome.MISS, None, 0, 0)
        with self._lock:
            served = sequence.served
            sequence.served += 1
        total = len(sequence.items)
        if served < total:
            return Take(Outcome.HIT, sequence.items[served], served + 1, total)
        if self.exhausted == REPEAT_LAST:
            return Take(Outcome.REPEAT, sequence.items[-1], served + 1, total)
        return Take(Outcome.EXHAUSTED, None, served + 1, total)


def load_index(path: str | os.PathLike[str], exhausted: str = REPEAT_LAST) -> tuple[Cassette, ReplayIndex]:
    """A cassette and its replay index: loaded means indexed. Raises ``CassetteError`` (the
    file, the document and line, what to do) and nothing else for any file: the loader
    admits only interactions whose every value a key or a replayed response is made from is
    checked (JSON values, bounded in size and depth, a url that splits), so indexing what it
    returns cannot fail."""
    cassette = load_cassette(path)
    return cassette, ReplayIndex(cassette.interactions, exhausted)
