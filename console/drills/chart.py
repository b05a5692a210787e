"""The drill chart: requests per second at the gateway per client (the attacker in red), with
the attack start, the alert, the mitigation and containment marked. A PNG, for the report and
the postmortem."""

from __future__ import annotations

from pathlib import Path

from console.drills.report_data import DrillReport

MARKS = {
    "first-request": ("attack", "black"),
    "alert-firing": ("alert", "orange"),
    "mitigation": ("mitigation", "blue"),
    "contained": ("contained", "green"),
}


def draw_chart(report: DrillReport, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(10, 4), dpi=100)
    try:
        times = [row["at_s"] for row in report.series]
        clients = sorted(
            {k for row in report.series for k, v in row.items() if k != "at_s" and v > 0}
        )
        for client in clients:
            values = [row.get(client, 0.0) for row in report.series]
            attacker = client == report.attacker
            axes.plot(
                times,
                values,
                label=client,
                color="red" if attacker else None,
                linewidth=2.0 if attacker else 0.8,
                alpha=1.0 if attacker else 0.6,
            )
        seen: list[str] = []
        top = axes.get_ylim()[1]
        for event in report.timeline:
            if event.kind in MARKS and event.kind not in seen:
                seen.append(event.kind)
                label, color = MARKS[event.kind]
                axes.axvline(event.at_s, color=color, linestyle="--", linewidth=1)
                # Staggered: the alert, the mitigation and containment are often a second apart.
                height = top * (0.95 - 0.1 * (len(seen) - 1))
                axes.text(
                    event.at_s,
                    height,
                    f" {label} {event.at_s:.0f}s",
                    color=color,
                    fontsize=8,
                    va="top",
                )
        axes.set_xlabel("seconds since the drill started")
        axes.set_ylabel("requests/s at the gateway")
        axes.set_title(f"drill {report.scenario}: {report.attacker} against {report.model}")
        if len(clients) <= 12:
            axes.legend(fontsize=7, loc="upper left")
        figure.tight_layout()
        figure.savefig(path)
    finally:
        plt.close(figure)
