"""What ``aml-console get VIEW`` lists: each view's snapshot (from console/views, as the TUI
reads it) as flat rows, one object per row, with the same fields in JSON and CSV.

A row's values are what the snapshot holds (seconds, ratios, UTC times), not the TUI's text;
the table picks and formats some of them (``get_render``). A source that failed beside the data
(the policy store, the registry, the audit log, the gateway's state) is a warning of the
listing, never left out silently; a source the view cannot do without raises its ConsoleError.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from console.adapters.backends import Backends

Cell = str | int | float | bool | datetime | list[str] | dict[str, str] | None
Row = dict[str, Cell]


@dataclass(frozen=True)
class Filters:
    model: str | None = None
    client: str | None = None
    since: timedelta | None = None
    top: int | None = None
    search: str | None = None
    """Clients: ids containing it (any case), searched across the whole fleet."""
    more: int = 0
    """Clients: pages of K more by each criterion."""


@dataclass(frozen=True)
class Listing:
    fields: tuple[str, ...]
    """Every row's keys, in order: the JSON objects' and the CSV header."""
    rows: list[Row]
    time_field: str | None = None
    """The row time that ``--since`` compares (None: the view is a snapshot of now)."""
    warnings: list[str] = field(default_factory=list)
    note: str = ""
    """A line under the table (not in JSON or CSV): what the view shows beside its rows."""


Reader = Callable[[Backends, Filters], Awaitable[Listing]]


def number(value: float | None) -> float | None:
    """A float as JSON can carry it: NaN and infinities (0/0 in PromQL) are no value."""
    return value if value is not None and math.isfinite(value) else None


def narrowed(listing: Listing, filters: Filters, now: datetime | None = None) -> Listing:
    """The rows that pass the filters, in the view's order, at most ``top`` of them."""
    rows = listing.rows
    if filters.model is not None:
        rows = [r for r in rows if r.get("model") == filters.model]
    if filters.client is not None:
        rows = [r for r in rows if r.get("client") == filters.client]
    if filters.since is not None and listing.time_field is not None:
        start = (now or datetime.now(UTC)) - filters.since
        rows = [r for r in rows if _at_or_after(r.get(listing.time_field), start)]
    if filters.top is not None:
        rows = rows[: filters.top]
    return replace(listing, rows=rows)


def _at_or_after(value: Cell, start: datetime) -> bool:
    return isinstance(value, datetime) and value >= start


ALERT_FIELDS = (
    "fingerprint",
    "alertname",
    "severity",
    "state",
    "client",
    "model",
    "starts_at",
    "summary",
    "silenced_by",
    "labels",
    "annotations",
)


async def alerts(backends: Backends, filters: Filters) -> Listing:
    from console.views.alerts import fetch_alerts

    snapshot = await fetch_alerts(backends)
    rows: list[Row] = [
        {
            "fingerprint": a.fingerprint,
            "alertname": a.alertname,
            "severity": a.severity,
            "state": a.shown_state,
            "client": a.client,
            "model": a.model,
            "starts_at": a.starts_at,
            "summary": a.annotations.get("summary", ""),
            "silenced_by": list(a.silenced_by),
            "labels": dict(a.labels),
            "annotations": dict(a.annotations),
        }
        for a in snapshot.alerts
    ]
    note = f"{snapshot.silences} active silence{'' if snapshot.silences == 1 else 's'}"
    return Listing(ALERT_FIELDS, rows, time_field="starts_at", note=note)


CLIENT_FIELDS = (
    "model",
    "client",
    "labelled",
    "rate",
    "extraction",
    "flagged_rate",
    "refused_ratio",
    "blocked",
    "block_expires_at",
    "block_reason",
    "budget_qpm",
    "hardening",
    "alerts",
    "why",
    "risk",
)


