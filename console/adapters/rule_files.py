"""The Prometheus rule files the console ships (``configs/prometheus/``): where they are, the
intervals their windows and ``for:`` are sized for, and what an alert in them waits.

The console's own queries and the drills' detection floor depend on these files as much as on
the code, so they are read here, once, and not through the lab that happens to load them.
"""

from __future__ import annotations

from pathlib import Path

RULES_DIR = Path("configs/prometheus")
"""The recording and alert rules (and their promtool tests under ``tests/``)."""
SCRAPE_INTERVAL = "5s"
"""The scrape interval the rules are sized for (the lab's engine uses it)."""
EVALUATION_INTERVAL = "5s"
"""The rule evaluation interval the rules are sized for."""


def alert_for_s(alertname: str, rules_dir: Path | None = None) -> float | None:
    """The ``for:`` of alert ``alertname`` in seconds, or None if no rule file defines it.
    Unreadable or malformed files are passed over (promtool's tests catch those)."""
    import yaml

    from console.durations import parse_duration

    for path in sorted((rules_dir or RULES_DIR).glob("*.yml")):
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        groups = doc.get("groups", []) if isinstance(doc, dict) else []
        for group in groups if isinstance(groups, list) else []:
            rules = group.get("rules", []) if isinstance(group, dict) else []
            for rule in rules if isinstance(rules, list) else []:
                if isinstance(rule, dict) and rule.get("alert") == alertname:
                    return parse_duration(str(rule.get("for", "0s"))).total_seconds()
    return None


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
