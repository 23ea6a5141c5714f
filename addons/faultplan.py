"""The fault plan: which exportJobs requests the proxy answers with a made-up failure.

A plan is a list of rules, read from a YAML file or from a short option string (the
syntax is in docs/faults.md). Each rule matches request kinds (``create``, ``list``,
``get``, ``content``, or ``*``), fires at a ``rate`` or for the ``nth`` matching request,
and either answers 429/503/504 (with ``Retry-After``), adds latency, or loses the response
(``lost``: the request reaches the service, then the client gets a 504 or a closed
connection instead of the service's answer). Every rule draws
from its own RNG seeded with the plan's seed and the rule's position, once per matching
request, so the same requests in the same order meet the same faults on every run.
"""

from __future__ import annotations

import math
import os
import random
import re
from dataclasses import dataclass, field
from typing import Any

from exportjobs.yamldoc import YamlError, read_yaml

KINDS = ("create", "list", "get", "content")
STATUSES = (429, 503, 504)
RETRY_AFTER_DEFAULT = {429: 1}  # Graph always sends Retry-After with 429; 503/504 when asked
# What a lost response turns into: a Graph 504, or the client's connection closed (reset).
LOST_ANSWERS = ("504", "reset")


class FaultPlanError(ValueError):
    """A plan that cannot be used; the message names the file and line (or rule) and field."""


@dataclass(frozen=True)
class FaultRule:
    number: int  # 1-based position in the plan
    kinds: frozenset[str]  # empty: any kind
    method: str | None
    status: int | None  # an error answer, or None for latency
    retry_after: int | None  # whole seconds, as HTTP and Graph write it
    latency_s: float
    rate: float | None
    nth: frozenset[int]
    text: str  # how the rule reads, for console lines and the cassette
    lost: str | None = None  # one of LOST_ANSWERS: forward, then answer this instead

    def matches(self, kind: str, method: str) -> bool:
        return (not self.kinds or kind in self.kinds) and (self.method is None or self.method == method)


@dataclass(frozen=True)
class Decision:
    """What the plan does to one request: an error rule (or None) and latency to add."""

    error: FaultRule | None
    latency_s: float
    latency_rules: tuple[FaultRule, ...] = ()


@dataclass
class FaultPlan:
    rules: list[FaultRule]
    seed: int | None = None  # from the plan file; the option overrides it
    source: str = ""
    _seen: list[int] = field(default_factory=list, repr=False)
    _dice: list[random.Random] = field(default_factory=list, repr=False)

    def start(self, seed: int) -> None:
        """Reset counters and RNGs: the plan then behaves exactly as on any run with ``seed``."""
        self.seed = seed
        self._seen = [0] * len(self.rules)
        self._dice = [random.Random(f"{seed}:{rule.number}") for rule in self.rules]

    def decide(self, kind: str, method: str) -> Decision:
        """Count and roll every matching rule (so one rule's outcome never shifts another's
        stream); the first error rule that fires answers, latency rules add up."""
        error: FaultRule | None = None
        latency, delayed = 0.0, []
        for i, rule in enumerate(self.rules):
            if not rule.matches(kind, method):
                continue
            self._seen[i] += 1
            roll = self._dice[i].random()
            fires = self._seen[i] in rule.nth if rule.rate is None else roll < rule.rate
            if not fires:
                continue
            if rule.status is None and rule.lost is None:
                latency += rule.latency_s
                delayed.append(rule)
            elif error is None:
                error = rule
        return Decision(error, latency, tuple(delayed))


# --- reading ------------------------------------------------------------------------------

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s)?$")


def _duration(value: Any, unit: str = "ms") -> float:
    """Seconds from ``200ms``, ``1.5s``, or a bare number in ``unit``."""
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, (int, float)):
        number, given = float(value), unit
    else:
        m = _DURATION.match(str(value).strip())
        if m is None:
            raise ValueError
        number, given = float(m[1]), m[2] or unit
    if not math.isfinite(number) or number < 0:
        raise ValueError
    return number / 1000 if given == "ms" else number


