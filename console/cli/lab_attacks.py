"""``aml-console lab attack KIND`` and ``lab traffic``: load on the lab gateway.

Each runs in the foreground, bounded by a request budget and a duration, against the configured
gateway (loopback only), and prints its report.
"""

from __future__ import annotations

import asyncio
from enum import StrEnum
from typing import Any

import typer
from rich.table import Table

from console.cli.common import OutputFormat, OutputOption, context, emit, errors_as_exit, safe
from console.cli.common import stderr as err
from console.cli.common import stdout as out
from console.urls import redact_url

attack_app = typer.Typer(
    help="Attack the lab gateway (loopback only; seeded; stops by itself). Each attack is "
    "listed by `lab status` while it runs and after.",
    no_args_is_help=True,
)

ClientOption = typer.Option(..., "--client", help="Client id the attacker sends (X-Client-Id).")
ModelOption = typer.Option(None, "--model", help="Served model (default: models.served[0]).")
SeedOption = typer.Option(0, "--seed", help="Seed of every random choice.")


def _budget(default: int) -> Any:
    return typer.Option(default, "--budget", min=1, help="Max queries (input rows) sent.")


def _duration(default: float) -> Any:
    return typer.Option(default, "--duration", min=0.1, max=3600, help="Max seconds.")


def _run_attack(
    ctx: typer.Context,
    kind: str,
    client: str,
    model: str | None,
    output: OutputFormat,
    args: dict[str, Any],
    start_after: float = 0.0,
) -> None:
    """Attack ``kind`` through the one tracked runner (``console.lab.attacks.launch``)."""
    with errors_as_exit():
        from console.lab.attacks.launch import prepare_attack

        attack = prepare_attack(context(ctx).settings, kind, client, model, args)
        err.print(
            f"{safe(kind)} as {safe(client)} against {safe(attack.model)} at "
            f"{safe(redact_url(attack.target))}"
        )
        data = asyncio.run(attack.run(start_after=start_after))
    emit(data, output, lambda: _render_report(f"{kind} report", data))


def _render_report(title: str, data: dict[str, Any]) -> None:
    table = Table("field", "value", title=safe(title))
    for key, value in data.items():
        if key == "trace_ids" and isinstance(value, list):
            value = f"{len(value)} ids (see --output json)"
        if isinstance(value, dict):
            for sub, item in value.items():
                if not isinstance(item, dict):
                    table.add_row(safe(f"{key}.{sub}"), safe(item))
        else:
            table.add_row(safe(key), safe(value))
    out.print(table)


class ExtractionStrategy(StrEnum):
    jacobian = "jacobian"
    uniform = "uniform"


@attack_app.command()
def extraction(
    ctx: typer.Context,
    client: str = ClientOption,
    model: str | None = ModelOption,
    rate: float = typer.Option(50.0, "--rate", min=0.1, help="Requests per second."),
    budget: int = _budget(3000),
    duration: float = _duration(60.0),
    seed: int = SeedOption,
    strategy: ExtractionStrategy = typer.Option(ExtractionStrategy.jacobian, "--strategy"),
    batch: int = typer.Option(1, "--batch", min=1, max=1024, help="Rows per request."),
    give_up_after: int = typer.Option(
        25, "--give-up-after", min=0, help="Stop after this many 403s in a row (0: never)."
    ),
    start_after: float = typer.Option(
        0.0, "--start-after", min=0, max=3600, help="Seconds to wait before the first query."
    ),
    output: OutputFormat = OutputOption,
) -> None:
    """Query with synthetic inputs, train a surrogate, report its agreement with the model."""
    args = {
        "rate": rate,
        "budget": budget,
        "duration": duration,
        "seed": seed,
        "strategy": strategy.value,
        "batch": batch,
        "give_up_after": give_up_after,
    }
    # A scripted attack (demo) waits inside its `lab status` record.
    _run_attack(ctx, "extraction", client, model, output, args, start_after=start_after)


class EvasionMethod(StrEnum):
    fgsm = "fgsm"
    pgd = "pgd"
    hsj = "hsj"


