"""Errors the console shows to people.

Every failure that reaches the CLI or the TUI is a ``ConsoleError``; anything else is a bug.

    ConsoleError
    ├── ConfigError                 bad or missing configuration
    ├── ReadOnlyError               read-only mode refused an action (a runbook, a lab write)
    ├── AdapterError                a backend (Redis, MLflow, Alertmanager, HTTP) failed
    │   ├── BackendUnavailable      could not connect, or timed out (retryable)
    │   └── BackendResponseError    answered, but with an error status or garbage
    │       ├── BackendAuthError    refused the credentials (401, 403)
    │       └── SeriesLimitError    a query engine refused a query over its series or
    │                               sample limit (the answer would have been cut)
    ├── RunbookError
    │   ├── RunbookValidationError  a runbook file is not valid (carries every problem)
    │   ├── ParameterError          a parameter value is not acceptable
    │   ├── ConfirmationRequired    not interactive and no --yes
    │   ├── LockHeldError           someone else holds the target
    │   ├── StalePlanError          the target changed between plan and apply
    │   ├── PreconditionFailed      a precondition of the runbook does not hold
    │   ├── AccessDenied            the context's ACL policy refused the operator (or the
    │   │                           two-person rule: nobody approves their own run)
    │   ├── ApprovalError           a run's approval request cannot be used as asked
    │   │   ├── ApprovalPending     it still waits for a decision
    │   │   ├── ApprovalDenied      another operator denied it
    │   │   └── ApprovalExpired     its ttl passed before it was approved and run
    │   └── RunNotFound / RunStateError
    ├── AuditError
    │   └── AuditWriteError         a record could not be written: the action does not run
    ├── ArtifactRefused             a model version's artifact failed its checks (sha256 tag,
    │                               size, ONNX contract): it is never run
    ├── ReplayError                 a replay cannot run as asked (no samples, unknown version)
    ├── DrillError                  a drill scenario is invalid, or a drill cannot run
    │   └── DrillScenarioError      a scenario file is not valid (carries every problem)
    ├── IncidentError               an incident cannot be opened, noted or closed as asked
    │   └── IncidentNotFound        no incident has that id (or it is not an incident id)
    └── LabError                    the lab launcher could not start or stop a service
"""

from __future__ import annotations


class ConsoleError(Exception):
    """Base class: ``str(err)`` is a one-line reason fit for a person."""

    def __init__(self, message: str, title: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.title = title

    def __str__(self) -> str:
        return self.message


class ConfigError(ConsoleError):
    pass


class AdapterError(ConsoleError):
    """A backend call failed. ``retryable`` says whether trying again may help."""

    retryable: bool = False

    def __init__(self, message: str, backend: str = "", status: int | None = None) -> None:
        super().__init__(message, title=backend)
        self.backend = backend
        self.status = status


class BackendUnavailable(AdapterError):
    retryable = True


class BackendResponseError(AdapterError):
    def __init__(self, message: str, backend: str = "", status: int | None = None) -> None:
        super().__init__(message, backend, status)
        # 5xx and 429 may pass; 4xx (400, 404, 409, 422) will not.
        self.retryable = status is not None and (status >= 500 or status == 429)


class BackendAuthError(BackendResponseError):
    """401 or 403: "prometheus at https://host:9090 refused the credentials (401)". Never
    retried: the same credentials are refused again."""


class SeriesLimitError(BackendResponseError):
    """The engine would not answer: the query matched more series (or samples) than it
    allows (VictoriaMetrics' ``-search.maxUniqueTimeseries``, Prometheus'
    ``--query.max-samples``, Mimir's and Thanos' series limits). A view says its answer is
    truncated instead of failing."""


class RunbookError(ConsoleError):
    pass


class RunbookValidationError(RunbookError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems) if problems else "invalid runbook")


class ParameterError(RunbookError):
    pass


class AccessDenied(RunbookError):
    """The context's ACL policy (``[acl] path``) refused: the message names the rule that
    denied, or says that no rule allows it."""


class ApprovalError(RunbookError):
    pass


class ApprovalPending(ApprovalError):
    pass


class ApprovalDenied(ApprovalError):
    pass


class ApprovalExpired(ApprovalError):
    pass


class ConfirmationRequired(RunbookError):
    pass


class ReadOnlyError(ConsoleError):
    pass


def read_only_refusal(what: str) -> ReadOnlyError:
    """Read-only mode's refusal of ``what``, a command that writes to a backend (the runbook
    engine words its own: its plans and dry runs still work)."""
    return ReadOnlyError(
        f"read-only mode: {what} writes to the lab's backends and was refused (leave "
        "read-only mode to run it)"
    )


class LockHeldError(RunbookError):
    pass


class StalePlanError(RunbookError):
    pass


class PreconditionFailed(RunbookError):
    pass


class RunNotFound(RunbookError):
    pass


class RunStateError(RunbookError):
    pass


class AuditError(ConsoleError):
    pass


class AuditWriteError(AuditError):
    pass


class ArtifactRefused(ConsoleError):
    """``reason`` is a short label (a metric label in the gateway): ``sha256_mismatch``,
    ``missing_sha256``, ``download_failed``, ``too_large``, ``invalid_onnx``,
    ``contract_mismatch``, ``not_found``; and the signature's: ``unsigned``, ``bad_signature``,
    ``no_signing_key`` (``[models] signing_required`` with no key to verify with)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message, title="model artifact")
        self.reason = reason


class ReplayError(ConsoleError):
    pass


class DrillError(ConsoleError):
    pass


class DrillScenarioError(DrillError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems) if problems else "invalid drill scenario")


class IncidentError(ConsoleError):
    pass


class IncidentNotFound(IncidentError):
    pass


class LabError(ConsoleError):
    pass


__all__ = [
    "AdapterError",
    "ArtifactRefused",
    "AuditError",
    "AuditWriteError",
    "BackendAuthError",
    "BackendResponseError",
    "BackendUnavailable",
    "ConfigError",
    "ConfirmationRequired",
    "ConsoleError",
    "LabError",
    "LockHeldError",
    "ParameterError",
    "PreconditionFailed",
    "ReadOnlyError",
    "ReplayError",
    "RunNotFound",
    "RunStateError",
    "RunbookError",
    "RunbookValidationError",
    "StalePlanError",
    "read_only_refusal",
]
