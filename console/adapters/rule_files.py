"""The Prometheus rule files the console ships (``configs/prometheus/``, package data): where
they are, the intervals their windows and ``for:`` are sized for, and what an alert in them
waits.

The console's own queries and the drills' detection floor depend on these files as much as on
the code, so they are read here, once, and not through the lab that happens to load them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from console import shipped

RULES_DIR = shipped.rules_dir()
"""The recording and alert rules (and their promtool tests under ``tests/``)."""
SCRAPE_INTERVAL = "5s"
"""The scrape interval the rules are sized for (the lab's engine uses it)."""
EVALUATION_INTERVAL = "5s"
"""The rule evaluation interval the rules are sized for."""


def alert_for_s(alertname: str, rules_dir: Path | None = None) -> float | None:
    """The ``for:`` of alert ``alertname`` in seconds, or None if no rule file defines it.
    Unreadable or malformed files are passed over (promtool's tests catch those)."""
    from console.durations import parse_duration

    for rule in _rules(rules_dir):
        if rule.get("alert") == alertname:
            return parse_duration(str(rule.get("for", "0s"))).total_seconds()
    return None


@dataclass(frozen=True)
class ShippedRules:
    """What the shipped rule files define and read."""

    alerts: tuple[str, ...]
    records: tuple[str, ...]
    """Recorded series (``aml:<what>:<operation><window>``)."""
    series_read: tuple[str, ...]
    """The raw series (``aml_*``) the rules' expressions read: the gateway's metric contract
    as the rules and the views built on their recordings need it."""


_SERIES_NAME = re.compile(r"(?<![\w:])aml_[A-Za-z0-9_]*")


def shipped_rules(rules_dir: Path | None = None) -> ShippedRules:
    """Alert names, recorded series and read series of the rule files, each sorted."""
    alerts: set[str] = set()
    records: set[str] = set()
    read: set[str] = set()
    for rule in _rules(rules_dir):
        if isinstance(rule.get("alert"), str):
            alerts.add(rule["alert"])
        if isinstance(rule.get("record"), str):
            records.add(rule["record"])
        read.update(_SERIES_NAME.findall(str(rule.get("expr", ""))))
    return ShippedRules(tuple(sorted(alerts)), tuple(sorted(records)), tuple(sorted(read)))


def _rules(rules_dir: Path | None) -> Iterator[dict[str, Any]]:
    """Every rule of the rule files, in file order. Unreadable or malformed files are passed
    over (promtool's tests catch those)."""
    import yaml

    for path in sorted((rules_dir or RULES_DIR).glob("*.yml")):
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        groups = doc.get("groups", []) if isinstance(doc, dict) else []
        for group in groups if isinstance(groups, list) else []:
            rules = group.get("rules", []) if isinstance(group, dict) else []
            for rule in rules if isinstance(rules, list) else []:
                if isinstance(rule, dict):
                    yield rule


def detection_floor_s(alertname: str, rules_dir: Path | None = None) -> float | None:
    """Scrape interval + rule evaluation interval + the alert's ``for:`` (docs/architecture.md,
    "Detection-time floor")."""
    from console.durations import parse_duration

    wait = alert_for_s(alertname, rules_dir)
    if wait is None:
        return None
    scrape = parse_duration(SCRAPE_INTERVAL).total_seconds()
    evaluation = parse_duration(EVALUATION_INTERVAL).total_seconds()
    return scrape + evaluation + wait
