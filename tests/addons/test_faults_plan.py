"""The fault plan on its own: both syntaxes, errors that name file/line/field, the seed."""

from __future__ import annotations

import textwrap

import pytest

from exportjobs.addons.faultplan import FaultPlan, FaultPlanError, load_plan, parse_short


def started(plan: FaultPlan, seed: int = 1) -> FaultPlan:
    plan.start(seed)
    return plan


def outcomes(plan: FaultPlan, kinds: list[str]) -> list[object]:
    """What each request meets: a status, a latency in ms, or None."""
    out: list[object] = []
    for kind in kinds:
        d = plan.decide(kind, "POST" if kind == "create" else "GET")
        out.append(d.error.status if d.error else (round(d.latency_s * 1000) or None))
    return out


def test_the_short_syntax_reads_every_part():
    plan = parse_short("create:429(2s)@0.3, GET get|content:503#2+4, *:latency(200ms)@1, list:504(1)#1")
    a, b, c, d = plan.rules
    assert (a.kinds, a.status, a.retry_after, a.rate, a.nth) == ({"create"}, 429, 2, 0.3, frozenset())
    assert (b.kinds, b.method, b.status, b.retry_after, b.nth) == ({"get", "content"}, "GET", 503, None, {2, 4})
    assert (c.kinds, c.status, c.latency_s, c.rate) == (frozenset(), None, 0.2, 1.0)
    assert (d.status, d.retry_after, d.nth) == (504, 1, {1})
    assert next(r.text for r in plan.rules) == "create:429(2s)@0.3"


def test_429_carries_retry_after_by_default_and_503_only_when_asked():
    plan = parse_short("create:429#1, get:503#1, list:504(3s)#1")
    assert [r.retry_after for r in plan.rules] == [1, None, 3]


def test_nth_fires_on_exactly_those_matching_requests():
    plan = started(parse_short("get:503#2+3"))
    assert outcomes(plan, ["get", "create", "get", "get", "get"]) == [None, None, 503, 503, None]


def test_latency_adds_up_and_the_first_firing_error_rule_answers():
    plan = started(parse_short("*:latency(10ms)@1, *:latency(5ms)#1, create:504#1, create:429#1"))
    d = plan.decide("create", "POST")
    assert d.error is not None and d.error.status == 504 and round(d.latency_s * 1000) == 15


def test_the_same_seed_gives_the_same_faults_and_another_seed_does_not():
    kinds = ["create", "get", "list", "content"] * 50
    text = "create:429@0.5, get|content:503@0.3, *:latency(1ms)@0.2"
    first = outcomes(started(parse_short(text), 42), kinds)
    again = outcomes(started(parse_short(text), 42), kinds)
    other = outcomes(started(parse_short(text), 43), kinds)
    assert first == again
    assert first != other
    assert 0 < first.count(429) < 50  # a rate, not all or nothing


def test_a_rule_draws_the_same_numbers_whatever_other_rules_do():
    """Adding a rule for another kind must not change when an existing rule fires."""
    kinds = ["create", "get"] * 40
    alone = [o for k, o in zip(kinds, outcomes(started(parse_short("create:429@0.5"), 7), kinds))
             if k == "create"]
    mixed = [o for k, o in zip(kinds, outcomes(started(parse_short("create:429@0.5, get:503@0.5"), 7),
                                                kinds)) if k == "create"]
    assert alone == mixed


@pytest.mark.parametrize("text, says", [
    ("create:418@0.5", "418 is not one of 429, 503, 504"),
    ("create:429@1.5", "rate: 1.5 is not a number from 0 to 1"),
    ("creat:429@0.5", "'creat' is not a kind"),
    ("create:429", "does not read as KIND:ACTION@RATE"),
    ("create:429(1.5s)#1", "whole seconds"),
    ("*:latency(fast)@1", "latency: 'fast' is not a duration"),
    ("create:429#0", "nth: [0] is not a request number"),
    ("create:429@0.5,, get:503#1", "rule 2 ''"),
])
def test_short_syntax_errors_name_the_rule_and_the_field(text, says):
    with pytest.raises(FaultPlanError) as info:
        parse_short(text)
    message = str(info.value)
    assert message.startswith("exportjobs_faults: rule ") and says in message, message
    assert "\n" not in message


def test_a_yaml_plan_reads_like_the_short_one(tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text(textwrap.dedent("""\
        seed: 9
        faults:
          - {match: create, status: 429, retry_after: 2, rate: 0.3}
          - {match: [get, content], method: GET, status: 503, nth: [2, 4]}
          - {match: "*", latency: 200ms, rate: 0.5}
        """))
    plan = load_plan(str(path))
    short = parse_short("create:429(2s)@0.3, GET get|content:503#2+4, *:latency(200ms)@0.5")
    assert plan.seed == 9
    strip = [(r.kinds, r.method, r.status, r.retry_after, r.latency_s, r.rate, r.nth) for r in plan.rules]
    assert strip == [(r.kinds, r.method, r.status, r.retry_after, r.latency_s, r.rate, r.nth)
                     for r in short.rules]
    assert [r.text for r in plan.rules] == ["create:429(2s)@0.3", "GET get|content:503#2+4",
                                            "*:latency(200ms)@0.5"]


@pytest.mark.parametrize("body, where", [
    ("faults:\n  - match: create\n    status: 500\n    rate: 1\n", ":3: faults[1].status"),
    ("faults:\n  - match: create\n    status: 429\n    rate: 1\n    colour: red\n", ":5: faults[1].colour"),
    ("faults:\n  - {match: create, status: 429, rate: 1}\n  - {match: get, latency: 1ms}\n",
     ":3: faults[2].rate: give exactly one of rate"),
    ("seed: 1\nfaluts: []\n", ":2: faluts: unknown field"),
    ("faults: [\n", ":2: not valid YAML"),
    ("faults: []\n", ":1: faults: give a list of rules"),
])
def test_yaml_plan_errors_name_file_line_and_field(tmp_path, body, where):
    path = tmp_path / "plan.yaml"
    path.write_text(body)
    with pytest.raises(FaultPlanError) as info:
        load_plan(str(path))
    assert str(info.value).startswith(f"{path}{where}"), str(info.value)


def test_a_missing_plan_file_says_so(tmp_path):
    with pytest.raises(FaultPlanError, match="cannot be read"):
        load_plan(str(tmp_path / "nope.yaml"))


def test_a_plan_key_that_is_not_a_name_is_a_clear_error(tmp_path):
    from exportjobs.addons.faultplan import FaultPlanError, load_file

    plan = tmp_path / "plan.yaml"
    plan.write_text("faults:\n  - match: create\n    ? [a]\n    : 1\n")
    with pytest.raises(FaultPlanError) as info:
        load_file(str(plan))
    assert f"{plan}:3: faults[1]: keys are field names" in str(info.value)


def test_a_plan_field_given_twice_is_an_error_not_a_silent_choice(tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text("faults:\n  - match: create\n    status: 429\n    rate: 1\n    status: 503\n")
    with pytest.raises(FaultPlanError) as info:
        load_plan(str(plan))
    assert str(info.value).startswith(f"{plan}:5: 'status' is given twice"), str(info.value)