async def clients(backends: Backends, filters: Filters) -> Listing:
    from console.views.clients import ClientRow, fetch_clients, unlabelled_row

    # --client reads that id exactly too: found however far down the lists it is.
    asked = [filters.client] if filters.client else []
    snapshot = await fetch_clients(
        backends, more=filters.more, search=filters.search or "", also=asked
    )

    def row(r: ClientRow, labelled: bool, risk: float | None = None) -> Row:
        policy_known = labelled and snapshot.policy_error is None
        return {
            "model": r.model,
            "client": r.client,
            "labelled": labelled,
            "rate": number(r.rate),
            "extraction": number(r.extraction),
            "flagged_rate": number(r.flagged_rate),
            "refused_ratio": number(r.refused_ratio),
            "blocked": (r.block is not None) if policy_known else None,
            "block_expires_at": r.block.expires_at if r.block else None,
            "block_reason": r.block.reason if r.block else None,
            "budget_qpm": r.budget.qpm if r.budget else None,
            "hardening": r.hardening.mode if r.hardening else None,
            "alerts": list(r.alerts),
            "why": r.why,
            "risk": number(risk),
        }

    rows = [row(r, True) for r in snapshot.rows]
    hidden = snapshot.unlabelled.unlabelled if snapshot.unlabelled else []
    if filters.search:
        wanted = filters.search.lower()
        rows = [r for r in rows if wanted in str(r["client"]).lower()]
        hidden = [c for c in hidden if wanted in c.client.lower()]
    rows += [row(unlabelled_row(c), False, c.risk) for c in hidden]
    warnings = list(snapshot.warnings)
    if snapshot.policy_error:
        warnings.append(f"policy store: {snapshot.policy_error} (blocks and budgets unknown)")
    if snapshot.gateway_error:
        warnings.append(f"gateway state: {snapshot.gateway_error} (clients in other unknown)")
    if snapshot.alert_error:
        warnings.append(f"alerts: {snapshot.alert_error} (clients with alerts unknown)")
    warnings += [f"truncated: {t}" for t in snapshot.truncated]
    notes = [f"{len(snapshot.rows)} of {snapshot.active} active clients listed"]
    if snapshot.unlabelled is not None:
        slots = snapshot.unlabelled.label_slots
        notes.append(
            f"{slots.used}/{slots.capacity} label slots held, {len(hidden)} active without one"
        )
    note = "; ".join(notes)
    return Listing(CLIENT_FIELDS, rows, warnings=warnings, note=note)


MODEL_FIELDS = (
    "model",
    "requests",
    "p50_s",
    "p95_s",
    "p99_s",
    "error_ratio",
    "flag_rate",
    "confidence_z",
    "registered",
    "aliases",
    "versions",
    "champion_sha256",
    "champion_robustness",
)


async def models(backends: Backends, filters: Filters) -> Listing:
    from console.views.models import fetch_models

    snapshot = await fetch_models(backends)
    rows: list[Row] = []
    for m in snapshot.rows:
        versions = snapshot.versions.get(m.model)
        known = versions is not None
        aliases = {a: v.version for v in versions or [] for a in v.aliases}
        champion = next((v for v in versions or [] if "champion" in v.aliases), None)
        rows.append(
            {
                "model": m.model,
                "requests": number(m.requests),
                "p50_s": number(m.p50_s),
                "p95_s": number(m.p95_s),
                "p99_s": number(m.p99_s),
                "error_ratio": number(m.error_ratio),
                "flag_rate": number(m.flag_rate),
                "confidence_z": number(m.confidence_z),
                "registered": bool(versions) if known else None,
                "aliases": dict(sorted(aliases.items())),
                "versions": [v.version for v in versions or []],
                "champion_sha256": champion.sha256 if champion else None,
                "champion_robustness": champion.robustness.quote() if champion else None,
            }
        )
    warnings = list(snapshot.warnings)
    if snapshot.registry_error:
        warnings.append(f"registry: {snapshot.registry_error} (versions and aliases unknown)")
    return Listing(MODEL_FIELDS, rows, warnings=warnings)


MITIGATION_FIELDS = (
    "kind",
    "client",
    "model",
    "reason",
    "qpm",
    "previous_qpm",
    "mode",
    "decimals",
    "output",
    "enforced_qpm",
    "shadow_seen",
    "shadow_would_refuse",
    "shadow_share",
    "set_at",
    "expires_at",
    "operator",
    "run_id",
    "runbook",
    "target",
    "alias",
    "before",
    "after",
    "before_version",
)


