"""Approval requests sealed with the context's audit key, so that whoever can write to Redis
(a gateway's or the policy endpoint's credentials reach the same server) cannot forge one: not
a request (a plan, a runbook path and parameters that `runbook resume` would run, and what the
approver is shown: the plan's steps and why), nor an approval of one. The consoles of a context
share the audit key already (each verifies the others' records); a console with another key
refuses the request and says so."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from console.adapters.approval_store import ApprovalRecord
from console.errors import ApprovalError
from console.runbooks.model import Runbook

_REQUEST_FIELDS = (
    "run_id",
    "runbook",
    "runbook_path",
    "runbook_sha256",
    "tags",
    "target",
    "targets",
    "params",
    "secrets_mac",
    "plan",
    "why",
    "fingerprints",
    "requester",
    "environment",
    "context",
    "approvers",
    "created_at",
    "expires_at",
)
_DECISION_FIELDS = ("run_id", "request_mac", "status", "decided_by", "decided_at", "reason")


def _mac(key: bytes, record: ApprovalRecord, fields: tuple[str, ...]) -> str:
    data: dict[str, Any] = record.model_dump(mode="json", include=set(fields))
    body = json.dumps(
        data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    ).encode()
    return hmac.new(key, b"aml-approval\0" + body, hashlib.sha256).hexdigest()


def secrets_digest(key: bytes, runbook: Runbook, values: dict[str, Any]) -> str:
    """An HMAC of the run's secret parameter values: a request stores no secret, yet a resume
    given other secrets than the approved ones is refused."""
    secret = {n: values.get(n) for n, spec in runbook.parameters.items() if spec.secret}
    body = json.dumps(secret, sort_keys=True, default=str).encode()
    return hmac.new(key, b"aml-approval-secrets\0" + body, hashlib.sha256).hexdigest()


def seal_request(key: bytes, record: ApprovalRecord) -> ApprovalRecord:
    return record.model_copy(update={"request_mac": _mac(key, record, _REQUEST_FIELDS)})


def seal_decision(key: bytes, record: ApprovalRecord) -> ApprovalRecord:
    return record.model_copy(update={"decision_mac": _mac(key, record, _DECISION_FIELDS)})


def check_request(key: bytes, record: ApprovalRecord) -> None:
    if not hmac.compare_digest(record.request_mac, _mac(key, record, _REQUEST_FIELDS)):
        raise ApprovalError(
            f"approval request {record.run_id} is not sealed with this context's audit key "
            "(written to Redis by something else, or a console with another key): refused"
        )


def check_decision(key: bytes, record: ApprovalRecord) -> None:
    check_request(key, record)
    if not hmac.compare_digest(record.decision_mac, _mac(key, record, _DECISION_FIELDS)):
        raise ApprovalError(
            f"the approval of run {record.run_id} is not sealed with this context's audit key "
            "(changed in Redis by something else): refused"
        )
