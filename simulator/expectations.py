"""Checking responses against a scenario's ``expect``: one response, or a whole burst.

Every check yields a ``Check`` that says what was expected and what came back, so a
broken expectation reads as a sentence in the report.

Patterns are searched with bounded time: Python's ``re`` backtracks, so a pattern such as
``(a+)+$`` can take longer than the universe on a 40-character value, and nothing in a
running search can be interrupted. A pattern of the simple shape (at most one repetition,
none inside another, no alternation inside a repetition, no back-reference) on a value of at
most ``_SIMPLE_SUBJECT`` characters is searched here, where its cost is at worst quadratic in
that bound; any other search runs in a worker process that is killed after
``MATCH_TIME_LIMIT_S``, and the check then fails saying so.
"""

from __future__ import annotations

import multiprocessing
import re
import re._constants as _sre  # type: ignore[import-not-found]  # no stubs for re's internals
import re._parser as _sre_parse  # type: ignore[import-not-found]
from collections import Counter
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from exportjobs.simulator.steps import Expect, ResponseExpectation
from exportjobs.simulator.transport import Outcome
from exportjobs.simulator.values import MISSING, get_path, interpolate


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


MATCH_TIME_LIMIT_S = 1.0
_SIMPLE_SUBJECT = 10_000
_REPEATS = (_sre.MAX_REPEAT, _sre.MIN_REPEAT, _sre.POSSESSIVE_REPEAT)


def pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` cannot be used as an expectation (it does not compile), or None."""
    try:
        re.compile(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        reason = exc if isinstance(exc, re.error) else "it is nested too deeply"
        return f"pattern {pattern!r} is not a regular expression: {reason}"
    return None


def _simple(pattern: str) -> bool:
    """True for a pattern whose search cannot backtrack worse than quadratically: at most
    one repetition of more than one, not inside another, with no alternation inside it
    and no back-reference anywhere."""
    try:
        parsed = _sre_parse.parse(pattern)
    except (re.error, RecursionError, OverflowError):
        return False
    repeats = 0
    stack: list[tuple[Any, bool]] = [(parsed, False)]
    while stack:
        items, in_repeat = stack.pop()
        for op, av in items:
            if op in _REPEATS:
                _low, high, sub = av
                if high > 1:
                    repeats += 1
                    if in_repeat or repeats > 1:
                        return False
                stack.append((sub, in_repeat or high > 1))
            elif op is _sre.BRANCH:
                if in_repeat:
                    return False
                stack.extend((branch, in_repeat) for branch in av[1])
            elif op is _sre.SUBPATTERN:
                stack.append((av[3], in_repeat))
            elif op in (_sre.ASSERT, _sre.ASSERT_NOT):
                stack.append((av[1], in_repeat))
            elif op is _sre.ATOMIC_GROUP:
                stack.append((av, in_repeat))
            elif op in (_sre.GROUPREF, _sre.GROUPREF_EXISTS):
                return False
    return True


def _serve_searches(conn: Connection) -> None:
    """The worker process: answer ``(pattern, text)`` with whether the pattern is found."""
    conn.send("ready")
    while True:
        try:
            pattern, text = conn.recv()
        except EOFError:
            return
        conn.send(re.search(pattern, text) is not None)


class _Searcher:
    """One worker process for searches that might not end, replaced when one overruns."""

    def __init__(self) -> None:
        self.process: Any = None
        self.conn: Connection | None = None
        self.too_slow: set[str] = set()  # patterns that overran once: not tried again

    def _start(self) -> Connection:
        if self.process is None or not self.process.is_alive() or self.conn is None:
            context = multiprocessing.get_context("spawn")
            self.conn, child = context.Pipe()
            self.process = context.Process(target=_serve_searches, args=(child,), daemon=True,
                                           name="exportjobs-pattern-search")
            self.process.start()
            child.close()
            if not self.conn.poll(30) or self.conn.recv() != "ready":
                self._stop()
                raise RuntimeError("the pattern search process did not start")
        return self.conn

    def _stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.join()
        self.process, self.conn = None, None

    def search(self, pattern: str, text: str, limit: float) -> bool | None:
        """Whether ``pattern`` is found in ``text``; None when it took longer than ``limit``."""
        if pattern in self.too_slow:
            return None
        conn = self._start()
        conn.send((pattern, text))
        if conn.poll(limit):
            return bool(conn.recv())
        self._stop()
        self.too_slow.add(pattern)
        return None


_searcher = _Searcher()


def search(pattern: str, text: str, *, limit: float = MATCH_TIME_LIMIT_S) -> bool | None:
    """``re.search(pattern, text) is not None`` in bounded time; None when it overran."""
    if len(text) <= _SIMPLE_SUBJECT and _simple(pattern):
        return re.search(pattern, text) is not None
    return _searcher.search(pattern, text, limit)


def _match(matcher: Any, actual: Any) -> tuple[bool, str]:
    """(holds, expected-as-text) for one matcher against one value."""
    if isinstance(matcher, dict):
        if "present" in matcher:
            want = matcher["present"]
            return (actual is not MISSING) == want, "present" if want else "absent"
        if "pattern" in matcher:
            wanted = f"a match for /{matcher['pattern']}/"
            if actual is MISSING:
                return False, wanted
            text = str(actual)
            found = search(matcher["pattern"], text)
            if found is None:
                return False, (f"{wanted} (the search gave up after {MATCH_TIME_LIMIT_S:g} s on "
                               f"{len(text):,} characters; write a pattern that backtracks less)")
            return found, wanted
        matcher = matcher["equals"]
    if isinstance(actual, str) and not isinstance(matcher, str):
        return actual == str(matcher), _show(matcher)  # header values are text
    return actual == matcher, _show(matcher)


def status_matches(expected: int | tuple[int, ...] | list[int], status: int | None) -> bool:
    return status in expected if isinstance(expected, (tuple, list)) else status == expected


def check_response(expect: ResponseExpectation, outcome: Outcome, variables: dict[str, Any],
                   *, prefix: str = "") -> list[Check]:
    """Every check of ``expect`` (status, headers, json) against one response."""
    checks: list[Check] = []
    if outcome.status is None:
        return [Check(f"{prefix}response", False, "a response", f"none ({outcome.error})")]
    if expect.status is not None:
        want = expect.status
        checks.append(Check(f"{prefix}status", status_matches(want, outcome.status),
                            " or ".join(map(str, want)) if isinstance(want, tuple) else str(want),
                            str(outcome.status)))
    for name, matcher in interpolate(dict(expect.headers), variables).items():
        actual = outcome.header(name)
        ok, wanted = _match(matcher, MISSING if actual is None else actual)
        checks.append(Check(f"{prefix}header {name}", ok, wanted,
                            _show(MISSING if actual is None else actual)))
    if expect.json:
        document = outcome.json()
        for path, matcher in interpolate(dict(expect.json), variables).items():
            actual = get_path(document, path) if document is not MISSING else MISSING
            ok, wanted = _match(matcher, actual)
            checks.append(Check(f"{prefix}json {path}", ok, wanted, _show(actual)))
    return checks


def holds(expect: ResponseExpectation, outcome: Outcome, variables: dict[str, Any]) -> bool:
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


def check_burst(expect: Expect, outcomes: list[Outcome], variables: dict[str, Any]) -> list[Check]:
    """Counts per status, the race invariants, and ``each`` over a burst's responses."""
    checks: list[Check] = []
    statuses = Counter(o.status for o in outcomes)
    for status, count in expect.counts.items():
        checks.append(Check(f"count of {status}", statuses.get(int(status), 0) == count,
                            str(count), str(statuses.get(int(status), 0))))
    won = winner(outcomes)
    for name in expect.invariants:
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
    if expect.each is not None:
        each = expect.each
        broken = [(i, c) for i, o in enumerate(outcomes)
                  for c in check_response(each, o, variables) if not c.ok]
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