async def mitigations(backends: Backends, filters: Filters) -> Listing:
    from console.views.mitigations import fetch_mitigations

    snapshot = await fetch_mitigations(backends)
    rows: list[Row] = []
    for b in snapshot.blocks:
        rows.append(
            _mitigation(
                kind="block",
                client=b.client,
                reason=b.reason,
                set_at=b.created_at,
                expires_at=b.expires_at,
                operator=b.operator,
                run_id=b.run_id,
            )
        )
    for g in snapshot.budgets:
        shadow: Row = {}
        if g.shadow:
            totals = snapshot.totals(g)
            shadow = {
                "enforced_qpm": g.enforced_qpm,
                "shadow_seen": totals.seen,
                "shadow_would_refuse": totals.would_refuse,
                "shadow_share": number(totals.share),
            }
        rows.append(
            _mitigation(
                kind="budget",
                client=g.client,
                qpm=g.qpm,
                previous_qpm=g.previous_qpm,
                mode=g.mode,
                set_at=g.set_at,
                operator=g.operator,
                run_id=g.run_id,
                **shadow,
            )
        )
    for h in snapshot.hardenings:
        rows.append(
            _mitigation(
                kind="hardening",
                client=h.client,
                mode=h.mode,
                decimals=h.decimals if h.mode == "rounded" else None,
                output=h.header,
                set_at=h.created_at,
                expires_at=h.expires_at,
                operator=h.operator,
                run_id=h.run_id,
            )
        )
    for c in snapshot.registry_changes:
        rows.append(
            _mitigation(
                kind="registry-change",
                model=c.model,
                set_at=c.time,
                operator=c.operator,
                run_id=c.run_id,
                runbook=c.runbook,
                target=c.target,
                alias=c.alias,
                before=c.before,
                after=c.after,
                before_version=c.before_version,
            )
        )
    warnings = [snapshot.audit_error] if snapshot.audit_error else []
    return Listing(MITIGATION_FIELDS, rows, time_field="set_at", warnings=warnings)


def _mitigation(**values: Cell) -> Row:
    row: Row = dict.fromkeys(MITIGATION_FIELDS)
    row.update(values)
    return row


SAMPLE_FIELDS = (
    "time",
    "client",
    "model",
    "version",
    "detector_score",
    "extraction_score",
    "prediction",
    "confidence",
    "flagged",
    "trace_id",
    "sample_id",
    "input_sha256",
    "label",
)


async def samples(backends: Backends, filters: Filters) -> Listing:
    from console.views.samples import LIMIT, fetch_samples

    since = datetime.now(UTC) - filters.since if filters.since is not None else None
    snapshot = await fetch_samples(backends, filters.client, filters.model, since)
    rows: list[Row] = [
        {
            "time": s.time,
            "client": s.client,
            "model": s.model,
            "version": s.version,
            "detector_score": number(s.detector_score),
            "extraction_score": number(s.extraction_score),
            "prediction": s.prediction,
            "confidence": number(s.confidence),
            "flagged": s.flagged,
            "trace_id": s.trace_id,
            "sample_id": s.sample_id,
            "input_sha256": s.input_sha256,
            "label": s.label,
        }
        for s in snapshot.records
    ]
    warnings = []
    if snapshot.skipped_lines:
        warnings.append(f"sample store: {snapshot.skipped_lines} unreadable lines skipped")
    if snapshot.truncated:
        warnings.append(
            f"sample store: more samples match, only the newest {LIMIT} are listed "
            "(narrow with --client, --model or --since)"
        )
    return Listing(SAMPLE_FIELDS, rows, time_field="time", warnings=warnings)


APPLIED = ("applied", "applying", "compensation-failed", "noop")
"""Step statuses `runbook status` lists as applied."""
RUN_FIELDS = (
    "run_id",
    "runbook",
    "status",
    "target",
    "client",
    "model",
    "operator",
    "environment",
    "created_at",
    "updated_at",
    "applied",
    "error",
)


async def runs(backends: Backends, filters: Filters) -> Listing:
    from console.views.runs import fetch_runs

    snapshot = await fetch_runs(backends)
    rows: list[Row] = [
        {
            "run_id": r.run_id,
            "runbook": r.runbook,
            "status": r.effective_status,
            "target": r.target,
            "client": _text(r.params.get("client")),
            "model": _text(r.params.get("model")),
            "operator": r.operator,
            "environment": r.environment,
            "created_at": r.created_at,
            "updated_at": r.updated_at,
            "applied": [f"{s.id}({s.status})" for s in r.steps if s.status in APPLIED],
            "error": r.error,
        }
        for r in snapshot.runs
    ]
    return Listing(RUN_FIELDS, rows, time_field="created_at")


def _text(value: object) -> str | None:
    return None if value is None else str(value)


READERS: dict[str, Reader] = {
    "alerts": alerts,
    "clients": clients,
    "models": models,
    "mitigations": mitigations,
    "samples": samples,
    "runs": runs,
}
"""``fleet`` reads in ``get_fleet`` (``get._read`` adds it)."""