def _rule(number: int, raw: dict[str, Any], text: str, where: Any) -> FaultRule:
    """A rule from its fields; ``where(field)`` gives the prefix naming the rule and field."""
    known = {"match", "method", "status", "lost", "retry_after", "latency", "rate", "nth"}
    for key in raw:
        if key not in known:
            raise FaultPlanError(f"{where(key)}: unknown field; use {', '.join(sorted(known))}")
    kinds = raw.get("match", "*")
    kinds = [kinds] if isinstance(kinds, str) else kinds
    if not isinstance(kinds, list) or not kinds or not all(isinstance(k, str) for k in kinds):
        raise FaultPlanError(f"{where('match')}: give a kind or a list of kinds ({', '.join(KINDS)}, *)")
    for kind in kinds:
        if kind not in (*KINDS, "*", "any"):
            raise FaultPlanError(f"{where('match')}: {kind!r} is not a kind; use {', '.join(KINDS)} or *")
    kind_set = frozenset() if {"*", "any"} & set(kinds) else frozenset(kinds)
    method = raw.get("method")
    if method is not None and (not isinstance(method, str) or method.upper() not in ("GET", "POST")):
        raise FaultPlanError(f"{where('method')}: exportJobs takes GET or POST, not {method!r}")
    status, latency, lost = raw.get("status"), raw.get("latency"), raw.get("lost")
    if [status, latency, lost].count(None) != 2:
        raise FaultPlanError(f"{where('status')}: give exactly one of status (429, 503, 504), "
                             "latency or lost (504 or reset)")
    retry_after = None
    latency_s = 0.0
    if lost is not None:
        lost = str(lost).strip().lower()
        if lost not in LOST_ANSWERS:
            raise FaultPlanError(f"{where('lost')}: {raw.get('lost')!r} is not 504 or reset")
        if "retry_after" in raw:
            raise FaultPlanError(f"{where('retry_after')}: a lost response carries no Retry-After")
        status = 504 if lost == "504" else None
    elif status is not None:
        if status not in STATUSES or isinstance(status, bool):
            raise FaultPlanError(f"{where('status')}: {status!r} is not one of 429, 503, 504")
        retry_after = raw.get("retry_after", RETRY_AFTER_DEFAULT.get(status))
        if retry_after is not None:
            try:
                seconds = _duration(retry_after, "s")
            except ValueError:
                raise FaultPlanError(f"{where('retry_after')}: {retry_after!r} is not whole seconds (e.g. 2)") from None
            if seconds != int(seconds):
                raise FaultPlanError(f"{where('retry_after')}: Retry-After is whole seconds, not {retry_after!r}")
            retry_after = int(seconds)
    else:
        if "retry_after" in raw:
            raise FaultPlanError(f"{where('retry_after')}: only an error status carries Retry-After")
        try:
            latency_s = _duration(latency)
        except ValueError:
            raise FaultPlanError(f"{where('latency')}: {latency!r} is not a duration like 200ms or 1.5s") from None
    rate, nth = raw.get("rate"), raw.get("nth")
    if (rate is None) == (nth is None):
        raise FaultPlanError(f"{where('rate')}: give exactly one of rate (0 to 1) or nth (1, 2, ...)")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1):
        raise FaultPlanError(f"{where('rate')}: {rate!r} is not a number from 0 to 1")
    nths = [nth] if nth is not None and not isinstance(nth, list) else (nth or [])
    if any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in nths):
        raise FaultPlanError(f"{where('nth')}: {nth!r} is not a request number (1 is the first) or a list of them")
    return FaultRule(number, kind_set, method.upper() if method else None, status, retry_after,
                     latency_s, None if rate is None else float(rate), frozenset(nths), text, lost)


def _describe(raw: dict[str, Any]) -> str:
    """A rule in the short syntax, whichever way it was written."""
    kinds = raw.get("match", "*")
    kinds = "|".join(kinds) if isinstance(kinds, list) else str(kinds)
    if raw.get("method"):
        kinds = f"{str(raw['method']).upper()} {kinds}"
    if raw.get("lost") is not None:
        action = f"lost({raw['lost']})"
    elif raw.get("status") is not None:
        ra = raw.get("retry_after", RETRY_AFTER_DEFAULT.get(raw["status"]))
        action = f"{raw['status']}" + (f"({ra}s)" if ra is not None else "")
    else:
        action = f"latency({raw.get('latency')})"
    nth = raw.get("nth")
    when = f"@{raw['rate']:g}" if raw.get("rate") is not None else (
        "#" + "+".join(map(str, nth if isinstance(nth, list) else [nth])))
    return f"{kinds}:{action}{when}"


_SHORT = re.compile(
    r"^(?:(?P<method>GET|POST)\s+)?(?P<kinds>[a-z*|]+):"
    r"(?:(?P<status>\d{3})(?:\((?P<ra>[^)]*)\))?|latency\((?P<latency>[^)]*)\)|lost\((?P<lost>[^)]*)\))"
    r"(?:@(?P<rate>[^#@]+)|#(?P<nth>[\d+]+))$",
    re.IGNORECASE,
)


