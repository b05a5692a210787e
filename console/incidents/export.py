"""``incident export``: collect an incident's timeline, draft the postmortem and write it,
by default to ``<run_dir>/incidents/<id>/postmortem.<ext>`` (0600, the folder 0700) with the
chart next to it (``postmortem.png``; the HTML embeds it). The chart is best effort: an export
without it is whole, and says why it has none."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from console.errors import IncidentError
from console.incidents.export_html import render_html
from console.incidents.export_json import render_json
from console.incidents.export_md import render_md
from console.incidents.postmortem import Postmortem, build
from console.incidents.recurrence import recurrence_of
from console.incidents.store import IncidentStore
from console.incidents.timeline import Collected, collect
from console.private_files import write_private

if TYPE_CHECKING:
    from console.adapters.backends import Backends
    from console.config import Settings

ExportFormat = Literal["md", "html", "json"]
FORMATS: tuple[ExportFormat, ...] = ("md", "html", "json")
STDOUT = Path("-")


@dataclass(frozen=True)
class Exported:
    text: str
    path: Path | None
    """None: written to stdout (the caller prints ``text``)."""
    chart: Path | None
    missing: list[str]


async def draft(
    settings: Settings, backends: Backends, incident_id: str
) -> tuple[Postmortem, Collected]:
    store = IncidentStore(settings)
    incident = store.get(incident_id)
    collected = await collect(incident, settings, backends)
    everyone = store.all()
    text = recurrence_of(incident, everyone, datetime.now(UTC)).text
    pm = build(collected, text)
    pm.generated_at = datetime.now(UTC)
    return pm, collected


def _chart(pm: Postmortem, collected: Collected) -> bytes | None:
    from console.incidents.chart import draw_chart

    try:
        png = draw_chart(pm, collected.series, collected.highlight)
    except Exception as exc:  # noqa: BLE001 - the chart must not lose the export
        pm.chart_problem = f"the chart could not be drawn ({type(exc).__name__}: {exc})"[:300]
        return None
    if png is None:
        pm.chart_problem = "no request-rate series was read"
    return png


async def export_incident(
    settings: Settings,
    backends: Backends,
    incident_id: str,
    fmt: ExportFormat,
    out: Path | None = None,
) -> Exported:
    """Write the postmortem (``out``: a file, ``-`` for stdout, None for the default)."""
    if fmt not in FORMATS:
        raise IncidentError(f"unknown export format {fmt!r}: use md, html or json")
    pm, collected = await draft(settings, backends, incident_id)
    to_stdout = out == STDOUT
    if out is None:
        out = IncidentStore(settings).folder(pm.incident.id) / f"postmortem.{fmt}"
    png = _chart(pm, collected)
    chart_path: Path | None = None
    if png is not None and not to_stdout and fmt != "html":
        chart_path = out.with_name(f"{out.stem}.png")
        try:
            write_private(chart_path, png)
            pm.chart = chart_path.name
        except OSError as exc:
            chart_path, pm.chart_problem = None, f"cannot write {out.with_suffix('.png')}: {exc}"
    elif png is not None and to_stdout and fmt != "html":
        pm.chart_problem = "not written: the export went to stdout"
    if fmt == "md":
        text = render_md(pm)
    elif fmt == "html":
        text = render_html(pm, png)
    else:
        text = render_json(pm)
    if to_stdout:
        return Exported(text, None, None, pm.missing)
    try:
        write_private(out, text)
    except OSError as exc:
        raise IncidentError(
            f"cannot write the postmortem to {out}: {exc.strerror or exc}"
        ) from None
    return Exported(text, out, chart_path, pm.missing)


__all__ = ["FORMATS", "STDOUT", "ExportFormat", "Exported", "draft", "export_incident"]
