"""Test helpers for the robustness shown in the Models, Fleet and replay views: records written
on real registry versions (``RobustnessRecord(...).to_tags()`` with ``set_version_tags``, as
``aml-console eval`` stores them), and a test's own run dir, audit log and Redis prefix over the
session lab, with incidents and drill reports of its own."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support import LabHandle

from console.adapters.mlflow import MlflowRegistry
from console.config import Settings, load_settings
from console.incidents.store import IncidentStore
from console.lab.seed import SeededModel
from console.robustness import AttackFigures, RobustnessRecord

EARLIER = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
LATER = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def fleet_env(lab: LabHandle, tmp_path: Path, model: str) -> dict[str, str]:
    """The session lab's services (Prometheus included) with this test's own state."""
    return {
        **lab.env,
        "CONSOLE_RUN_DIR": str(tmp_path / "run"),
        "CONSOLE_REDIS__KEY_PREFIX": f"flt{uuid.uuid4().hex[:8]}",
        "CONSOLE_AUDIT__PATH": str(tmp_path / "audit" / "audit.jsonl"),
        "CONSOLE_AUDIT__HMAC_KEY": "fleet-test-audit-key-" + "x" * 16,
        "CONSOLE_OPERATOR": "fleet-tester",
        "CONSOLE_SAMPLES__PATH": str(tmp_path / "samples"),
        "CONSOLE_MODELS__SERVED": json.dumps([model]),
    }


def settings_of(env: dict[str, str]) -> Settings:
    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k.startswith("CONSOLE_")]:
            mp.delenv(key)
        for key, value in env.items():
            if key.startswith("CONSOLE_"):
                mp.setenv(key, value)
        return load_settings()


def record(
    seeded: SeededModel,
    version: str,
    *,
    clean: float = 0.95,
    fgsm: float = 0.42,
    fpr: float = 0.03,
    at: datetime = LATER,
    sha256: str | None = None,
) -> RobustnessRecord:
    """A record of ``version`` as eval writes it (FGSM and extraction measured)."""
    return RobustnessRecord(
        model=seeded.name,
        version=version,
        onnx_sha256=seeded.sha256[version] if sha256 is None else sha256,
        evaluated_at=at.isoformat().replace("+00:00", "Z"),
        clean_accuracy=clean,
        detector_fpr=fpr,
        detector_threshold=0.5,
        epsilon=2.0,
        samples=200,
        attacks={
            "fgsm": AttackFigures(attack="fgsm", adversarial_success_rate=fgsm, samples=200),
            "extraction": AttackFigures(
                attack="extraction", surrogate_agreement=0.8, budget=2000, queries=2000
            ),
        },
        run_id="run-" + uuid.uuid4().hex[:8],
    )


def put_record(settings: Settings, seeded: SeededModel, rec: RobustnessRecord) -> None:
    """Write ``rec`` on its version in the real registry, signed as eval signs it: with the
    context's signing key when it has one (the session lab's), else unsigned."""
    key = settings.models.signing_key
    pem = key.read_bytes() if key is not None and key.is_file() else None
    put_tags(settings, seeded, rec.version, rec.signed_tags(pem))


def put_tags(settings: Settings, seeded: SeededModel, version: str, tags: dict[str, str]) -> None:
    async def write() -> None:
        registry = MlflowRegistry.connect(settings.mlflow.url, 10.0)
        try:
            await registry.set_version_tags(seeded.name, version, tags)
        finally:
            await registry.aclose()

    asyncio.run(write())


def open_incidents(settings: Settings, model: str) -> None:
    """On ``model``: a critical and a warning incident now, an info one 40 days ago (outside
    the fleet's 30 days); and a critical one on another model."""
    store = IncidentStore(settings)
    now = datetime.now(UTC)
    for severity, when, on in (
        ("critical", now, model),
        ("warning", now - timedelta(days=2), model),
        ("info", now - timedelta(days=40), model),
        ("critical", now, "another-model"),
    ):
        store.open(
            title=f"{severity} on {on}",
            severity=severity,
            attack_kind="extraction",
            model=on,
            client=None,
            operator="fleet-tester",
            opened_at=when,
        )


def write_drills(settings: Settings, model: str) -> None:
    """Drill reports on ``model``: one contained and one not in the last days, one not
    contained 40 days ago (outside the window), and an unreadable one."""
    now = datetime.now(UTC)
    root = settings.run_dir / "drills"
    for name, when, contained in (
        ("d-1", now - timedelta(days=1), True),
        ("d-2", now - timedelta(hours=3), False),
        ("d-old", now - timedelta(days=40), False),
    ):
        folder = root / name
        folder.mkdir(parents=True)
        report = {
            "id": name,
            "scenario": "extraction",
            "model": model,
            "started_at": when.isoformat(),
            "scores": {"contained": contained},
        }
        (folder / "report.json").write_text(json.dumps(report), encoding="utf-8")
    (root / "d-broken").mkdir()
    (root / "d-broken" / "report.json").write_text("{not json", encoding="utf-8")
