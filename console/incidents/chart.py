"""The postmortem's chart, drawn as the drill report's is (``console.drills.chart``): the
client's requests per second at the gateway (the attacker in red), with the first request,
the alert, the first mitigation and containment marked. PNG bytes, matplotlib's Agg backend;
best effort (the caller keeps the export whole without it)."""

from __future__ import annotations

import io

from console.incidents.postmortem import Postmortem
from console.incidents.prom_history import RatePoint

MARKS = {
    "first-request": ("attack", "black"),
    "alert-firing": ("alert", "orange"),
    "mitigation": ("mitigation", "blue"),
    "contained": ("contained", "green"),
}
TITLE_CHARS = 80


def draw_chart(pm: Postmortem, series: list[RatePoint], highlight: str | None) -> bytes | None:
    """The PNG, or None when there is nothing to draw (no series was read)."""
    if not series:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    origin = pm.incident.opened_at
    figure, axes = plt.subplots(figsize=(10, 4), dpi=100)
    try:
        times = [(p.at - origin).total_seconds() for p in series]
        names = sorted({k for p in series for k, v in p.values.items() if v > 0})
        for name in names[:24]:
            red = name in (highlight, "sent")
            axes.plot(
                times,
                [p.values.get(name, 0.0) for p in series],
                label=name[:40].replace("$", r"\$"),
                color="red" if red else None,
                linewidth=2.0 if red else 0.8,
                alpha=1.0 if red else 0.6,
            )
        axes.set_ylim(bottom=0)
        seen: list[str] = []
        top = axes.get_ylim()[1]
        for event in pm.events:
            if event.kind in MARKS and event.kind not in seen:
                seen.append(event.kind)
                label, color = MARKS[event.kind]
                at = (event.at - origin).total_seconds()
                axes.axvline(at, color=color, linestyle="--", linewidth=1)
                height = top * (0.95 - 0.1 * (len(seen) - 1))
                axes.text(at, height, f" {label} {at:.0f}s", color=color, fontsize=8, va="top")
        axes.set_xlabel("seconds since the incident was opened")
        axes.set_ylabel("requests/s at the gateway")
        who = (pm.incident.client or pm.incident.model or "")[:TITLE_CHARS]
        # Text from the attacker: matplotlib reads $...$ as mathtext, so it is escaped.
        axes.set_title(f"incident {pm.incident.id}: {who}".replace("$", r"\$"))
        if 0 < len(names) <= 12:
            axes.legend(fontsize=7, loc="upper left")
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        return buffer.getvalue()
    finally:
        plt.close(figure)


__all__ = ["draw_chart"]
