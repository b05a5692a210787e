"""Opening an incident from a firing alert: the alert's labels give its client, model and
severity, its name the attack kind. The alert is read from Alertmanager; its labels are
attacker-influenced text (a client id), bounded by the store when it opens the incident."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from console.errors import IncidentError
from console.incidents.model import SEVERITIES, AttackKind

if TYPE_CHECKING:
    from console.adapters.alertmanager import Alert
    from console.adapters.backends import Backends

KIND_OF_ALERT: dict[str, AttackKind] = {
    "AMLExtractionSuspected": "extraction",
    "AMLEvasionFlagRateSpike": "evasion",
    "AMLConfidenceShift": "poisoning",
    "AMLRequestCostSpike": "flood",
    "AMLLatencyP99High": "flood",
    "AMLClientIdSurge": "probing",
}
"""The shipped alerts (configs/prometheus/aml-alerts.yml) and the attack each points to."""


def kind_of_alert(alertname: str | None) -> AttackKind:
    return KIND_OF_ALERT.get(alertname or "", "unknown")


@dataclass(frozen=True)
class AlertFacts:
    alertname: str
    attack_kind: AttackKind
    severity: str
    model: str | None
    client: str | None
    summary: str


def facts_of(alert: Alert) -> AlertFacts:
    labels = alert.labels
    name = labels.get("alertname", "")
    severity = labels.get("severity", "warning")
    return AlertFacts(
        alertname=name,
        attack_kind=kind_of_alert(name),
        severity=severity if severity in SEVERITIES else "warning",
        model=labels.get("model") or None,
        client=labels.get("client") or None,
        summary=alert.annotations.get("summary", "")[:200],
    )


async def firing_alert(
    backends: Backends, alertname: str, model: str | None = None, client: str | None = None
) -> AlertFacts:
    """The one active alert of that name (on ``model``/``client`` when given); IncidentError
    when none is, or when several are and nothing says which."""
    alerts = await backends.alertmanager.alerts()
    found = [
        facts_of(a)
        for a in alerts
        if a.state in ("active", "")
        and a.labels.get("alertname") == alertname
        and (model is None or a.labels.get("model") == model)
        and (client is None or a.labels.get("client") == client)
    ]
    if not found:
        raise IncidentError(f"no {alertname[:80]!r} alert is firing in Alertmanager")
    if len(found) > 1:
        raise IncidentError(
            f"{len(found)} {alertname[:80]!r} alerts are firing: name one with --client or --model"
        )
    return found[0]


__all__ = ["KIND_OF_ALERT", "AlertFacts", "facts_of", "firing_alert", "kind_of_alert"]
