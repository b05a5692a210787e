"""The `?` help: the views' keys, from their declarations (console/views/catalog.py), then
every other key of the console."""

from __future__ import annotations

from collections.abc import Sequence

from console.views.catalog import VIEWS, ViewDeclaration

LABEL = "Views".ljust(14)
WIDTH = 90
"""The widest line of the help; the views' keys wrap to stay within it."""

OTHER_KEYS = """\
Everywhere    :  command line        /  filter rows        ?  this help
              r  refresh now         i  the PromQL of the view (on Alerts: open incident)
              :note TEXT  a note on the open incident (an audit record)
              ctrl+p  command palette   q  quit (the lab keeps running)
Contexts      :ctx  list them (enter switches)   :ctx NAME  switch (not during a run)
Alerts        b  block the alert's client      c  contain-extraction
              s  silence the alert             enter  the client's samples and traces
              i  open an incident from the alert (b/c on a critical one open it too)
              shift+S N C M T A  sort: severity, alert, client, model, state, age
Alerts, Clients, Samples   v  replay the inputs through champion and previous
Alerts, Clients   enter on "… more"  the next page   same sort key again  reversed
Replay        R  roll back (rollback-model)    r  again   esc  back (cancels a replay)
Clients       b  block client   l  lower its query budget   u  unblock
              shift+W N M T E F X  sort: why, client, model, req/s, extraction, flagged,
              refused        /  also searches the whole fleet by client id
Models        R  roll back the selected model (rollback-model runbook)
Audit         arrows  the selected record in full, and its run
Mitigations   u  unblock the selected client   x  restore its budget
              z  undo the selected registry change (a rollback: promote-model, through
                 the gate; a promotion: rollback-model)
Runbooks      enter  open the selected runbook, prefilled from your last selection
              :run NAME key=value ...
Pending       a  approve the selected run     d  deny it (with a reason)
Incidents     n  add a note   x  close   e  export the postmortem (markdown)
Runbook       p  plan (read from the real systems)   y  apply (asks to confirm: y / n)
  dialog      esc  close (not while a run is in progress; while it waits for approval,
              the request stays pending: `runbook resume RUN_ID` runs it once approved)
Read-only     action keys open the plan only; nothing is applied
"""


def views_help(views: Sequence[ViewDeclaration]) -> str:
    """``1 alerts  2 clients ...`` wrapped at WIDTH, then a sample of the `:` forms (all of
    them would not fit on a line)."""
    rows: list[str] = []
    for view in views:
        cell = f"{view.key} {view.name}"
        if rows and len(LABEL) + len(rows[-1]) + 2 + len(cell) <= WIDTH:
            rows[-1] += "  " + cell
        else:
            rows.append(cell)
    forms = " ".join(f":{view.name}" for view in views[:3])
    forms += f" ... :samples client=ID :{views[-1].name}"
    if len(LABEL) + len(rows[-1]) + 3 + len(forms) <= WIDTH:
        rows[-1] += "   " + forms
    else:
        rows.append(forms)
    indent = " " * len(LABEL)
    return "".join(f"{LABEL if i == 0 else indent}{row}\n" for i, row in enumerate(rows))


HELP = views_help(VIEWS) + OTHER_KEYS
