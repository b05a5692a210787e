"""Recurrence (seed M10): how often the same attack comes back, as incidents per attack kind,
model and client family over 90 days: "mallory-* extraction on digits: 3rd incident this
month". A family is a client id with its trailing run of ``-<digits>`` or ``-<hex>`` parts
replaced by ``*`` (``mallory-1``, ``mallory-2`` and a drill's ``mallory-3fa2c1`` are one)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from console.incidents.model import Incident, utc

SUFFIX = re.compile(r"(?:-(?:\d+|[0-9a-f]{4,}))+$")
WINDOW_DAYS = 90


def client_family(client: str | None) -> str | None:
    if not client:
        return None
    stem = SUFFIX.sub("", client)
    return f"{stem}-*" if stem and stem != client else client


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


@dataclass(frozen=True)
class Recurrence:
    attack_kind: str
    model: str | None
    client_family: str | None
    last_90_days: int
    this_month: int
    text: str


Key = tuple[str, str | None, str | None, bool]


def _key(incident: Incident) -> Key:
    """Drills recur among drills: a game day is not the attack coming back."""
    drill = incident.source == "drill"
    return incident.attack_kind, incident.model, client_family(incident.client), drill


def _same_month(a: datetime, b: datetime) -> bool:
    return (a.year, a.month) == (b.year, b.month)


def _text(key: Key, month: int, window: int, days: int) -> str:
    kind, model, family, drill = key
    what = " ".join(p for p in (family, kind) if p) + (f" on {model}" if model else "")
    what = f"drill: {what}" if drill else what
    if month:
        text = f"{what}: {ordinal(month)} incident this month"
        return text + (f" ({window} in {days} days)" if window > month else "")
    return f"{what}: {window} incident{'s' if window != 1 else ''} in {days} days"


def recurrence(
    incidents: list[Incident], now: datetime, days: int = WINDOW_DAYS
) -> list[Recurrence]:
    """One line per kind, model and family with an incident in the last ``days``, the most
    frequent first."""
    now = utc(now)
    since = now - timedelta(days=days)
    groups: dict[Key, list[Incident]] = {}
    for incident in incidents:
        if since < incident.opened_at <= now:
            groups.setdefault(_key(incident), []).append(incident)
    found = []
    for key, members in groups.items():
        month = sum(1 for i in members if _same_month(i.opened_at, now))
        text = _text(key, month, len(members), days)
        found.append(Recurrence(*key[:3], len(members), month, text))
    return sorted(found, key=lambda r: (-r.last_90_days, -r.this_month, r.text))


def recurrence_of(incident: Incident, incidents: list[Incident], now: datetime) -> Recurrence:
    """Where ``incident`` stands in its family: the how-manieth this month (its own month)
    and in the 90 days before it was opened."""
    key = _key(incident)
    at = incident.opened_at
    since = at - timedelta(days=WINDOW_DAYS)
    earlier = [
        i
        for i in incidents
        if _key(i) == key
        and since < i.opened_at <= min(at, utc(now))
        and (i.opened_at, i.id) <= (at, incident.id)
    ]
    if not any(i.id == incident.id for i in earlier):
        earlier.append(incident)
    month = sum(1 for i in earlier if _same_month(i.opened_at, at))
    text = _text(key, month, len(earlier), WINDOW_DAYS)
    return Recurrence(*key[:3], len(earlier), month, text)


__all__ = ["Recurrence", "client_family", "ordinal", "recurrence", "recurrence_of"]
