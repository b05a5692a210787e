"""Which clients the Clients view lists, and why: suspicious first, at fleet scale.

At 100,000 clients a list by request rate hides a slow extraction attacker behind busier
legitimate clients. The view lists the union of
  * the top-K per model by request rate, extraction score, flagged rate and refused share
    (computed in PromQL, so the answer is bounded whatever the fleet's size), and
  * every client the console is watching: a firing alert, a block, a budget or hardening
    (read by an exact, escaped label regex: only those series are read),
each row with the reasons it is listed, ordered alerts first, then by extraction score.

The top lists are read from the shipped rules' bounded recordings (group
``aml-clients-bounded``: every listed client's four values, at most 4K series per model, and the
active count), so a refresh reads the same few series at 100 or 100,000 clients. Without them
(an engine loading older rules) the view computes the same top lists over every client series
(``top_queries``), and says so. ``more`` widens every list by K per step (the "more" row
pages through the rest), and the ``/`` search reads the whole fleet: both on demand only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from console.adapters.policy_records import CLIENT_ID

TOP_PER_CRITERION = 20
"""K: clients each criterion lists per model."""
WATCHED_LIMIT = 200
"""Watched clients read per refresh; beyond it the view says how many were left out."""
EXTRACTION_ALERT = 0.4
"""AMLExtractionSuspected's threshold (configs/prometheus/aml-alerts.yml)."""

RATE = "aml:client_requests:rate1m"
EXTRACTION = "max by (model, client) (aml_client_extraction_score{sel})"
FLAGGED = "aml:client_flagged:rate1m"
REFUSED = "aml:client_refused:ratio_rate1m"

LISTED: dict[str, str] = {
    "rate": "aml:client_listed:rate1m",
    "extraction": "aml:client_listed:extraction_score",
    "flagged": "aml:client_listed:flagged_rate1m",
    "refused": "aml:client_listed:refused_ratio_rate1m",
}
"""The bounded recordings of the listed clients' values, by criterion (K above is their K)."""
ACTIVE_RECORDED = "aml:clients_active:count"
OVER_THRESHOLD_RECORDED = "aml:clients_extraction_over:count"
"""Clients over the extraction alert's threshold, per model: when more than the view lists,
it says so (a top list filled by decoys cannot hide the rest silently)."""
ACTIVE_COMPUTED = f"count by (model) ({RATE} > 0)"
"""The active count without the bounded recordings (one pass over every client series)."""
HEATMAP_ROWS = 10
HEATMAP_RECORDED = f'topk({HEATMAP_ROWS}, aml:client_requests:top_rate1m{{client!="(rest)"}})'
HEATMAP_COMPUTED = f"topk({HEATMAP_ROWS}, {RATE})"


@dataclass(frozen=True)
class Criterion:
    name: str
    """What a row listed by it says: ``top <name>``."""
    expr: str
    """The per-client expression, ``{sel}`` where a label selector goes."""


CRITERIA: tuple[Criterion, ...] = (
    Criterion("rate", RATE + "{sel}"),
    Criterion("extraction", EXTRACTION),
    Criterion("flagged", FLAGGED + "{sel}"),
    Criterion("refused", REFUSED + "{sel}"),
)


def _of(criterion: Criterion, selector: str = "") -> str:
    return criterion.expr.format(sel=selector)


NOT_RECORDED = (
    "the bounded client recordings (rules group aml-clients-bounded) are missing: every client "
    "series was read, slow at fleet scale; load the shipped rules (aml-console rules export)"
)


def listed_queries() -> dict[str, str]:
    """The listed clients' values per criterion, from the bounded recordings."""
    return dict(LISTED)


def top_queries(more: int = 0, k: int = TOP_PER_CRITERION) -> dict[str, str]:
    """Each criterion's own top ``k * (1 + more)`` per model over every client series (the
    "more" page, or all of it without the bounded recordings), each answer bounded. The listed
    clients' other values are then read by exact ids (``by_id_queries``)."""
    queries = {}
    for criterion in CRITERIA:
        expr = _of(criterion)
        if criterion.name in ("flagged", "refused"):
            expr = f"({expr}) > 0"  # a zero is no reason to list a client
        queries[criterion.name] = f"topk by (model) ({k * (1 + more)}, {expr})"
    return queries


