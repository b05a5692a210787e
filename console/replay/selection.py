"""Which samples a replay runs: a sample-store filter (client, model, window, score, limit),
optionally filled from an Alertmanager alert's labels, read into one input array."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from console.adapters.alertmanager import Alert, AlertmanagerClient
from console.adapters.samples import INPUT_SIZE, SampleFilter, SampleRecord, read_samples
from console.errors import ConfigError, ReplayError
from console.replay.model import DEFAULT_MODEL, NO_LABEL, ReplayRequest, SelectedSamples

ALERT_LOOKBACK = timedelta(minutes=5)
"""With ``--alert`` and no ``--since``: samples from this long before the alert started. The
alert rules' windows are 1-5 minutes and their ``for:`` under one, so the inputs that made an
alert fire arrived within this of its start."""
PIXEL_MIN, PIXEL_MAX = 0.0, 16.0


async def find_alert(alerts: AlertmanagerClient, fingerprint: str) -> Alert:
    """The alert with ``fingerprint`` (active, silenced or inhibited); ReplayError if none."""
    wanted = fingerprint.strip().lower()
    if not wanted:
        raise ReplayError("the alert fingerprint is empty")
    for alert in await alerts.alerts():
        if alert.fingerprint.lower() == wanted:
            return alert
    raise ReplayError(
        f"no alert with fingerprint {fingerprint[:40]!r} in Alertmanager (it lists active, "
        "silenced and inhibited alerts; a resolved one is gone: use --client/--since instead)"
    )


def sample_filter(request: ReplayRequest, alert: Alert | None) -> SampleFilter:
    """The store filter: explicit options first, then the alert's labels, then defaults."""
    labels = alert.labels if alert is not None else {}
    since = request.since
    if since is None and alert is not None and alert.startsAt is not None:
        since = alert.startsAt - ALERT_LOOKBACK
    return SampleFilter(
        client=request.client or labels.get("client"),
        model=request.model or labels.get("model") or DEFAULT_MODEL,
        since=since,
        until=request.until,
        min_score=request.min_score,
        limit=request.limit,
    )


def read_selection(
    store: Path, flt: SampleFilter, alert_labels: dict[str, str] | None = None
) -> SelectedSamples:
    """Read the matching samples (blocking: run it in a thread) and stack their inputs.

    Records without an input (a hash-only store) or with pixels outside 0..16 are left out and
    counted; ReplayError if nothing is left to replay."""
    batch = read_samples(store, flt)
    kept: list[SampleRecord] = []
    without_input = 0
    for record in batch.records:
        if record.input is None or len(record.input) != INPUT_SIZE:
            without_input += 1
        else:
            kept.append(record)
    x = np.array([r.input for r in kept], dtype=np.float32).reshape(len(kept), INPUT_SIZE)
    in_range = (x >= PIXEL_MIN) & (x <= PIXEL_MAX)  # False for NaN too
    valid: NDArray[np.bool_] = np.asarray(in_range.all(axis=1), dtype=bool)
    invalid = int((~valid).sum())
    if invalid:
        kept = [r for r, ok in zip(kept, valid.tolist(), strict=True) if ok]
        x = x[valid]
    if not kept:
        raise ReplayError(_nothing(store, flt, len(batch.records), without_input, invalid))
    return SelectedSamples(
        records=kept,
        x=np.ascontiguousarray(x),
        adversarial=np.array([r.flagged for r in kept], dtype=bool),
        labels=np.array([NO_LABEL if r.label is None else r.label for r in kept], dtype=np.int64),
        filter=flt,
        truncated=batch.truncated,
        skipped_lines=batch.skipped_lines,
        without_input=without_input,
        invalid_input=invalid,
        alert_labels=alert_labels,
    )


async def select_samples(
    store: str, request: ReplayRequest, alerts: AlertmanagerClient | None = None
) -> SelectedSamples:
    """The samples ``request`` asks for, from the local sample store at ``store``."""
    if "://" in store:
        raise ConfigError(f"replay reads a local sample store; samples.path {store!r} is a URL")
    alert = None
    if request.alert is not None:
        if alerts is None:
            raise ReplayError("an alert fingerprint needs Alertmanager")
        alert = await find_alert(alerts, request.alert)
    flt = sample_filter(request, alert)
    return await asyncio.to_thread(
        read_selection, Path(store), flt, dict(alert.labels) if alert else None
    )


def _nothing(store: Path, flt: SampleFilter, matched: int, without_input: int, invalid: int) -> str:
    if matched == 0:
        return f"no samples matched ({describe_filter(flt)}) in the sample store {store}"
    reasons = []
    if without_input:
        reasons.append(f"{without_input} kept only as a hash (gateway.hash_only)")
    if invalid:
        reasons.append(f"{invalid} with pixel values outside 0..16")
    return f"{matched} samples matched ({describe_filter(flt)}) but none can be replayed: " + (
        ", ".join(reasons)
    )


def describe_filter(flt: SampleFilter) -> str:
    parts = [f"model {flt.model}"]
    if flt.client is not None:
        parts.append(f"client {flt.client}")
    if flt.since is not None:
        parts.append(f"since {_when(flt.since)}")
    if flt.until is not None:
        parts.append(f"until {_when(flt.until)}")
    if flt.min_score is not None:
        parts.append(f"detector score >= {flt.min_score:g}")
    return ", ".join(parts)


def _when(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
