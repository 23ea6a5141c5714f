"""What happened to an exportJobs flow, written on the flow itself for mitmproxy's UIs.

Every outcome of the addons (recorded, replayed, missed, faulted, held by the gate,
refused) sets ``flow.marked`` and adds to ``flow.comment``, so mitmweb, the mitmproxy
console and a saved flow file show the story of each exchange next to it (docs/web-ui.md).

These functions run in the proxy's hooks, on every exportJobs flow: each is a couple of
plain attribute sets on text its caller already has (the note of the console line, the
miss diagnosis), never formatting of its own beyond joining two strings.

A mark is one of mitmproxy's emoji short codes (mitmproxy >= 10): the console and mitmweb
both draw it (an unknown string would be drawn as a red dot). A fault's mark stays once
set: a replayed or recorded flow whose client got an injected answer still shows the fault.
The comment is a history: each outcome is appended (``; ``), so a held create reads
``GATE held 2 of 3, released (count); recorded #7``, and a comment the user typed is kept.
"""

from __future__ import annotations

from mitmproxy import http

RECORDED = ":floppy_disk:"  # 💾 recorded to the cassette
REPLAYED = ":leftwards_arrow_with_hook:"  # ↩ answered from the cassette
REPEATED = ":repeat:"  # 🔁 answered from the cassette, its recordings used up: the last again
MISSED = ":x:"  # ❌ no recording matches (or it cannot be used): a Graph 404/5xx from the proxy
FAULT = ":zap:"  # ⚡ an injected error, lost response or Retry-After enforcement
SLOWED = ":snail:"  # 🐌 latency injected, the flow otherwise went on as usual
HELD = ":hourglass_flowing_sand:"  # ⏳ held by the race gate
RELEASED = ":vertical_traffic_light:"  # 🚦 released by the race gate
REFUSED = ":no_entry:"  # ⛔ refused: the proxy failed closed and answered it itself

# mark -> what it means, for the docs and the tests (docs/web-ui.md lists them).
MARKS = {
    RECORDED: "recorded #N",
    REPLAYED: "replayed #N (a hit)",
    REPEATED: "replayed #N again (its recordings used up; repeat-last)",
    MISSED: "MISS: nothing recorded matches; the nearest difference follows",
    FAULT: "FAULT injected",
    SLOWED: "latency injected",
    HELD: "GATE held",
    RELEASED: "GATE released",
    REFUSED: "refused (fail closed)",
}


def _add(flow: http.HTTPFlow, mark: str, text: str) -> None:
    """A quiet outcome: appended; the mark is set unless a fault's is there."""
    comment = flow.comment
    flow.comment = f"{comment}; {text}" if comment else text
    if flow.marked != FAULT:
        flow.marked = mark


def _set(flow: http.HTTPFlow, mark: str, text: str) -> None:
    """A loud outcome (what the client got is the proxy's own answer): its mark wins."""
    comment = flow.comment
    flow.comment = f"{comment}; {text}" if comment else text
    flow.marked = mark


def recorded(flow: http.HTTPFlow, number: int) -> None:
    """Interaction ``number`` of the cassette holds this exchange."""
    _add(flow, RECORDED, f"recorded #{number}")


def replayed(flow: http.HTTPFlow, number: object, repeat: bool) -> None:
    """Answered from the cassette's interaction ``number``; ``repeat`` when its recordings
    were used up and the last one was served again."""
    if repeat:
        _add(flow, REPEATED, f"replayed #{number} (repeat: recordings used up)")
    else:
        _add(flow, REPLAYED, f"replayed #{number}")


def missed(flow: http.HTTPFlow, note: str) -> None:
    """No usable recording: ``note`` is the console line's (the nearest difference)."""
    _set(flow, MISSED, "MISS: " + note)


def fault(flow: http.HTTPFlow, what: str) -> None:
    """The Faults addon answered, or will take the answer away: ``what`` names the fault."""
    _set(flow, FAULT, "FAULT injected: " + what)


def slowed(flow: http.HTTPFlow, latency_ms: float) -> None:
    """The Faults addon delayed the request by ``latency_ms``."""
    _add(flow, SLOWED, f"FAULT latency +{latency_ms:g}ms")


def held(flow: http.HTTPFlow, position: int, count: int) -> None:
    """The race gate holds this create, the ``position``-th of the ``count`` it waits for."""
    _add(flow, HELD, f"GATE held {position} of {count}")


def released(flow: http.HTTPFlow, reason: str) -> None:
    """The race gate let this create go on (``reason``: count reached, or timeout)."""
    flow.comment = f"{flow.comment}, released ({reason})"
    if flow.marked != FAULT:
        flow.marked = RELEASED


def refused(flow: http.HTTPFlow, why: str) -> None:
    """The proxy answered this request itself instead of forwarding it (fail closed)."""
    _set(flow, REFUSED, "refused: " + why)


__all__ = ["FAULT", "HELD", "MARKS", "MISSED", "RECORDED", "REFUSED", "RELEASED", "REPEATED",
           "REPLAYED", "SLOWED", "fault", "held", "missed", "recorded", "refused", "released",
           "replayed", "slowed"]
