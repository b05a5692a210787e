"""The postmortem as one self-contained HTML page: inline style, the chart embedded as a
``data:`` URI, no script, no external resource (a ``default-src 'none'`` policy says so to the
browser). Every string goes through ``html.escape``: a client id ``<script>...`` is text."""

from __future__ import annotations

import base64
from html import escape

from console.incidents.postmortem import Postmortem, relative, seconds, stamp

STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:70em;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;"
    "text-align:left;vertical-align:top}th{background:#f3f3f3}code{background:#f3f3f3}"
    ".missing{color:#a40}img{max-width:100%}"
)
POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def e(text: object) -> str:
    return escape(str(text), quote=True)


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    """``rows`` are already escaped."""
    out = ["<table>", "<tr>" + "".join(f"<th>{e(h)}</th>" for h in headers) + "</tr>"]
    out += ["<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows]
    out.append("</table>")
    return out


def render_html(pm: Postmortem, chart_png: bytes | None = None) -> str:
    inc = pm.incident
    title = f"Postmortem draft: {inc.title}"
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{e(POLICY)}">',
        f"<title>{e(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        f"<p>Incident <code>{e(inc.id)}</code> · {e(inc.status)} · severity {e(inc.severity)}"
        f" · source {e(inc.source)}</p>",
        "<h2>Summary</h2><ul>",
        *(f"<li>{e(line)}</li>" for line in pm.summary()),
        "</ul>",
    ]
    if pm.missing:
        out.append('<h2>What could not be read</h2><ul class="missing">')
        out += [f"<li>{e(line)}</li>" for line in pm.missing]
        out.append("</ul>")
    out.append("<h2>Times</h2>")
    out += _table(
        ["moment", "at (UTC)", "from the first request", "figure"],
        [
            [
                e(m.label),
                e(stamp(m.at)),
                e(seconds(m.seconds)) if m.figure or m.seconds is not None else "",
                f"<code>{e(m.figure)}</code>" if m.figure else "",
            ]
            for m in pm.moments
        ],
    )
    out.append("<h2>Timeline</h2>")
    out += _table(
        ["at (UTC)", "since opened", "event", "detail", "by"],
        [
            [
                e(stamp(ev.at)),
                e(relative(ev.at, inc.opened_at)),
                e(ev.kind),
                e(ev.detail),
                e(ev.operator or ""),
            ]
            for ev in pm.events
        ],
    )
    out.append("<h2>What was done, and by whom</h2>")
    if pm.actions:
        out += _table(
            ["at (UTC)", "what", "detail", "by"],
            [[e(stamp(a.at)), e(a.kind), e(a.detail), e(a.operator or "")] for a in pm.actions],
        )
    else:
        out.append("<p>No runbook run on this incident's client or model is in the audit log.</p>")
    out.append("<h2>Notes</h2><ul>")
    out += [f"<li>{e(stamp(n.at))}, {e(n.operator or '?')}: {e(n.detail)}</li>" for n in pm.notes]
    out += ["<li>No notes.</li>"] if not pm.notes else []
    out.append("</ul><h2>Evidence and replays</h2><ul>")
    found = [*pm.evidence, *pm.replays]
    out += [f"<li>{e(f.kind)} {e(stamp(f.at))}: {e(f.detail)}</li>" for f in found]
    if not found:
        out.append("<li>No evidence capture or replay verdict is recorded for this incident.</li>")
    out.append("</ul>")
    if pm.drill:
        scores = pm.drill.get("scores") or {}
        out.append("<h2>Drill</h2>")
        out += _table(["score", "value"], [[e(k), e(scores[k])] for k in sorted(scores)])
        if pm.drill.get("report_dir"):
            out.append(f"<p>Drill report: <code>{e(pm.drill['report_dir'])}</code></p>")
    out.append("<h2>Chart</h2>")
    if chart_png:
        data = base64.b64encode(chart_png).decode("ascii")
        out.append(
            f'<img alt="request rate with the alert and mitigation marked" '
            f'src="data:image/png;base64,{data}">'
        )
    else:
        why = pm.chart_problem or "no request-rate series was read"
        out.append(f"<p>No chart: {e(why)}.</p>")
    out.append(f"<p><em>Drafted by aml-console {e(stamp(pm.generated_at))}.</em></p>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


__all__ = ["render_html"]
