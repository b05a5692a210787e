"""The postmortem as GitHub-flavoured markdown: a table of times, the timeline as a table, the
chart as a relative image link.

Client ids, alert labels, runbook parameters and notes are attacker-controlled or typed by
an operator: every one goes through :func:`cell`, which keeps it one line and inert (no table
break through ``|`` or a newline, no code span, link, image, heading or HTML)."""

from __future__ import annotations

from urllib.parse import quote

from console.incidents.postmortem import Postmortem, relative, seconds, stamp

SPECIAL = set("\\`*_[]|~#")
ENTITIES = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}


def cell(text: object, limit: int = 2000) -> str:
    """``text`` as one line of inert markdown (also inside a table cell)."""
    raw = " ".join(str(text).split())
    if len(raw) > limit:
        raw = raw[: limit - 1] + "…"
    out = []
    for ch in raw:
        if ch in ENTITIES:
            out.append(ENTITIES[ch])
        elif ch in SPECIAL:
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append("\N{REPLACEMENT CHARACTER}")
    return "".join(out)


def render_md(pm: Postmortem) -> str:
    inc = pm.incident
    lines = [f"# Postmortem draft: {cell(inc.title)}", ""]
    lines += [
        f"Incident `{inc.id}` · {cell(inc.status)} · severity {cell(inc.severity)} · "
        f"source {cell(inc.source)}",
        "",
        "## Summary",
        "",
    ]
    lines += [f"- {cell(line)}" for line in pm.summary()]
    if pm.missing:
        lines += ["", "## What could not be read", ""]
        lines += [f"- {cell(line)}" for line in pm.missing]
    lines += ["", "## Times", "", "| moment | at (UTC) | from the first request | figure |"]
    lines.append("|---|---|---|---|")
    for m in pm.moments:
        figure = f"`{m.figure}`" if m.figure else ""
        value = seconds(m.seconds) if m.figure or m.seconds is not None else ""
        lines.append(f"| {cell(m.label)} | {cell(stamp(m.at))} | {cell(value)} | {figure} |")
    lines += ["", "## Timeline", "", "| at (UTC) | since opened | event | detail | by |"]
    lines.append("|---|---|---|---|---|")
    for e in pm.events:
        lines.append(
            f"| {cell(stamp(e.at))} | {cell(relative(e.at, inc.opened_at))} | {cell(e.kind)} | "
            f"{cell(e.detail)} | {cell(e.operator or '')} |"
        )
    lines += ["", "## What was done, and by whom", ""]
    if pm.actions:
        lines += ["| at (UTC) | what | detail | by |", "|---|---|---|---|"]
        for e in pm.actions:
            who = cell(e.operator or "")
            lines.append(f"| {cell(stamp(e.at))} | {cell(e.kind)} | {cell(e.detail)} | {who} |")
    else:
        lines.append("- No runbook run on this incident's client or model is in the audit log.")
    lines += ["", "## Notes", ""]
    lines += [
        f"- {cell(stamp(e.at))}, {cell(e.operator or '?')}: {cell(e.detail)}" for e in pm.notes
    ] or ["- No notes."]
    lines += ["", "## Evidence and replays", ""]
    found = [*pm.evidence, *pm.replays]
    lines += [f"- {cell(e.kind)} {cell(stamp(e.at))}: {cell(e.detail)}" for e in found] or [
        "- No evidence capture or replay verdict is recorded for this incident."
    ]
    if pm.drill:
        lines += ["", "## Drill", "", "| score | value |", "|---|---|"]
        scores = pm.drill.get("scores") or {}
        for key in sorted(scores):
            lines.append(f"| {cell(key)} | {cell(scores[key])} |")
        if pm.drill.get("report_dir"):
            lines += ["", f"Drill report: {cell(pm.drill['report_dir'])}"]
    lines += ["", "## Chart", ""]
    if pm.chart:
        lines.append(f"![request rate with the alert and mitigation marked]({quote(pm.chart)})")
    else:
        lines.append(f"- No chart: {cell(pm.chart_problem or 'no request-rate series was read')}.")
    lines += [
        "",
        "## Follow-ups",
        "",
        "- [ ] What would have detected it sooner?",
        "- [ ] What would have mitigated it sooner?",
        "",
        f"_Drafted by aml-console {cell(stamp(pm.generated_at))}._",
        "",
    ]
    return "\n".join(lines)


__all__ = ["cell", "render_md"]
