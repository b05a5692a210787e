"""Alerts view: Alertmanager's alerts grouped by alertname and severity, with their silences."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from console.adapters.backends import Backends
from console.views.together import all_at_once

_EPOCH = datetime.min.replace(tzinfo=UTC)
SEVERITY_ORDER = {"critical": 0, "page": 0, "warning": 1, "ticket": 2, "info": 3}


@dataclass(frozen=True)
class AlertRow:
    fingerprint: str
    alertname: str
    severity: str
    state: str
    """active, suppressed (silenced or inhibited) or unprocessed."""
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime | None
    silenced_by: tuple[str, ...] = ()

    @property
    def client(self) -> str | None:
        return self.labels.get("client")

    @property
    def model(self) -> str | None:
        return self.labels.get("model")

    @property
    def shown_state(self) -> str:
        """The state as the view shows it: ``silenced`` when a silence holds the alert."""
        return "silenced" if self.silenced_by else self.state


@dataclass(frozen=True)
class AlertGroup:
    alertname: str
    severity: str
    alerts: list[AlertRow] = field(default_factory=list)


@dataclass(frozen=True)
class AlertsSnapshot:
    groups: list[AlertGroup]
    silences: int
    """Active silences."""

    @property
    def alerts(self) -> list[AlertRow]:
        return [a for g in self.groups for a in g.alerts]


async def fetch_alerts(backends: Backends) -> AlertsSnapshot:
    async with all_at_once() as group:
        alerts_task = group.create_task(backends.alertmanager.alerts())
        silences_task = group.create_task(backends.alertmanager.silences())
    alerts, silences = alerts_task.result(), silences_task.result()
    rows = [
        AlertRow(
            fingerprint=a.fingerprint,
            alertname=a.labels.get("alertname", "?"),
            severity=a.labels.get("severity", "none"),
            state=a.state or "active",
            labels=dict(a.labels),
            annotations=dict(a.annotations),
            starts_at=a.startsAt,
            silenced_by=tuple(a.silencedBy),
        )
        for a in alerts
    ]
    groups: dict[tuple[str, str], AlertGroup] = {}
    # Newest first within a group: alerts a flood started earlier do not push a new one down.
    for row in sorted(rows, key=lambda r: r.starts_at or _EPOCH, reverse=True):
        key = (row.alertname, row.severity)
        groups.setdefault(key, AlertGroup(row.alertname, row.severity)).alerts.append(row)
    ordered = sorted(
        groups.values(), key=lambda g: (SEVERITY_ORDER.get(g.severity, 9), g.alertname)
    )
    return AlertsSnapshot(ordered, sum(1 for s in silences if s.state == "active"))
