"""The PromQL engine's checks on a real Prometheus of the test's own (the session's may hold
other tests' series), loaded with the shipped rules and scraping a real exporter of the metric
contract (tests/metrics_support.py): missing series are named, and with every series present
the whole lab passes with exit 0. The contract itself is read from the rule files, and holds
only series the gateway exports."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from doctor_support import by_name, checks, doctor_config, failed_checks, run_doctor
from metrics_support import (
    EXTRACTION,
    EXTRACTION_BEHIND_SYBILS,
    RULES_DIR,
    exporter_registered,
    metrics_lab,
    wait_for_result,
)
from support import REPO, LabHandle, unavailable

from console.adapters.rule_files import shipped_rules
from console.doctor.metrics import metric_contract
from console.errors import ConsoleError
from console.lab import services
from console.views import queries

SYBIL_SERIES = [
    "aml_client_label_slots_capacity",
    "aml_client_label_slots_used",
    "aml_unlabelled_answered_rate",
    "aml_unlabelled_extraction_score",
]
"""What ``EXTRACTION`` leaves out of the contract (metrics_support: no label slots, nobody in
``other``)."""


def test_the_contract_is_what_the_rules_read_and_the_gateway_exports() -> None:
    contract = metric_contract()
    assert "aml_requests_total" in contract and "aml_client_extraction_score" in contract
    telemetry = (REPO / "console" / "lab" / "gateway" / "telemetry.py").read_text()
    exported = set(re.findall(r'"(aml_[a-z0-9_]+)"', telemetry))
    families = {re.sub(r"_(total|bucket|sum|count)$", "", name) for name in contract}
    assert families <= exported, sorted(families - exported)
    # Every series a view queries is recorded by the rules or in the contract.
    rules = shipped_rules()
    named = {
        name
        for query in queries.ALL
        for name in re.findall(r"(?<![\w:])aml[_:][A-Za-z0-9_:]*", query.promql)
    }
    assert named <= set(rules.records) | set(contract), sorted(named - set(rules.records))


def test_missing_series_are_named_and_with_all_of_them_the_lab_passes(
    lab: LabHandle, tmp_path: Path
) -> None:
    with metrics_lab(tmp_path / "metrics", ("prometheus",)) as own:
        try:
            services.up(own.settings, ["prometheus"], rules_dir=RULES_DIR)
        except ConsoleError as exc:
            unavailable(str(exc))
        url = own.settings.prometheus.url
        config = doctor_config(tmp_path / "doctor", prometheus_url=url)
        with exporter_registered(own, EXTRACTION) as exporter:
            wait_for_result(url, "aml_requests_total", 30)
            result, reports = run_doctor(config)
            assert result.returncode == 1
            prometheus = checks(by_name(reports)["prometheus"])
            contract = prometheus["metric contract"]
            assert not contract["ok"]
            listed = contract["detail"].split("missing: ", 1)[1].split(", ")
            assert listed == SYBIL_SERIES
            assert "/metrics" in contract["hint"]
            assert prometheus["rules loaded"]["ok"]
            assert failed_checks(reports) == [("prometheus", "metric contract")]

            exporter.traffic = EXTRACTION_BEHIND_SYBILS
            wait_for_result(url, "aml_unlabelled_answered_rate", 30)
            result, reports = run_doctor(config)
            assert failed_checks(reports) == []
            assert result.returncode == 0
            detail = checks(by_name(reports)["prometheus"])["metric contract"]["detail"]
            assert detail == f"{len(metric_contract())} series present"

            # Nobody flagged: the exporter announces aml_flagged_total (its TYPE line) with no
            # sample, as the gateway does before its first flag. That is no missing series.
            unflagged = tuple(c for c in EXTRACTION_BEHIND_SYBILS.clients if not c.flagged)
            exporter.traffic = dataclasses.replace(EXTRACTION_BEHIND_SYBILS, clients=unflagged)
            wait_for_result(url, "absent(aml_flagged_total)", 30)
            result, reports = run_doctor(config)
            contract = checks(by_name(reports)["prometheus"])["metric contract"]
            assert contract["ok"], contract
            assert contract["detail"].endswith("announced, no sample yet: aml_flagged_total")
            assert result.returncode == 0


def test_an_engine_without_the_rules_says_how_to_load_them(lab: LabHandle, tmp_path: Path) -> None:
    empty = tmp_path / "no-rules"
    empty.mkdir()
    with metrics_lab(tmp_path / "metrics", ("prometheus",)) as own:
        try:
            services.up(own.settings, ["prometheus"], rules_dir=empty)
        except ConsoleError as exc:
            unavailable(str(exc))
        config = doctor_config(tmp_path / "doctor", prometheus_url=own.settings.prometheus.url)
        result, reports = run_doctor(config)
    assert result.returncode == 1
    rules = checks(by_name(reports)["prometheus"])["rules loaded"]
    assert not rules["ok"] and "AMLExtractionSuspected" in rules["detail"]
    assert "aml-console rules export" in rules["hint"]
