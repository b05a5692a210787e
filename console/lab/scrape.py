"""What the lab's query engine scrapes: itself, plus every target registered in a file.

Prometheus and VictoriaMetrics get the same ``scrape_configs``. Beyond the engine itself there
is one ``file_sd`` job reading ``<lab_dir>/targets/*.json``: a service (the gateway, a test's
exporter) registers by writing a file there, and the engine picks it up within seconds, without
a restart or a config reload.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from console.adapters.rule_files import EVALUATION_INTERVAL, SCRAPE_INTERVAL
from console.config import Settings
from console.private_files import private_dir, write_private

__all__ = ["EVALUATION_INTERVAL", "SCRAPE_INTERVAL", "TARGETS_JOB"]
TARGETS_JOB = "lab"
"""Job of file-registered targets (a target file may set its own ``job`` label)."""


def targets_dir(settings: Settings) -> Path:
    return (settings.lab_dir / "targets").resolve()


def target_file(settings: Settings, name: str) -> Path:
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"invalid scrape target name {name!r}")
    return targets_dir(settings) / f"{name}.json"


def target_json(address: str, labels: Mapping[str, str] | None = None) -> str:
    """One file_sd target group: ``address`` is ``host:port``, scraped at ``/metrics``."""
    return json.dumps([{"targets": [address], "labels": dict(labels or {})}], indent=2) + "\n"


def register_target(
    settings: Settings, name: str, address: str, labels: Mapping[str, str] | None = None
) -> Path:
    """Write (atomically: the engines watch the directory) the target file ``name``."""
    path = target_file(settings, name)
    private_dir(path.parent)
    write_private(path, target_json(address, labels))
    return path


def unregister_target(settings: Settings, name: str) -> None:
    target_file(settings, name).unlink(missing_ok=True)


def targets_readme(settings: Settings) -> dict[Path, str]:
    """A file the engines' specs write before they start: the directory must exist by then, or
    Prometheus cannot watch it and only finds new targets on its refresh interval."""
    text = (
        "Scrape targets of the lab's query engine (Prometheus or VictoriaMetrics): one file_sd\n"
        'JSON file per service, [{"targets": ["127.0.0.1:PORT"], "labels": {...}}].\n'
        "See console/lab/scrape.py.\n"
    )
    return {targets_dir(settings) / "README": text}


def scrape_configs(
    settings: Settings, self_job: str, self_port: int, *, file_refresh: bool
) -> list[str]:
    """YAML lines of ``scrape_configs``: the engine's own metrics and the file-registered jobs.

    ``file_refresh``: add ``refresh_interval`` to the file_sd job. Prometheus watches the files
    (inotify) and re-reads them on this interval as a fallback; VictoriaMetrics 1.79 refuses the
    field and re-reads on its ``-promscrape.fileSDCheckInterval`` flag instead.
    """
    pattern = json.dumps(str(targets_dir(settings) / "*.json"))
    lines = [
        "scrape_configs:",
        f"  - job_name: {self_job}",
        "    static_configs:",
        f"      - targets: ['127.0.0.1:{self_port}']",
        f"  - job_name: {TARGETS_JOB}",
        "    file_sd_configs:",
        f"      - files: [{pattern}]",
    ]
    if file_refresh:
        lines.append(f"        refresh_interval: {SCRAPE_INTERVAL}")
    return lines
