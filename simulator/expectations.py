"""Checking responses against a scenario's ``expect``: one response, or a whole burst.

Every check yields a ``Check`` that says what was expected and what came back, so a
broken expectation reads as a sentence in the report.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from simulator.transport import Outcome
from simulator.values import MISSING, get_path, interpolate


@dataclass(frozen=True, slots=True)
class Check:
    what: str
    ok: bool
    expected: str
    actual: str

    def __str__(self) -> str:
        mark = "ok" if self.ok else "BROKEN"
        return f"[{mark}] {self.what}: expected {self.expected}, got {self.actual}"


def _show(value: Any) -> str:
    if value is MISSING:
        return "nothing (absent)"
    text = repr(value) if not isinstance(value, str) else f"'{value}'"
    return text if len(text) <= 120 else text[:117] + "..."


def _match(matcher: Any, actual: Any) -> tuple[bool, str]:
    """(holds, expected-as-text) for one matcher against one value."""
    if isinstance(matcher, dict):
        if "present" in matcher:
            want = matcher["present"]
            return (actual is not MISSING) == want, "present" if want else "absent"
        if "pattern" in matcher:
            ok = actual is not MISSING and re.search(matcher["pattern"], str(actual)) is not None
            return ok, f"a match for /{matcher['pattern']}/"
        matcher = matcher["equals"]
    if isinstance(actual, str) and not isinstance(matcher, str):
        return actual == str(matcher), _show(matcher)  # header values are text
    return actual == matcher, _show(matcher)


def status_matches(expected: int | list[int], status: int | None) -> bool:
    return status in expected if isinstance(expected, list) else status == expected


def check_response(expect: dict[str, Any], outcome: Outcome, variables: dict[str, Any],
                   *, prefix: str = "") -> list[Check]:
    """Every check of ``expect`` (status, headers, json) against one response."""
    expect = interpolate(expect, variables)
    checks: list[Check] = []
    if outcome.status is None:
        return [Check(f"{prefix}response", False, "a response", f"none ({outcome.error})")]
    if "status" in expect:
        want = expect["status"]
        checks.append(Check(f"{prefix}status", status_matches(want, outcome.status),
                            " or ".join(map(str, want)) if isinstance(want, list) else str(want),
                            str(outcome.status)))
    for name, matcher in (expect.get("headers") or {}).items():
        actual = outcome.header(name)
        ok, wanted = _match(matcher, MISSING if actual is None else actual)
        checks.append(Check(f"{prefix}header {name}", ok, wanted,
                            _show(MISSING if actual is None else actual)))
    if expect.get("json"):
        document = outcome.json()
        for path, matcher in expect["json"].items():
            actual = get_path(document, path) if document is not MISSING else MISSING
            ok, wanted = _match(matcher, actual)
            checks.append(Check(f"{prefix}json {path}", ok, wanted, _show(actual)))
    return checks


def holds(expect: dict[str, Any], outcome: Outcome, variables: dict[str, Any]) -> bool:
    """True when every check of ``expect`` holds (used by polls' ``until``)."""
    return all(c.ok for c in check_response(expect, outcome, variables))


def winner(outcomes: list[Outcome]) -> Outcome | None:
    """The single 201 of a burst, or None when there is not exactly one."""
    created = [o for o in outcomes if o.status == 201]
    return created[0] if len(created) == 1 else None


def _every_409(outcomes: list[Outcome], what: str, get: Any, want: Any) -> Check:
    conflicts = [(i, o) for i, o in enumerate(outcomes) if o.status == 409]
    wrong = [(i, get(o)) for i, o in conflicts if get(o) != want]
    if not wrong:
        return Check(what, True, f"all {len(conflicts)} 409s: {_show(want)}", "all of them")
    i, got = wrong[0]
    return Check(what, False, f"every 409: {_show(want)}",
                 f"{len(wrong)} of {len(conflicts)} differ (first, response #{i + 1}: {_show(got)})")


def check_burst(expect: dict[str, Any], outcomes: list[Outcome], variables: dict[str, Any]) -> list[Check]:
    """Counts per status, the race invariants, and ``each`` over a burst's responses."""
    expect = interpolate(expect, variables)
    checks: list[Check] = []
    statuses = Counter(o.status for o in outcomes)
    for status, count in (expect.get("counts") or {}).items():
        checks.append(Check(f"count of {status}", statuses.get(int(status), 0) == count,
                            str(count), str(statuses.get(int(status), 0))))
    won = winner(outcomes)
    for name in expect.get("invariants") or []:
        if name == "exactly-one-201":
            checks.append(Check(name, statuses.get(201, 0) == 1, "one 201", f"{statuses.get(201, 0)} 201s"))
        elif won is None:
            checks.append(Check(name, False, "a single 201 to compare 409s with",
                                f"{statuses.get(201, 0)} 201s"))
        elif name == "every-409-targets-the-201":
            winner_id = get_path(won.json(), "id") if won.json() is not MISSING else MISSING
            if winner_id is MISSING:  # nothing to compare with: never a vacuous pass
                checks.append(Check(name, False, "a 201 whose body has an id", "no id in the 201"))
                continue
            checks.append(_every_409(outcomes, name,
                                     lambda o: get_path(o.json(), "error.target")
                                     if o.json() is not MISSING else MISSING, winner_id))
        elif name == "every-409-locates-the-201":
            checks.append(_every_409(outcomes, name, lambda o: o.header("Location") or MISSING,
                                     won.header("Location") or MISSING))
    if "each" in expect:
        broken = [(i, c) for i, o in enumerate(outcomes)
                  for c in check_response(expect["each"], o, variables) if not c.ok]
        if broken:
            i, first = broken[0]
            responses = len({i for i, _ in broken})
            checks.append(Check("each response", False, first.expected,
                                f"{responses} of {len(outcomes)} responses broke it (first, #{i + 1}: "
                                f"{first.what} was {first.actual})"))
        else:
            checks.append(Check("each response", True, "every check", f"all {len(outcomes)} held"))
    return checks


# Timers may wake a hair early; a send this close to the end of a window still honoured it.
RETRY_AFTER_SLACK_S = 0.001


def check_retry_after(sends: list[dict[str, Any]]) -> Check:
    """``honours_retry_after``: no send of a step before the Retry-After of the answer before it
    had passed, counted from when that answer arrived. ``sends`` are the step's tries in
    order, each with ``sent_s``, ``answered_s`` (seconds from the step's start) and
    ``retry_after`` (seconds, or None)."""
    windows, margins, inside = 0, [], []
    for i in range(1, len(sends)):
        before, now = sends[i - 1], sends[i]
        if before.get("retry_after") is None or before.get("answered_s") is None:
            continue
        windows += 1
        margin = now["sent_s"] - before["answered_s"] - before["retry_after"]
        margins.append(margin)
        if margin < -RETRY_AFTER_SLACK_S:
            inside.append((i, margin))
    what = "honours Retry-After"
    if inside:
        i, margin = inside[0]
        return Check(what, False, "no request inside a Retry-After window",
                     f"{len(inside)} of {windows} sent early (first, try {i + 1}: "
                     f"{-margin * 1000:.0f} ms before Retry-After {sends[i - 1]['retry_after']:g} s ended)")
    if not windows:
        return Check(what, True, "no request inside a Retry-After window", "no Retry-After was asked for")
    return Check(what, True, "no request inside a Retry-After window",
                 f"all {windows} waits held (smallest margin {min(margins) * 1000:.0f} ms)")
