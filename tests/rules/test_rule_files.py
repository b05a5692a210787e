"""The rule files: promtool accepts them and their unit tests pass; vmalert accepts them too;
every alert carries what on-call needs (severity, summary, description, a shipped runbook)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from metrics_support import RULE_FILES, RULES_DIR, seconds
from support import REPO, unavailable

from console.lab import scrape

REQUIRED_ALERTS = {
    "AMLExtractionSuspected",
    "AMLEvasionFlagRateSpike",
    "AMLConfidenceShift",
    "AMLLatencyP99High",
    "AMLRequestCostSpike",
}
RECORD_NAME = re.compile(r"^aml:[a-z0-9_]+:[a-z0-9_]+$")
UNIT_TESTS = sorted((RULES_DIR / "tests").glob("*.yml"))
BOUNDED_GROUP = "aml-clients-bounded"
BOUNDED_RECORDS = {
    "aml:client_requests:top_rate1m",
    "aml:client_extraction:top_score",
    "aml:client_flagged:top_rate1m",
    "aml:client_refused:top_ratio_rate1m",
    "aml:client_listed:rate1m",
    "aml:client_listed:extraction_score",
    "aml:client_listed:flagged_rate1m",
    "aml:client_listed:refused_ratio_rate1m",
    "aml:clients_active:count",
    "aml:clients_extraction_over:count",
}
"""What the console's views read at any number of clients (names they query)."""
TOP_K = 20
RECORDED_NAME = re.compile(r"aml:[a-z0-9_]+:[a-z0-9_]+")
RAW_NAME = re.compile(r"(?<![\w:])aml_[a-z0-9_]+")


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} not installed (Debian package prometheus / victoria-metrics)")
    return path


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)


def rules() -> list[dict[str, Any]]:
    out = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            out += group["rules"]
    return out


def alerts() -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for r in rules() if "alert" in r}


def test_promtool_check_rules() -> None:
    assert RULE_FILES, f"no rule files in {RULES_DIR}"
    proc = run([tool("promtool"), "check", "rules", *map(str, RULE_FILES)])
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("unit_test", UNIT_TESTS, ids=lambda p: Path(p).stem)
def test_promtool_unit_tests(unit_test: Path) -> None:
    proc = run([tool("promtool"), "test", "rules", str(unit_test)])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_vmalert_accepts_the_same_files() -> None:
    proc = run([tool("vmalert"), f"-rule={RULES_DIR / '*.yml'}", "-dryRun", "-loggerLevel=ERROR"])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_alert_is_unit_tested_firing_and_silent() -> None:
    tested: dict[str, set[bool]] = {}
    for path in UNIT_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                tested.setdefault(check["alertname"], set()).add(bool(check.get("exp_alerts")))
    assert set(alerts()) >= REQUIRED_ALERTS
    for name in alerts():
        assert tested.get(name) == {True, False}, f"{name}: needs a firing and a silent check"


def test_alerts_carry_severity_text_and_a_shipped_runbook() -> None:
    shipped = {p.stem for p in (REPO / "runbooks").glob("*.yaml")}
    for name, rule in alerts().items():
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        notes = rule["annotations"]
        assert notes["summary"] and notes["description"], name
        assert notes["runbook"] in shipped, f"{name}: runbook {notes['runbook']!r} not in runbooks/"


def test_runbooks_can_be_filled_from_the_alert_labels() -> None:
    labels = {"AMLExtractionSuspected": {"model", "client"}, "AMLConfidenceShift": {"model"}}
    for name, have in labels.items():
        runbook = alerts()[name]["annotations"]["runbook"]
        spec = yaml.safe_load((REPO / "runbooks" / f"{runbook}.yaml").read_text())
        required = {k for k, v in spec["parameters"].items() if v.get("required")}
        assert required <= have, f"{name} -> {runbook}: needs {required - have}"


def test_recording_rule_names_follow_the_convention() -> None:
    names = [r["record"] for r in rules() if "record" in r]
    assert len(names) == len(set(names))
    for name in names:
        assert RECORD_NAME.match(name), name


def test_for_durations_fit_the_lab() -> None:
    """Detection-time floor: scrape + evaluation + for: stays within the seed's M9 target
    (< 5 minutes for critical) with a wide margin; the extraction one is the tightest."""
    interval = seconds(scrape.SCRAPE_INTERVAL) + seconds(scrape.EVALUATION_INTERVAL)
    for name, rule in alerts().items():
        floor = interval + seconds(rule.get("for", "0s"))
        assert floor <= 60, f"{name}: detection floor {floor:g} s"
    assert seconds(alerts()["AMLExtractionSuspected"]["for"]) == 15


def _groups() -> list[dict[str, Any]]:
    out = []
    for path in RULE_FILES:
        out += yaml.safe_load(path.read_text())["groups"]
    return out


def test_bounded_group_reads_recordings_not_raw_counters() -> None:
    """The bounded rules cost one pass over recorded per-client series each (no rate() over
    the raw counters again), read only what groups before them record, and keep K."""
    groups = _groups()
    names = [g["name"] for g in groups]
    bounded = groups[names.index(BOUNDED_GROUP)]
    assert {r["record"] for r in bounded["rules"]} == BOUNDED_RECORDS
    before = groups[: names.index(BOUNDED_GROUP)]
    earlier = {r["record"] for g in before for r in g["rules"] if "record" in r}
    assert "aml:client_requests:rate1m" in earlier
    for rule in bounded["rules"]:
        expr = rule["expr"]
        assert "rate(" not in expr, rule["record"]
        assert set(RAW_NAME.findall(expr)) <= {"aml_client_extraction_score"}, rule["record"]
        assert set(RECORDED_NAME.findall(expr)) <= earlier | BOUNDED_RECORDS, rule["record"]
        for k in re.findall(r"topk by \(model\) \((\d+),", expr):
            assert int(k) == TOP_K, rule["record"]
        earlier.add(rule["record"])  # later rules of the group may read it


def test_every_bounded_recording_is_unit_tested() -> None:
    exprs = " ".join(
        check["expr"]
        for path in UNIT_TESTS
        for case in yaml.safe_load(path.read_text())["tests"]
        for check in case.get("promql_expr_test", [])
    )
    assert set(RECORDED_NAME.findall(exprs)) >= BOUNDED_RECORDS


def test_the_over_threshold_count_uses_the_alerts_threshold() -> None:
    """The console's "N over the threshold, M listed" and the alert must mean the same score."""
    from console.views.client_selection import EXTRACTION_ALERT, OVER_THRESHOLD_RECORDED

    rules = {r.get("record"): r for g in _groups() for r in g["rules"]}
    counted = re.findall(r"> ([0-9.]+)", rules[OVER_THRESHOLD_RECORDED]["expr"])
    alerted = re.findall(
        r"aml_client_extraction_score\) > ([0-9.]+)", alerts()["AMLExtractionSuspected"]["expr"]
    )
    assert [float(v) for v in counted] == [EXTRACTION_ALERT]
    assert [float(v) for v in alerted] == [EXTRACTION_ALERT]
