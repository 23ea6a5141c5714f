"""Scenario helpers the runner tests share."""

from __future__ import annotations

import textwrap

from exportjobs.simulator.scenario import parse_scenario

RACE = """\
name: race
variables:
  org: {generate: guid}
  view: {generate: guid}
steps:
  - name: burst
    burst:
      count: 30
      release: RELEASE
      request:
        method: POST
        path: /beta/employeeExperience/goals/exportJobs
        json: {goalsOrganizationId: "${org}", explorerViewId: "${view}"}
    expect:
      counts: {201: 1, 409: 29}
      invariants: [exactly-one-201, every-409-targets-the-201, every-409-locates-the-201]
    save:
      job_id: {json: id}
  - name: read the winner
    request: {path: "/beta/employeeExperience/goals/exportJobs/${job_id}"}
    expect: {status: 200, json: {id: "${job_id}"}}
"""


def scenario(text: str, name: str = "t.yaml"):
    return parse_scenario(textwrap.dedent(text), name)


def broken(result) -> list[str]:
    return [f"{s.step.name}: {c.what}" for s in result.steps for c in s.checks if not c.ok]