def client_regex(clients: Iterable[str]) -> tuple[str, list[str]]:
    """A PromQL regex matching exactly ``clients`` (ids a policy store or an alert gave, so
    attacker text): only well-formed ids are kept, ``.`` escaped (the only regex character the
    id alphabet allows). Returns the regex and the ids left out as malformed."""
    kept: list[str] = []
    malformed: list[str] = []
    for client in sorted(set(clients)):
        (kept if CLIENT_ID.fullmatch(client) else malformed).append(client)
    # In a PromQL string a backslash is written twice: "a\\.b" is the regex a\.b.
    return "|".join(c.replace(".", "\\\\.") for c in kept), malformed


REGEX_BUDGET = 3000
"""Characters of one id regex: four queries of it stay under an 8 KB URL (proxies) and far
under VictoriaMetrics' 16 KB query limit, whatever the ids' length."""


def client_regexes(
    clients: Iterable[str], budget: int = REGEX_BUDGET
) -> tuple[list[str], list[str]]:
    """``client_regex`` in pieces of at most ``budget`` characters (each matches exactly its
    ids), and the ids left out as malformed."""
    whole, malformed = client_regex(clients)
    pieces: list[str] = []
    current = ""
    for escaped in whole.split("|") if whole else []:
        if current and len(current) + 1 + len(escaped) > budget:
            pieces.append(current)
            current = ""
        current = f"{current}|{escaped}" if current else escaped
    if current:
        pieces.append(current)
    return pieces, malformed


def by_id_queries(regex: str) -> dict[str, str]:
    """Each criterion's value for the clients ``regex`` names (from ``client_regex``): the
    listed clients' other columns, and the watched clients' rows."""
    selector = f'{{client=~"{regex}"}}'
    return {c.name: _of(c, selector) for c in CRITERIA}


def search_regex(text: str) -> str | None:
    """A regex for client ids containing ``text`` (any case, as the ``/`` filter), or None
    when ``text`` could not be part of an id (then nothing is asked of the engine)."""
    if not text or not CLIENT_ID.fullmatch("a" + text):
        return None
    return "(?i).*" + text.replace(".", "\\\\.") + ".*"


SEARCH_LIMIT = TOP_PER_CRITERION * 5


def search_queries(regex: str, limit: int = SEARCH_LIMIT) -> dict[str, str]:
    """Each criterion's value for the ``limit`` clients matching ``regex`` that rank highest by
    any criterion (the union of each criterion's top ``limit`` among the matches)."""
    selector = f'{{client=~"{regex}"}}'
    found = " or ".join(f"topk({limit}, {_of(c, selector)})" for c in CRITERIA)
    return {c.name: f"({_of(c, selector)}) and on (model, client) ({found})" for c in CRITERIA}


def search_count(regex: str) -> str:
    """How many (model, client) series match ``regex``: more than the search read is said."""
    return f'count({RATE}{{client=~"{regex}"}})'


def over_threshold_computed() -> str:
    return f"count by (model) ({_of(CRITERIA[1])} > {EXTRACTION_ALERT})"


def top_reasons(
    values: dict[str, dict[tuple[str, str], float]], more: int = 0, k: int = TOP_PER_CRITERION
) -> dict[tuple[str, str], list[str]]:
    """Why each (model, client) is in a top list: its rank per model by each criterion, as the
    engine's topk chose (ties aside)."""
    reasons: dict[tuple[str, str], list[str]] = {}
    for criterion in CRITERIA:
        size = k * (1 + more)
        by_model: dict[str, list[tuple[float, str]]] = {}
        for (model, client), value in values.get(criterion.name, {}).items():
            if criterion.name in ("flagged", "refused") and not value > 0:
                continue
            by_model.setdefault(model, []).append((value, client))
        for model, ranked in by_model.items():
            ranked.sort(key=lambda vc: (-vc[0], vc[1]))
            for rank, (_, client) in enumerate(ranked[:size], start=1):
                label = f"top {criterion.name}" if rank <= k else f"{criterion.name} #{rank}"
                reasons.setdefault((model, client), []).append(label)
    return reasons


def suspicion_order(
    alerts: int, extraction: float | None, flagged: float | None, refused: float | None, rate: float
) -> tuple[float, ...]:
    """The view's default order: clients with a firing alert, then those over the extraction
    threshold, then by extraction score, flagged rate, refused share and rate."""
    score = extraction or 0.0
    return (
        0 if alerts else 1,
        0 if score > EXTRACTION_ALERT else 1,
        -score,
        -(flagged or 0.0),
        -(refused or 0.0),
        -rate,
    )
