"""An incident as stored (:class:`Incident`, one JSON file each), an event of its timeline and
the three times a postmortem (and a drill) reports.

``client``, ``title`` and ``alert`` are attacker-controlled or operator-typed text: they are
bounded here and escaped wherever they are shown (HTML, markdown, the terminal)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

AttackKind = Literal["extraction", "evasion", "flood", "poisoning", "probing", "unknown"]
IncidentStatus = Literal["open", "closed"]
IncidentSource = Literal["manual", "alert", "drill"]

ATTACK_KINDS: tuple[str, ...] = (
    "extraction",
    "evasion",
    "flood",
    "poisoning",
    "probing",
    "unknown",
)
SEVERITIES: tuple[str, ...] = ("critical", "warning", "info")

ID_PATTERN = re.compile(r"^inc-\d{8}-\d{4}-[0-9a-f]{4}$")
"""``inc-20261202-2105-3fa2``: the UTC minute it was opened and 4 hex digits; sortable."""
ID_PREFIX_PATTERN = re.compile(r"^[a-z0-9-]{1,24}$")
"""What ``get`` accepts (an id or a prefix of one): never a path separator or ``..``."""

TITLE_MAX = 200
NAME_MAX = 256
"""Model, client, alert and operator names."""
NOTE_MAX = 2000
"""A note (and a close reason) longer than this is refused."""


def utc(value: datetime) -> datetime:
    """``value`` as aware UTC (a naive datetime is taken to be UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Incident(BaseModel):
    """One incident, as stored in ``<run_dir>/incidents/<id>.json``."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    title: str = Field(max_length=TITLE_MAX)
    status: IncidentStatus
    severity: str
    attack_kind: AttackKind
    model: str | None = Field(default=None, max_length=NAME_MAX)
    client: str | None = Field(default=None, max_length=NAME_MAX)
    """Attacker-controlled text: escape it wherever it is shown."""
    opened_at: datetime
    opened_by: str = Field(max_length=NAME_MAX)
    source: IncidentSource
    alert: str | None = Field(default=None, max_length=NAME_MAX)
    drill_id: str | None = Field(default=None, max_length=NAME_MAX)
    closed_at: datetime | None = None
    closed_by: str | None = Field(default=None, max_length=NAME_MAX)
    close_reason: str | None = Field(default=None, max_length=NOTE_MAX)
    """Added to the contract: why it was closed (``incident close --reason``)."""

    @field_validator("id")
    @classmethod
    def _an_id(cls, value: str) -> str:
        if not ID_PATTERN.match(value):
            raise ValueError(f"not an incident id: {value!r}")
        return value

    @field_validator("severity")
    @classmethod
    def _a_severity(cls, value: str) -> str:
        if value not in SEVERITIES:
            raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}")
        return value

    @field_validator("opened_at", "closed_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return None if value is None else utc(value)

    @property
    def is_open(self) -> bool:
        return self.status == "open"

    def targets(self) -> set[str]:
        """The audit record targets that are about this incident's client or model."""
        found = set()
        if self.client:
            found.add(f"client:{self.client}")
        if self.model:
            found.add(f"model:{self.model}")
        return found


@dataclass(frozen=True)
class IncidentEvent:
    at: datetime
    """Aware UTC."""
    kind: str
    """opened, first-request, alert-firing, alert-resolved, run, mitigation, promotion, contained,
    replay, evidence, approval, note, closed, error (what could not be read), and a drill's
    own kinds (drill-start, attack-launched, response-started, ...)."""
    detail: str
    operator: str | None = None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["at"] = self.at.isoformat()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IncidentEvent:
        operator = data.get("operator")
        return cls(
            at=utc(datetime.fromisoformat(str(data["at"]))),
            kind=str(data["kind"]),
            detail=str(data.get("detail", "")),
            operator=None if operator is None else str(operator),
        )


@dataclass(frozen=True)
class IncidentTimes:
    """Seconds from the attacker's first request; None when not reached (as a drill scores
    them, seed M9)."""

    time_to_detect_s: float | None
    time_to_mitigate_s: float | None
    time_to_contain_s: float | None

    def as_dict(self) -> dict[str, float | None]:
        return asdict(self)


__all__ = [
    "ATTACK_KINDS",
    "ID_PATTERN",
    "NOTE_MAX",
    "SEVERITIES",
    "AttackKind",
    "Incident",
    "IncidentEvent",
    "IncidentSource",
    "IncidentStatus",
    "IncidentTimes",
    "utc",
]
