"""``aml-console eval``: the attack suite against a registry version, its figures recorded on
the version (``console/evaluation``).

Exit codes: 0 done (and, with ``--gate``, every threshold met); 1 a ConsoleError (unknown model
or version, an artifact refused, a backend down); 2 usage; 3 ``--gate`` and a threshold of
``[robustness]`` missed (each named on stderr); 130 cancelled (Ctrl-C: nothing recorded).

A partial evaluation (measured otherwise than the gate asks: another holdout, fewer samples, an
attack left out) records its MLflow run only and keeps the version's record (it says so; JSON
``recorded_record: false``). Ctrl-C once the recording has begun is deferred: the recording
completes (record and signature last), so no interrupt leaves half a record.

Read-only mode measures and prints, and writes nothing to the registry (it says so).
numpy, onnxruntime, ART and scikit-learn load inside the command: ``--help`` stays fast.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from console.cli.common import (
    OutputFormat,
    OutputOption,
    context,
    errors_as_exit,
    fail,
    new_table,
    print_json,
    safe,
)
from console.cli.common import stderr as err
from console.cli.common import stdout as out

if TYPE_CHECKING:
    from console.config import Settings
    from console.evaluation.model import EvaluationRequest, EvaluationResult, Progress
    from console.robustness import GateMiss

GATE_MISSED = 3


def evaluate(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="Registered model."),
    version: str = typer.Option(..., "--version", help="Version number or alias (champion)."),
    attacks: str | None = typer.Option(
        None,
        "--attacks",
        help=(
            "Comma separated: fgsm, pgd, hopskipjump, backdoor, extraction "
            "(default: [robustness] attacks)."
        ),
    ),
    budget: int | None = typer.Option(
        None,
        "--budget",
        min=10,
        max=1_000_000,
        help="Queries of the extraction attack; HopSkipJump's per input ([robustness] budget).",
    ),
    samples: int | None = typer.Option(
        None, "--samples", min=1, max=5000, help="Held-out inputs ([robustness] samples)."
    ),
    holdout: Path | None = typer.Option(
        None, "--holdout", help="A .npz of x [N, 64] pixels 0..16 and y labels (default: digits)."
    ),
    gate: bool = typer.Option(
        False, "--gate", help=f"Exit {GATE_MISSED} when a [robustness] threshold is missed."
    ),
    output: OutputFormat = OutputOption,
) -> None:
    """Attack a model version (FGSM, PGD, HopSkipJump, a backdoor probe, extraction) and record
    its robustness on the version."""
    with errors_as_exit():
        from console.evaluation.model import EvaluationRequest, parse_attacks

        settings = context(ctx).settings
        request = EvaluationRequest(
            model=model,
            version=version,
            attacks=parse_attacks(attacks) if attacks is not None else None,
            budget=budget,
            samples=samples,
            holdout=holdout,
            record=not settings.read_only,
        )
        result = _run(settings, request, bar=err.is_terminal and output is OutputFormat.table)
    from console.robustness import detector_misses, gate_misses

    misses = gate_misses(result.record, settings.robustness)
    misses += detector_misses(result.record, settings.detectors)
    if output is OutputFormat.json:
        print_json(
            {
                **result.report,
                "seconds": result.seconds,
                "gate": {"passed": not misses, "misses": [m.why for m in misses]},
            }
        )
    else:
        render(result, misses)
    if not result.recorded:
        err.print("read-only mode: measured only, nothing was written to the registry")
    elif not result.report.get("recorded_record", True):
        partial = "; ".join(result.report.get("partial", []))
        err.print(f"partial evaluation: the version's record was kept ({safe(partial)})")
    if gate and misses:
        for miss in misses:
            err.print(f"gate: {safe(miss.why)}")
        raise typer.Exit(GATE_MISSED)


def _run(settings: Settings, request: EvaluationRequest, bar: bool) -> EvaluationResult:
    """The evaluation, Ctrl-C setting its cancel flag (a second Ctrl-C interrupts outright)."""
    from console.evaluation.model import EvaluationCancelled
    from console.evaluation.service import evaluate as run_evaluation

    shown = _Bar(bar)
    interrupts = Interrupts(shown.update)
    cancel = interrupts.cancel
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, interrupts.on_interrupt) if in_main else None
    try:
        return asyncio.run(
            run_evaluation(settings, request, progress=interrupts.update, cancel=cancel)
        )
    except (EvaluationCancelled, KeyboardInterrupt):
        shown.stop()
        fail("eval cancelled: nothing was recorded", 130)
    finally:
        shown.stop()
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


class Interrupts:
    """Ctrl-C during an evaluation: the first sets the cancel flag (checked between chunks of
    work), a second interrupts outright, but only until the recording begins (the ``record``
    progress stage): from there every Ctrl-C is deferred, so no interrupt lands between the
    registry writes and leaves half a record."""

    def __init__(self, forward: Callable[[Progress], None]) -> None:
        self.cancel = threading.Event()
        self.recording = threading.Event()
        self._forward = forward

    def update(self, event: Progress) -> None:
        if event.stage == "record":
            self.recording.set()  # from here the run finishes: cancel is no longer checked
        self._forward(event)

    def on_interrupt(self, signum: int, frame: Any) -> None:
        if self.recording.is_set():
            err.print("recording: Ctrl-C deferred until the record is complete")
            return
        if self.cancel.is_set():  # a second Ctrl-C before recording: interrupt outright
            raise KeyboardInterrupt
        self.cancel.set()


class _Bar:
    """A Rich progress bar on stderr, one task per stage, when someone watches."""

    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled
        self._bar: Any = None
        self._tasks: dict[str, Any] = {}
        self._lock = threading.Lock()

    def update(self, event: Progress) -> None:
        if not self._enabled:
            return
        with self._lock:
            if self._bar is None:
                from rich.progress import BarColumn, MofNCompleteColumn, TimeElapsedColumn
                from rich.progress import Progress as RichProgress

                self._bar = RichProgress(
                    "{task.description}",
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeElapsedColumn(),
                    console=err,
                    transient=True,
                )
                self._bar.start()
            if event.stage not in self._tasks:
                self._tasks[event.stage] = self._bar.add_task(event.stage, total=event.total)
            self._bar.update(self._tasks[event.stage], completed=event.done, total=event.total)

    def stop(self) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.stop()
                self._bar = None


def render(result: EvaluationResult, misses: list[GateMiss]) -> None:
    record = result.record
    out.print(
        f"{safe(record.model)} version {safe(record.version)} "
        f"(sha256 {safe(record.onnx_sha256[:12])}) on {record.samples} held-out inputs "
        f"({safe(result.report.get('holdout_source', ''))}), {result.seconds:.1f} s"
    )
    out.print(
        f"clean_accuracy {record.clean_accuracy:.3f}   detector_fpr {record.detector_fpr:.3f} "
        f"(threshold {record.detector_threshold:.2f})"
    )
    table = new_table(
        "attack", f"success @ eps {record.epsilon:g}", "by strength", "detector recall", "queries"
    )
    for name, figures in record.attacks.items():
        success = figures.adversarial_success_rate
        if figures.surrogate_agreement is not None:
            success_text = f"agreement {figures.surrogate_agreement:.3f} @ {figures.budget}"
        else:
            success_text = "-" if success is None else f"{success:.3f}"
        curve = "  ".join(f"{k}: {v:.2f}" for k, v in figures.by_strength.items())
        recall = figures.detector_recall
        table.add_row(
            safe(name),
            success_text,
            curve or "-",
            "-" if recall is None else f"{recall:.3f}",
            "-" if figures.queries is None else f"{figures.queries:g}",
        )
    out.print(table)
    probe = record.attacks.get("backdoor")
    if probe is not None and probe.trigger is not None:
        patch = probe.trigger
        out.print(
            f"backdoor: the worst patch is {patch.size}x{patch.size} of {patch.value:g} at row "
            f"{patch.row}, column {patch.col} -> class {patch.target} (flips "
            f"{patch.flipped:.2f} of the other inputs)"
        )
    verdict = (
        "passes the gate" if not misses else "misses the gate: " + "; ".join(m.why for m in misses)
    )
    out.print(f"[bold]gate:[/] {safe(verdict)}")
    if result.recorded and result.report.get("recorded_record", True):
        out.print(f"recorded on the version (run {safe(record.run_id)})")
    elif result.recorded:
        out.print(f"run {safe(record.run_id)} recorded; the version's record was kept")