@attack_app.command()
def evasion(
    ctx: typer.Context,
    client: str = ClientOption,
    model: str | None = ModelOption,
    method: EvasionMethod = typer.Option(
        EvasionMethod.fgsm,
        "--method",
        help="fgsm/pgd: white box on a local surrogate, transferred; hsj: HopSkipJump, black "
        "box against the gateway.",
    ),
    samples: int = typer.Option(50, "--samples", min=1, max=1000),
    eps: float = typer.Option(3.0, "--eps", min=0.0, max=16.0, help="L-inf bound (pixels)."),
    budget: int = _budget(5000),
    duration: float = _duration(120.0),
    seed: int = SeedOption,
    output: OutputFormat = OutputOption,
) -> None:
    """Adversarial examples (ART) sent to the gateway; report success rate and queries."""
    args = {
        "method": method.value,
        "samples": samples,
        "eps": eps,
        "budget": budget,
        "duration": duration,
        "seed": seed,
    }
    _run_attack(ctx, "evasion", client, model, output, args)


@attack_app.command()
def flood(
    ctx: typer.Context,
    client: str = ClientOption,
    model: str | None = ModelOption,
    concurrency: int = typer.Option(32, "--concurrency", min=1, max=256),
    budget: int = _budget(2000),
    duration: float = _duration(30.0),
    seed: int = SeedOption,
    respect_retry_after: bool = typer.Option(
        False, "--respect-retry-after/--ignore-retry-after", help="Abusers ignore it."
    ),
    output: OutputFormat = OutputOption,
) -> None:
    """Many concurrent requests; report achieved rate, outcomes and latency percentiles."""
    args = {
        "concurrency": concurrency,
        "budget": budget,
        "duration": duration,
        "seed": seed,
        "respect_retry_after": respect_retry_after,
    }
    _run_attack(ctx, "flood", client, model, output, args)


@attack_app.command()
def poisoning(
    ctx: typer.Context,
    client: str = ClientOption,
    model: str | None = ModelOption,
    target: int = typer.Option(0, "--target", min=0, max=9, help="Class the trigger forces."),
    fraction: float = typer.Option(0.1, "--poison-fraction", min=0.001, max=0.5),
    promote: bool = typer.Option(True, "--promote/--no-promote", help="Make it champion."),
    seed: int = SeedOption,
    output: OutputFormat = OutputOption,
) -> None:
    """Register a backdoored version (trigger: bright 2x2 corner patch) and promote it."""
    args = {"target": target, "poison_fraction": fraction, "promote": promote, "seed": seed}
    _run_attack(ctx, "poisoning", client, model, output, args)


def traffic(
    ctx: typer.Context,
    clients: int = typer.Option(5, "--clients", min=1, max=200, help="alice, bob, carol..."),
    rate: float = typer.Option(5.0, "--rate", min=0.01, help="Mean requests/s per client."),
    duration: float = _duration(60.0),
    max_requests: int | None = typer.Option(
        None, "--max-requests", min=1, help="Stop after this many (default: 3x expected)."
    ),
    seed: int = SeedOption,
    model: str | None = ModelOption,
    output: OutputFormat = OutputOption,
) -> None:
    """Benign clients sending held-out digits with light noise, in the foreground."""
    with errors_as_exit():
        from console.lab import guard
        from console.lab.attacks.common import require_loopback_target
        from console.lab.traffic import run_benign

        settings = context(ctx).settings
        guard.refuse_read_only(settings, "lab traffic")
        require_loopback_target(settings.gateway.url)
        guard.require_lab_service("gateway", settings.gateway.url)
        shown = redact_url(settings.gateway.url)
        err.print(f"{clients} benign clients for {duration:g} s at {safe(shown)}")
        report = asyncio.run(
            run_benign(
                settings, clients, rate, duration, seed, max_requests=max_requests, model=model
            )
        )
    data = report.as_dict()

    def render() -> None:
        table = Table(
            "client",
            "rate/s",
            "requests",
            "ok",
            "blocked",
            "throttled",
            "other",
            "p50 ms",
            "p99 ms",
            title=f"benign traffic on {safe(report.model)}",
        )
        for name, row in data["clients"].items():
            o, lat = row["outcomes"], row["latency"]
            table.add_row(
                safe(name),
                f"{data['rates'][name]:g}",
                *(str(v) for v in (row["requests"], o["ok"], o["blocked"], o["throttled"])),
                str(o["other"]),
                str(lat["p50_ms"]),
                str(lat["p99_ms"]),
            )
        out.print(table)
        out.print(f"stopped: {safe(report.run.stopped)} after {report.run.duration_s:g} s")

    emit(data, output, render)
