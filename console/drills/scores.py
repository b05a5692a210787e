"""A drill's scores from what its watch loop observed: when the attacker was contained (with
hindsight), what it got, the benign clients' collateral, the per-second series and the
detection floor the time to detect is compared with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from console.drills.observe import Counts, Observation

SUCCESS_METRIC = {
    "extraction": "surrogate_agreement",
    "evasion": "success_rate",
    "poisoning": "trigger_success_rate",
    "flood": "answered_share",
}
"""What ``attacker_success`` measures per attack kind; a kind not listed is not measured
(``attacker_success`` None), so a newly registered attack can be drilled before it is."""
NOT_MEASURED = "not measured"


def success_metric(kind: str) -> str:
    return SUCCESS_METRIC.get(kind, NOT_MEASURED)


@dataclass(frozen=True)
class Held:
    at: float
    ok: float
    """Attacker requests answered by then."""


def contained_at(observations: list[Observation], attacker: str, share: float) -> Held | None:
    """The first second in which the attacker was refused, after which it was answered at most
    ``1 - share`` of what it still sent (nothing sent counts as held)."""
    if not observations:
        return None
    end = observations[-1].gateway.get(attacker) or Counts()
    for before, now in zip(observations, observations[1:], strict=False):
        here = now.gateway.get(attacker) or Counts()
        if here.minus(before.gateway.get(attacker) or Counts()).refused <= 0:
            continue
        later = end.minus(here)
        if later.total <= 0 or later.ok / later.total <= 1 - share:
            return Held(now.at, here.ok)
    return None


def since(start: float | None, end: float | None) -> float | None:
    if start is None or end is None:
        return None
    return round(max(0.0, end - start), 3)


def attacker_success(kind: str, reports: list[dict[str, Any]]) -> float | None:
    if not reports:
        return None
    if kind == "extraction":
        value = reports[-1].get("surrogate_agreement")
    elif kind == "evasion":
        attacked = sum(int(r.get("attacked") or 0) for r in reports)
        evaded = sum(int(r.get("evaded") or 0) for r in reports)
        value = evaded / attacked if attacked else None
    elif kind == "poisoning":
        value = reports[-1].get("trigger_success_rate")
    elif kind == "flood":
        sent = sum(int(r.get("requests") or 0) for r in reports)
        ok = sum(int((r.get("outcomes") or {}).get("ok") or 0) for r in reports)
        value = ok / sent if sent else None
    else:
        value = None
    return None if value is None else round(float(value), 4)


def benign_error_rate(observations: list[Observation], attacker: str) -> float | None:
    """Non-ok answers over all answers the benign clients saw during the drill (their own
    view, from the traffic service)."""
    if len(observations) < 2:
        return None
    first, last = observations[0].traffic, observations[-1].traffic
    total = errors = 0.0
    for client, counts in last.items():
        if client == attacker:
            continue
        delta = counts.minus(first.get(client, Counts()))
        total += delta.total
        errors += delta.total - delta.ok
    return round(errors / total, 4) if total else None


def series(observations: list[Observation]) -> list[dict[str, float]]:
    rows = []
    for before, now in zip(observations, observations[1:], strict=False):
        span = max(1e-6, now.at - before.at)
        row: dict[str, float] = {"at_s": now.at}
        for client, counts in now.gateway.items():
            delta = counts.minus(before.gateway.get(client, Counts()))
            row[client] = round(max(0.0, delta.total) / span, 3)
        rows.append(row)
    return rows


def detection_floor(alertname: str, rules_dir: Path | None = None) -> float | None:
    """The earliest an alert can page (docs/architecture.md, "Detection-time floor")."""
    from console.adapters.rule_files import detection_floor_s

    return detection_floor_s(alertname, rules_dir)
