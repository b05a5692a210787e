"""The PromQL engine (``[prometheus].url``): its build, the metric contract's series and the
shipped rules.

The metric contract is read from the shipped rule files (``rule_files.shipped_rules``): the raw
``aml_*`` series their expressions read. The views query the rules' recordings (and
``aml_client_extraction_score``), so these are the series every panel and alert rests on.
"""

from __future__ import annotations

from console.adapters.backends import Backends
from console.adapters.prometheus import PrometheusClient
from console.adapters.rule_files import ShippedRules, shipped_rules
from console.doctor.model import Endpoint, EndpointReport, Findings
from console.doctor.tls import credentials_of, tls_check
from console.errors import AdapterError, ConsoleError

CONTRACT_PATTERN = "aml_.+"
RULES_HINT = (
    "load configs/prometheus/*.yml into the engine's ruler "
    "(aml-console rules export DIR writes them)"
)
_FAMILY_SUFFIXES = ("_total", "_bucket", "_sum", "_count", "_created")


def metric_contract(rules: ShippedRules | None = None) -> tuple[str, ...]:
    """The raw series the console needs from the gateway, sorted."""
    return (rules or shipped_rules()).series_read


async def check_prometheus(backends: Backends, findings: Findings) -> EndpointReport:
    section = backends.settings.prometheus
    tls_check(findings, section)
    client = backends.prometheus
    findings.start_clock()
    try:
        build = await client.build_info()
    except AdapterError as exc:
        if exc.status != 404:
            findings.first_call_failed(exc, "the PromQL API")
            return findings.report()
        build = {}  # an engine without the endpoint (Mimir, Thanos): the queries below tell
    findings.answered(credentials_of(section))
    version = str(build.get("version", "")) or None
    findings.version = version
    findings.passed("version", version or "not reported by the engine")
    rules = shipped_rules()
    await _contract(client, findings, rules)
    await _rules(client, findings, rules)
    return findings.report()


async def _contract(client: PrometheusClient, findings: Findings, rules: ShippedRules) -> None:
    wanted = metric_contract(rules)
    name = "metric contract"
    try:
        present = await client.metric_names(CONTRACT_PATTERN)
    except ConsoleError as exc:
        findings.call_failed(name, exc, "see the engine's log")
        return
    missing = [s for s in wanted if s not in present]
    announced: list[str] = []
    if missing:
        known = await _announced(client)
        announced = [s for s in missing if _families(s) & known]
        missing = [s for s in missing if s not in announced]
    if missing:
        findings.failed(
            name,
            f"{len(missing)} of {len(wanted)} series missing: {', '.join(missing)}",
            "scrape the guarded gateway's /metrics into this engine (a missing series may "
            "also be one the gateway has not exported yet, before its first event)",
        )
        return
    quiet = f"; announced, no sample yet: {', '.join(announced)}" if announced else ""
    findings.passed(name, f"{len(wanted)} series present{quiet}")


async def _announced(client: PrometheusClient) -> frozenset[str]:
    """The metric families the targets announce; none when the engine does not say."""
    try:
        return await client.announced_metrics()
    except ConsoleError:
        return frozenset()


def _families(series: str) -> set[str]:
    """The names a series' family may be announced under (``aml_flagged_total`` is the
    family ``aml_flagged`` in OpenMetrics, ``aml_x_bucket`` the histogram ``aml_x``)."""
    names = {series}
    for suffix in _FAMILY_SUFFIXES:
        if series.endswith(suffix):
            names.add(series.removesuffix(suffix))
    return names


async def _rules(client: PrometheusClient, findings: Findings, rules: ShippedRules) -> None:
    name = "rules loaded"
    try:
        loaded = await client.loaded_rules()
    except ConsoleError as exc:
        findings.call_failed(name, exc, RULES_HINT)
        return
    missing = [a for a in rules.alerts if a not in loaded.alerts]
    missing += [r for r in rules.records if r not in loaded.records]
    if missing:
        findings.failed(
            name,
            f"{len(missing)} of {len(rules.alerts) + len(rules.records)} shipped rules not "
            f"loaded: {', '.join(missing)}",
            RULES_HINT,
        )
        return
    findings.passed(
        name,
        f"{len(rules.alerts)} alerts (AMLExtractionSuspected among them) and "
        f"{len(rules.records)} recording rules",
    )


def prometheus_endpoint(backends: Backends) -> Endpoint:
    return Endpoint("prometheus", "prometheus", backends.settings.prometheus.url)
