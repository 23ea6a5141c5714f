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
        # What replay made once of a recorded response (addons.replay), by id() of the
        # response: the index holds every interaction it may hand out for as long as it
        # lives, so an id is never another's; at most one entry per recording.
        self.answers: dict[int, Any] = {}

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


# --- near misses -----------------------------------------------------------------------------
#
# Computed only for a request that missed, never on a hit: a miss costs one pass over the
# recorded keys (bounded by NEAR_SCAN) and a comparison with at most NEAR_COMPARE of them.

NEAR_SCAN = 100_000  # recorded keys looked at, at most, to find candidates
NEAR_COMPARE = 50  # candidates compared part by part, at most
NEAR_SHOWN = 2  # nearest recordings named in a miss
_VALUE_CHARS = 120  # a value shown in a miss is cut after this many characters


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return repr(text if len(text) <= _VALUE_CHARS else text[:_VALUE_CHARS] + "...")


def _body_fields(body: tuple[str, str] | None) -> dict[str, Any] | None:
    if body is None or body[0] != "json":
        return None
    value = json.loads(body[1])
    return value if isinstance(value, dict) else None


def key_differences(recorded: Key, got: Key) -> list[str]:
    """What differs between a recorded request's key and a live one's, part by part, in
    VCR.py's words: ``query parameter $filter differs: recorded 'x', got 'y'``."""
    out = []
    if recorded[0] != got[0]:
        out.append(f"method differs: recorded {recorded[0]}, got {got[0]}")
    if recorded[1] != got[1]:
        out.append(f"path differs: recorded {recorded[1]}, got {got[1]}")
    out += _named_differences("query parameter", dict(recorded[2]), dict(got[2]))
    if recorded[3] != got[3]:
        old, new = _body_fields(recorded[3]), _body_fields(got[3])
        if old is None or new is None:
            out.append("body differs" if recorded[3] and got[3]
                       else f"body differs: recorded {'one' if recorded[3] else 'none'}, "
                            f"got {'one' if got[3] else 'none'}")
        else:
            out += _named_differences("body field", old, new)
    return out


def _named_differences(what: str, was: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """How named values (query parameters, body fields) differ, one line each, by name."""
    out = []
    for name in sorted(was.keys() | now.keys()):
        if name not in now:
            out.append(f"{what} {name} missing: recorded {_shown(was[name])}")
        elif name not in was:
            out.append(f"{what} {name} not recorded: got {_shown(now[name])}")
        elif was[name] != now[name]:
            out.append(f"{what} {name} differs: recorded {_shown(was[name])}, got {_shown(now[name])}")
    return out


@dataclass(frozen=True, slots=True)
class NearMiss:
    """A recording close to a request that missed, and how it differs."""

    interaction: dict[str, Any]
    differences: list[str]

    def describe(self) -> str:
        request = self.interaction["request"]
        number = self.interaction.get("interaction")
        name = f"#{number} " if number else ""
        return (f"nearest recording {name}{request['method']} {urlsplit(request['url']).path}: "
                + "; ".join(self.differences))


def near_misses(index: ReplayIndex, request: dict[str, Any], shown: int = NEAR_SHOWN) -> list[NearMiss]:
    """The recordings nearest to ``request`` (which missed), nearest first.

    Candidates are the recordings with the same method and path, else the same path, else
    the same method; at most NEAR_COMPARE of them are compared, and those with the fewest
    differing parts are named."""
    got = request_key(request)
    same_route: list[Key] = []
    same_path: list[Key] = []
    same_method: list[Key] = []
    for scanned, key in enumerate(index._sequences):
        if scanned >= NEAR_SCAN or len(same_route) >= NEAR_COMPARE:
            break
        if key[1] == got[1]:
            (same_route if key[0] == got[0] else same_path).append(key)
        elif key[0] == got[0]:
            same_method.append(key)
    candidates = (same_route or same_path or same_method)[:NEAR_COMPARE]
    ranked = sorted(((key_differences(key, got), key) for key in candidates),
                    key=lambda pair: len(pair[0]))
    return [NearMiss(index._sequences[key].items[0], differences)
            for differences, key in ranked[:shown] if differences]


def explain_miss(index: ReplayIndex, request: dict[str, Any]) -> str:
    """One line naming the nearest recordings and what differs, or that there is none."""
    nearest = near_misses(index, request)
    if not nearest:
        among = f" among the first {NEAR_SCAN} looked at" if len(index._sequences) > NEAR_SCAN else ""
        return f"no recording with the same method or path{among}"
    return " | ".join(near.describe() for near in nearest)
