"""Runbook files the tests write: block a client, pause (so a test can kill, pipe or break
the run mid-way), then lower its budget."""

from __future__ import annotations


def block_pause_budget(name: str, reason: str, pause: str = "2s") -> str:
    return f"""\
name: {name}
target: "client:{{{{ params.client }}}}"
parameters:
  client: {{type: string, required: true, pattern: '^[a-z0-9-]+$'}}
steps:
  - id: block
    action: policy.block_client
    with: {{client: "{{{{ params.client }}}}", ttl: 1h, reason: {reason}}}
  - id: pause
    action: control.wait
    with: {{duration: {pause}, reason: give the test time to act on the run}}
  - id: budget
    action: policy.set_budget
    with: {{client: "{{{{ params.client }}}}", qpm: 5}}
"""
