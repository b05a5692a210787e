"""``aml-console replay``: run stored samples through several model versions and say whether
they look like an attack and whether another version resists them.

The replay service (numpy, onnxruntime, pandas) loads inside the command: ``--help`` stays fast.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from console.cli.common import context, errors_as_exit, fail, new_table, print_json, safe
from console.cli.common import stderr as err
from console.cli.common import stdout as out
from console.errors import ConsoleError, ReplayError
from console.urls import redact_urls_in

if TYPE_CHECKING:
    from console.config import Settings
    from console.replay.model import ReplayRequest, ReplayResult, ReplayStarted

SHOWN_SAMPLES = 20


class ReplayOutput(StrEnum):
    table = "table"
    json = "json"
    parquet = "parquet"


def replay(
    ctx: typer.Context,
    client: str | None = typer.Option(None, "--client", help="Samples of this client id."),
    model: str | None = typer.Option(
        None, "--model", help="Registered model (default: the alert's model label, else digits)."
    ),
    since: str | None = typer.Option(
        None, "--since", help="Samples from this long ago (15m, 2h) or this ISO time with offset."
    ),
    until: str | None = typer.Option(None, "--until", help="Samples before this (same forms)."),
    alert: str | None = typer.Option(
        None,
        "--alert",
        help="Alertmanager fingerprint: its client/model labels select the samples, from 5 "
        "minutes before it started (unless --since).",
    ),
    min_score: float | None = typer.Option(
        None, "--min-score", min=0.0, max=1.0, help="Lowest stored detector score."
    ),
    limit: int = typer.Option(1000, "--limit", min=1, max=10_000, help="Newest samples to replay."),
    versions: str = typer.Option(
        "champion,previous",
        "--versions",
        help="Aliases or version numbers, comma separated; the first is the baseline.",
    ),
    endpoint: str | None = typer.Option(
        None,
        "--endpoint",
        help="Open Inference (V2) server base URL (http://host:port) serving the versions; "
        "default: run the sha256-verified ONNX artifacts here.",
    ),
    timeout: float = typer.Option(
        10.0, "--timeout", min=0.1, max=600, help="Seconds per request to --endpoint."
    ),
    batch_size: int | None = typer.Option(
        None, "--batch-size", min=1, max=8192, help="Samples per model call (1024; 256 remote)."
    ),
    squeeze: bool = typer.Option(
        True, "--squeeze/--no-squeeze", help="Feature-squeezing score per version (2x the work)."
    ),
    output: ReplayOutput = typer.Option(
        ReplayOutput.table, "--output", "-o", help="table for people, json for scripts, parquet."
    ),
    out_file: Path | None = typer.Option(None, "--out", help="File for --output parquet."),
) -> None:
    """Replay stored samples through model versions: flips, adversarial success, verdict."""
    if output is ReplayOutput.parquet and out_file is None:
        fail("--output parquet needs --out FILE")
    if out_file is not None and output is not ReplayOutput.parquet:
        fail("--out is only for --output parquet")
    progress = ReplayRun()
    with errors_as_exit():
        from console.replay.model import ReplayRequest
        from console.replay.versions import parse_specs

        now = datetime.now(UTC)
        request = ReplayRequest(
            model=model,
            client=client,
            since=parse_time(since, now, "--since"),
            until=parse_time(until, now, "--until"),
            min_score=min_score,
            alert=alert,
            limit=limit,
            versions=parse_specs(versions),
            endpoint=endpoint,
            timeout_s=timeout,
            batch_size=batch_size,
            squeeze=squeeze,
        )
        settings = context(ctx).settings
        try:
            # A bar only where someone watches: piped stderr (CI logs) gets the header alone.
            bar = output is ReplayOutput.table and err.is_terminal
            result = asyncio.run(progress.run(settings, request, bar))
        except KeyboardInterrupt:
            fail(f"replay cancelled after {progress.done} of {progress.total} samples", 130)
        if output is ReplayOutput.parquet:
            from console.replay.export import write_parquet

            assert out_file is not None
            rows = write_parquet(result, out_file)
            out.print(f"wrote {rows} rows to {safe(out_file)}")
            out.print(f"verdict: {safe(result.summary.verdict)}")
            return
    if output is ReplayOutput.json:
        data = result.as_dict()
        data["backend"] = redact_urls_in(str(data["backend"]))  # an endpoint's credentials
        print_json(data)
    else:
        render(result)


def parse_time(text: str | None, now: datetime, option: str) -> datetime | None:
    """``15m`` (that long before ``now``) or an ISO time with a UTC offset."""
    if text is None:
        return None
    from console.durations import parse_duration

    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ReplayError(
            f"{option} {text[:40]!r} is neither a duration (15m, 2h) nor an ISO time"
        ) from None
    if when.utcoffset() is None:
        raise ReplayError(f"{option} {text[:40]!r} has no UTC offset (add Z or +00:00)")
    return when.astimezone(UTC)


class ReplayRun:
    """Runs the replay's event stream, with a progress bar on stderr when asked; remembers how
    far it got for the message when Ctrl-C cancels it."""

    def __init__(self) -> None:
        self.done = 0
        self.total = 0

    async def run(self, settings: Settings, request: ReplayRequest, bar: bool) -> ReplayResult:
        from contextlib import aclosing

        from rich.progress import BarColumn, MofNCompleteColumn, TimeElapsedColumn
        from rich.progress import Progress as Bar

        from console.replay.model import BatchDone, ReplayFinished, ReplayStarted
        from console.replay.service import replay as run_replay

        shown: Bar | None = None
        task = None
        try:
            async with aclosing(run_replay(settings, request)) as events:
                async for event in events:
                    if isinstance(event, ReplayStarted):
                        self.total = len(event.samples)
                        _header(event)
                        if bar:
                            shown = Bar(
                                "replay",
                                BarColumn(),
                                MofNCompleteColumn(),
                                TimeElapsedColumn(),
                                console=err,
                                transient=True,
                            )
                            shown.start()
                            task = shown.add_task("replay", total=self.total)
                    elif isinstance(event, BatchDone):
                        self.done = event.done
                        if shown is not None and task is not None:
                            shown.update(task, completed=event.done)
                    elif isinstance(event, ReplayFinished):
                        return event.result
        finally:
            if shown is not None:
                shown.stop()
        raise ConsoleError("the replay ended without a result")


def _header(event: ReplayStarted) -> None:
    from console.replay.selection import describe_filter

    samples = event.samples
    names = ", ".join(ref.label for ref in event.versions)
    err.print(
        f"replaying {len(samples)} samples ({safe(describe_filter(samples.filter))}) through "
        f"{safe(names)} on {safe(redact_urls_in(event.backend))}, {event.batch_size} per batch"
    )
    notes = []
    if samples.truncated:
        notes.append(f"more samples matched: the newest {samples.filter.limit} (raise --limit)")
    if samples.without_input:
        notes.append(f"{samples.without_input} left out: stored as a hash only")
    if samples.invalid_input:
        notes.append(f"{samples.invalid_input} left out: pixels outside 0..16")
    if samples.skipped_lines:
        notes.append(f"{samples.skipped_lines} unreadable store lines skipped")
    for note in notes:
        err.print(f"note: {safe(note)}")


def render(result: ReplayResult) -> None:
    summary = result.summary
    versions = new_table(
        "version", "sha256", "confidence", "shift", "agree", "squeeze", "flags", "adv. success"
    )
    for v in summary.versions:
        versions.add_row(
            safe(v.ref.label),
            safe(v.ref.sha256[:12] or "-"),
            f"{v.mean_confidence:.3f}",
            f"{v.confidence_shift:+.3f}",
            _pct(v.agreement),
            "-" if v.mean_squeeze_score is None else f"{v.mean_squeeze_score:.3f}",
            _pct(v.detector_flag_rate),
            "-"
            if v.success_rate is None
            else f"{_pct(v.success_rate)} ({v.fooled}/{v.labelled_adversarial})",
        )
    out.print(versions)
    out.print()
    refs = result.versions
    samples = new_table(
        "sample", "time (UTC)", "client", "flagged", "label", *(safe(r.label) for r in refs), "flip"
    )
    ranked = sorted(
        result.outcomes(), key=lambda o: (not o.flip, not o.adversarial, -o.detector_score)
    )
    for o in ranked[:SHOWN_SAMPLES]:
        cells = [
            f"{o.predictions[r.version]} ({o.confidences[r.version]:.2f})"
            + ("" if o.squeeze_scores is None else f" sq {o.squeeze_scores[r.version]:.2f}")
            for r in refs
        ]
        samples.add_row(
            safe(o.sample_id),
            o.time.strftime("%m-%d %H:%M:%S"),
            safe(o.client),
            "yes" if o.adversarial else "",
            "" if o.label is None else str(o.label),
            *cells,
            "FLIP" if o.flip else "",
        )
    out.print(samples)
    if summary.samples > SHOWN_SAMPLES:
        out.print(f"({SHOWN_SAMPLES} of {summary.samples} shown: flips first; all in -o json)")
    out.print()
    out.print(
        f"samples {summary.samples}: {summary.adversarial} flagged, {summary.labelled} labelled; "
        f"flip rate {_pct(summary.flip_rate)} (flagged {_pct(summary.flip_rate_adversarial)}, "
        f"unflagged {_pct(summary.flip_rate_other)}); {result.elapsed_s:.2f} s"
    )
    out.print(f"[bold]verdict:[/] {safe(summary.verdict)}")


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.0f}%"