def parse_short(text: str, source: str = "exportjobs_faults") -> FaultPlan:
    """``create:429(2s)@0.3, get:503#2, *:latency(200ms)@0.5`` -> a plan."""
    rules = []
    items = [item.strip() for item in text.split(",")]
    for number, item in enumerate(items, 1):
        def where(key: str, item: str = item, number: int = number) -> str:
            return f"{source}: rule {number} {item!r}, {key}" if source else f"rule {number} {item!r}, {key}"

        m = _SHORT.match(item)
        if m is None:
            raise FaultPlanError(
                f"{source}: rule {number} {item!r} does not read as KIND:ACTION@RATE or KIND:ACTION#N "
                "(e.g. create:429(2s)@0.3, get:503#2, *:latency(200ms)@0.5, create:lost(504)#1)")
        raw: dict[str, Any] = {"match": m["kinds"].lower().split("|")}
        if m["method"]:
            raw["method"] = m["method"]
        if m["status"]:
            raw["status"] = int(m["status"])
            if m["ra"] is not None:
                raw["retry_after"] = m["ra"].strip()
        elif m["lost"] is not None:
            raw["lost"] = m["lost"].strip()
        else:
            raw["latency"] = m["latency"].strip()
        if m["rate"] is not None:
            try:
                raw["rate"] = float(m["rate"])
            except ValueError:
                raise FaultPlanError(f"{where('rate')}: {m['rate']!r} is not a number from 0 to 1") from None
        else:
            parts = m["nth"].split("+")
            if not all(p.isdigit() for p in parts):
                raise FaultPlanError(f"{where('nth')}: write #N or #N+M (request numbers)")
            raw["nth"] = [int(p) for p in parts]
        rules.append(_rule(number, raw, item, where))
    return FaultPlan(rules, source=source)


def _field(where: tuple[Any, ...] | None) -> str:
    """``faults[2].match: `` for a data path in a plan (rules count from 1), ``the plan: ``
    for its top, nothing when there is no path."""
    if where is None:
        return ""
    if not where:
        return "the plan: "
    if where[0] == "faults" and len(where) > 1 and isinstance(where[1], int):
        rest = "".join(f".{k}" for k in where[2:])
        return f"faults[{where[1] + 1}]{rest}: "
    return ".".join(str(k) for k in where) + ": "


def load_file(path: str) -> FaultPlan:
    """A plan from a YAML file: ``seed`` (optional) and ``faults``, a list of rules."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise FaultPlanError(f"{path}: cannot be read ({exc.strerror}); check the path") from None
    try:
        doc = read_yaml(text)
    except YamlError as exc:
        line = f":{exc.line}" if exc.line else ""
        raise FaultPlanError(f"{path}{line}: {_field(exc.path)}{exc.message}") from None
    if doc.problems:
        first = doc.problems[0]
        raise FaultPlanError(f"{path}:{first.line}: {first.message}")
    top = doc.data
    if not isinstance(top, dict):
        raise FaultPlanError(f"{path}:1: a fault plan is a mapping with 'faults:' (a list of rules)")
    for key in top:
        if key not in ("seed", "faults"):
            raise FaultPlanError(f"{path}:{doc.line([key])}: {key}: unknown field; use seed, faults")
    seed = top.get("seed")
    if "seed" in top and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise FaultPlanError(f"{path}:{doc.line(['seed'])}: seed: give a whole number")
    faults = top.get("faults")
    if not isinstance(faults, list) or not faults:
        raise FaultPlanError(f"{path}:{doc.line(['faults'])}: faults: give a list of rules "
                             "(see docs/faults.md)")
    rules = []
    for number, raw in enumerate(faults, 1):
        if not isinstance(raw, dict):
            raise FaultPlanError(f"{path}:{doc.line(['faults', number - 1])}: faults[{number}]: "
                                 "a rule is a mapping")

        def where(key: str, number: int = number) -> str:
            return f"{path}:{doc.line(['faults', number - 1, key])}: faults[{number}].{key}"

        try:
            text = _describe(raw)
        except (TypeError, ValueError, KeyError):
            text = f"rule {number}"
        rules.append(_rule(number, raw, text, where))
    return FaultPlan(rules, seed=seed, source=path)


def load_plan(value: str) -> FaultPlan:
    """The plan an ``exportjobs_faults`` value names: a YAML file, or rules in the short syntax."""
    value = value.strip()
    if value.lower().endswith((".yaml", ".yml")) or os.path.isfile(value):
        return load_file(value)
    return parse_short(value, source="")  # the option's name is the caller's to add


def new_seed() -> int:
    return random.SystemRandom().randrange(1, 1 << 31)
